// Package terminal is the channel for one citizen on stdin and stdout: the
// demo, and a way to try every flow without an account anywhere.
//
// Lines are messages. A few lines starting with ':' stand for what a phone
// can send but a keyboard cannot:
//
//	:location 11.55,104.92   share a location
//	:sticker                 send a sticker (or :voice, :photo)
//
// Buttons are shown numbered; type the number or the label to press one.
package terminal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
)

// name is the channel's name in user keys (Name).
const name = "terminal"

// maxLine caps one input line; longer lines are cut, never fatal.
const maxLine = 64 * 1024

// Options configure the terminal channel.
type Options struct {
	In  io.Reader
	Out io.Writer
	// User identifies the citizen (the terminal's "chat id").
	User string
	// LangHint is passed to the engine like a phone's language setting.
	LangHint string
	// Echo repeats each input line, so a piped demo reads as a dialogue.
	Echo bool
}

// Terminal reads one citizen's messages from In and writes the bot's
// replies to Out (bot.Channel).
type Terminal struct {
	Options
	inbox bot.Inbox

	mu sync.Mutex
}

// New builds the terminal channel; lines go to inbox. The caller
// registers it with the runner.
func New(opt Options, inbox bot.Inbox) *Terminal { return &Terminal{Options: opt, inbox: inbox} }

// Name is the channel's name (bot.Channel).
func (t *Terminal) Name() string { return name }

// SendRate is unlimited (bot.SendRater): the terminal writes to a local
// stream, so no time is ever crowded on it.
func (t *Terminal) SendRate() float64 { return math.Inf(1) }

// Print writes a line to the terminal without interleaving with replies.
func (t *Terminal) Print(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.Out, format+"\n", args...)
}

// Send prints the replies; buttons appear numbered under their message.
// Once written they count as accepted (r.Done). A terminal deletes nothing.
func (t *Terminal) Send(_ context.Context, _ string, r bot.Response) error {
	t.write(r)
	r.Report(bot.Receipt{})
	return nil
}

func (t *Terminal) write(r bot.Response) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rep := range r.Replies {
		for i, line := range strings.Split(rep.Text, "\n") {
			prefix := "bot> "
			if i > 0 {
				prefix = "     "
			}
			fmt.Fprintln(t.Out, prefix+line)
		}
		if len(rep.Buttons) > 0 {
			var b strings.Builder
			for i, btn := range rep.Buttons {
				fmt.Fprintf(&b, " [%d] %s", i+1, btn.Label)
			}
			fmt.Fprintln(t.Out, "    "+b.String())
		}
	}
}

// Run feeds every input line to the inbox until the input ends or ctx is
// cancelled (bot.Channel), then waits for the replies to drain. It returns
// nil at the end of input.
func (t *Terminal) Run(ctx context.Context) error {
	err := t.read(ctx)
	_ = t.inbox.DrainReplies(context.WithoutCancel(ctx))
	return err
}

func (t *Terminal) read(ctx context.Context) error {
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		defer close(lines)
		br := bufio.NewReader(t.In)
		for {
			line, err := br.ReadString('\n')
			if len(line) > maxLine {
				line = line[:maxLine] // the engine reads at most 4,096 characters anyway
			}
			line = strings.TrimRight(line, "\r\n")
			if line != "" || err == nil {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					errc <- err
				}
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				select {
				case err := <-errc:
					return err
				default:
					return nil
				}
			}
			if t.Echo {
				t.Print("you> %s", line)
			}
			// When the store cannot write, the runner itself tells the
			// citizen (once per outage), in their language.
			if err := t.inbox.Handle(ctx, t.inbound(line)); err != nil && !errors.Is(err, bot.ErrStoreUnavailable) {
				t.Print("(the message could not be processed)")
			}
		}
	}
}

// inbound maps one typed line to an update.
func (t *Terminal) inbound(line string) bot.Inbound {
	in := bot.Inbound{Channel: name, Address: t.User, LangHint: t.LangHint, Kind: dialogs.KindText, Text: line}
	cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch cmd {
	case ":location":
		lat, lon, ok := parseLatLon(arg)
		if ok {
			in.Kind, in.Text, in.Lat, in.Lon = dialogs.KindLocation, "", lat, lon
		}
	case ":sticker", ":voice", ":photo":
		in.Kind, in.Text = dialogs.KindMedia, ""
	}
	return in
}

// parseLatLon reads "11.55,104.92".
func parseLatLon(s string) (float64, float64, bool) {
	a, b, ok := strings.Cut(strings.ReplaceAll(s, " ", ""), ",")
	if !ok {
		return 0, 0, false
	}
	lat, err1 := strconv.ParseFloat(a, 64)
	lon, err2 := strconv.ParseFloat(b, 64)
	if err1 != nil || err2 != nil || math.IsNaN(lat) || math.IsNaN(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return 0, 0, false
	}
	return lat, lon, true
}
