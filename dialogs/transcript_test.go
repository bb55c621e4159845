package dialogs_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// TestTranscripts runs every *.txt under testdata/transcripts (DESIGN §11)
// against the real engine, locales, runner and bbolt store, with a fake
// clock. Dropping a file there is enough to add a test.
//
// Beyond the lines of DESIGN §11:
//
//	undelivered              # the current user's prompts are not confirmed as delivered
//	delivered                # confirm the held prompt now, and confirm again from here on
//	event checkin.missed escalation=1   # an event of this type whose details match
//	verified provider=mydigital name="SITI AMINAH"  # the provider proved who the current user is
//	none late                # no reply to the latest input contains "late"
//	rate telegram 0.01       # the channel sustains 0.01 messages a second (crowding.go): 9 prompts a slot
//
// The missed check-in ladder runs from the delivery of each prompt
// (dialogs/schedule.go). The platform's acceptance is what the runner
// reports as a KindPromptDelivered input; the harness stands in for it and
// confirms every prompt at once, at the clock of the line that sent it,
// unless 'undelivered' holds the current user's confirmations (a channel
// that is down, or a prompt dropped by the send queue).
func TestTranscripts(t *testing.T) {
	root := filepath.Join("testdata", "transcripts")
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".txt") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no transcripts found under " + root)
	}
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	// A message missing from a locale would be answered in English: in a
	// transcript that is a failure, not a fallback.
	cat.OnMissing = func(lang, id string, err error) {
		t.Errorf("message %s is missing in %s (answered in English)", id, lang)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			runTranscript(t, f, cat)
		})
	}
}

// transcriptPepper is fixed so transcripts are reproducible.
var transcriptPepper = []byte("transcript-pepper-0123456789abcdef")

// capture is the channel of a transcript: it keeps what the bot sent to
// each address, and which channel identities were sent anything since the
// last look (whose prompts the transcript then confirms).
type capture struct {
	mu      sync.Mutex
	replies map[string][]dialogs.Reply
	sentTo  map[string]bool // "channel:address"
}

// channelCapture is the capture as registered for one channel.
type channelCapture struct {
	*capture
	channel string
}

func (c channelCapture) Send(_ context.Context, address string, r bot.Response) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replies[address] = append(c.replies[address], r.Replies...)
	c.sentTo[c.channel+":"+address] = true
	return nil
}

// ratedCapture is a channel that reports a send rate (bot.SendRater), so
// the runner gives the engine crowding advice for it.
type ratedCapture struct {
	channelCapture
	rate float64
}

func (c ratedCapture) SendRate() float64 { return c.rate }

// touched returns, and forgets, the identities sent anything since the
// last call, in a stable order.
func (c *capture) touched() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.sentTo))
	for id := range c.sentTo {
		ids = append(ids, id)
	}
	clear(c.sentTo)
	slices.Sort(ids)
	return ids
}

func (c *capture) take(address string) []dialogs.Reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.replies[address]
	delete(c.replies, address)
	return r
}

// testingT is what a transcript needs of *testing.T; the runner's own test
// substitutes a recorder to check how failures are reported.
type testingT interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

// transcript is the state of one running transcript.
type transcript struct {
	t       testingT
	file    string
	line    int
	now     time.Time
	runner  *bot.Runner
	out     *capture
	channel string
	address string
	lang    string

	last    []dialogs.Reply // every reply to the latest input, for save/same
	pending []dialogs.Reply // replies not yet checked by '<'
	saved   map[string][]dialogs.Reply

	firedAt map[time.Time]int // timers fired during one wait, to catch loops
	lastBy  map[string][]dialogs.Reply
	// held: identities ("channel:address") whose prompts are not confirmed
	// as delivered until a 'delivered' line.
	held map[string]bool

	evMu   sync.Mutex
	events []store.Event
	mark   int // events before mark have been checked
}

func (tr *transcript) fail(format string, args ...any) {
	tr.t.Helper()
	tr.t.Fatalf("%s:%d: %s", tr.file, tr.line, fmt.Sprintf(format, args...))
}

var trailingComment = regexp.MustCompile(`\s+#\s.*$`)

func runTranscript(t testingT, file string, cat *locales.Catalog) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	tr := &transcript{t: t, file: file, now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		out: &capture{replies: map[string][]dialogs.Reply{}, sentTo: map[string]bool{}}, saved: map[string][]dialogs.Reply{},
		firedAt: map[time.Time]int{}, lastBy: map[string][]dialogs.Reply{}, held: map[string]bool{},
		channel: "telegram", address: "1001"}

	cfgPath := filepath.Join("testdata", "transcripts", "config.toml")
	for i, l := range lines {
		if f := strings.Fields(trailingComment.ReplaceAllString(l, "")); len(f) == 2 && f[0] == "config" {
			tr.line = i + 1
			cfgPath = filepath.Join(filepath.Dir(file), f[1])
		}
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		tr.fail("config: %v", err)
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "checkinbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	engine := &dialogs.Engine{Catalog: cat, Directory: cfg.Directory(), Policy: cfg.Policy(), Pepper: transcriptPepper}
	engine.Identity.PublicBaseURL = cfg.Identity.PublicBaseURL
	for _, p := range cfg.Identity.Providers { // as app does (app/identity.go)
		engine.Identity.Providers = append(engine.Identity.Providers, dialogs.IdentityProvider{ID: p.ID, Names: p.DisplayName, Nationalities: p.Nationalities})
	}
	tr.runner = bot.NewRunner(engine, st, transcriptPepper)
	tr.runner.ReplyFloor = 0 // conversations, not timing
	tr.runner.Now = func() time.Time { return tr.now }
	tr.runner.OnEvents = func(evs []store.Event) {
		tr.evMu.Lock()
		defer tr.evMu.Unlock()
		tr.events = append(tr.events, evs...)
	}
	for _, ch := range []string{"telegram", "whatsapp", "terminal"} {
		tr.runner.Register(ch, channelCapture{tr.out, ch})
	}

	for i, raw := range lines {
		tr.line = i + 1
		tr.step(strings.TrimRight(raw, "\r"))
	}
}

// step executes one transcript line.
func (tr *transcript) step(raw string) {
	tr.t.Helper()
	trimmed := strings.TrimSpace(raw)
	if trimmed == "" || strings.HasPrefix(trimmed, "#") {
		return
	}
	switch {
	case strings.HasPrefix(trimmed, ">"):
		tr.send(dialogs.KindText, strings.TrimPrefix(strings.TrimPrefix(raw, ">"), " "), 0, 0)
		return
	case strings.HasPrefix(trimmed, "<"):
		tr.expect(strings.TrimSpace(strings.TrimPrefix(trimmed, "<")))
		return
	}
	line := trailingComment.ReplaceAllString(trimmed, "")
	verb, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch verb {
	case "config":
		// read before the run
	case "at":
		at, err := time.Parse(time.RFC3339, rest)
		if err != nil {
			tr.fail("at: %v", err)
		}
		tr.now = at
	case "user":
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			tr.fail("user: need channel:id")
		}
		ch, id, ok := strings.Cut(fields[0], ":")
		if !ok {
			tr.fail("user: %q is not channel:id", fields[0])
		}
		tr.lastBy[tr.channel+":"+tr.address] = tr.last
		tr.channel, tr.address, tr.lang = ch, id, ""
		for _, f := range fields[1:] {
			if v, ok := strings.CutPrefix(f, "lang="); ok {
				tr.lang = v
			}
		}
		// Each user's latest replies come back with them, so 'press' works
		// after switching between users.
		// Replies that reached this user meanwhile (timers fired during
		// another user's wait) count as their latest.
		tr.last = tr.lastBy[tr.channel+":"+tr.address]
		if queued := tr.out.take(tr.address); len(queued) > 0 {
			tr.last = queued
		}
		tr.pending = append([]dialogs.Reply(nil), tr.last...)
	case "press":
		tr.press(rest)
	case "location":
		lat, lon, ok := strings.Cut(rest, ",")
		la, err1 := strconv.ParseFloat(strings.TrimSpace(lat), 64)
		lo, err2 := strconv.ParseFloat(strings.TrimSpace(lon), 64)
		if !ok || err1 != nil || err2 != nil {
			tr.fail("location: %q is not LAT,LON", rest)
		}
		tr.send(dialogs.KindLocation, "", la, lo)
	case "sticker", "voice", "photo", "media":
		tr.send(dialogs.KindMedia, "", 0, 0)
	case "save":
		tr.saved[rest] = tr.last
	case "same":
		want, ok := tr.saved[rest]
		if !ok {
			tr.fail("same: nothing saved as %q", rest)
		}
		if got, exp := render(tr.last), render(want); got != exp {
			tr.fail("reply is not byte-identical to %q\nexpected:\n%s\ngot:\n%s", rest, exp, got)
		}
	case "wait":
		d, err := time.ParseDuration(rest)
		if err != nil {
			tr.fail("wait: %v", err)
		}
		tr.wait(d)
	case "event":
		tr.expectEvent(rest)
	case "no":
		if rest != "event" {
			tr.fail("unknown line %q", line)
		}
		tr.evMu.Lock()
		defer tr.evMu.Unlock()
		if len(tr.events) > tr.mark {
			tr.fail("expected no event, got %s", eventTypes(tr.events[tr.mark:]))
		}
	case "register":
		tr.register(rest)
	case "verified":
		tr.verified(rest)
	case "none":
		for _, r := range tr.last {
			if strings.Contains(strings.ToLower(render([]dialogs.Reply{r})), strings.ToLower(rest)) {
				tr.fail("expected no reply containing %q, got:\n%s", rest, render(tr.last))
			}
		}
	case "rate":
		ch, v, _ := strings.Cut(rest, " ")
		rate, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			tr.fail("rate: %q is not CHANNEL MESSAGES-A-SECOND", rest)
		}
		tr.runner.Register(ch, ratedCapture{channelCapture{tr.out, ch}, rate})
	case "undelivered":
		tr.held[tr.channel+":"+tr.address] = true
	case "delivered":
		delete(tr.held, tr.channel+":"+tr.address)
		tr.confirm(tr.channel + ":" + tr.address)
	default:
		tr.fail("unknown line %q", line)
	}
}

// verified records what a provider proved about the current user, as the
// identity service's callback does (Runner.RecordIdentity), and collects
// the chat's replies.
func (tr *transcript) verified(args string) {
	tr.t.Helper()
	v := dialogs.Identity{VerifiedAt: tr.now}
	for k, val := range parseKV(tr, args) {
		switch k {
		case "provider":
			v.Provider = val
		case "name":
			v.Name = val
		case "subject":
			v.Subject = val
		default:
			tr.fail("verified: unknown field %q", k)
		}
	}
	tr.out.take(tr.address)
	if err := tr.runner.RecordIdentity(context.Background(), store.UserKey(transcriptPepper, tr.channel, tr.address), v); err != nil {
		tr.fail("verified: %v", err)
	}
	tr.confirmSent()
	tr.last = tr.out.take(tr.address)
	tr.pending = append([]dialogs.Reply(nil), tr.last...)
}

// send delivers one input as the current user and collects the replies.
func (tr *transcript) send(kind dialogs.InputKind, text string, lat, lon float64) {
	tr.t.Helper()
	tr.out.take(tr.address)
	in := bot.Inbound{Channel: tr.channel, Address: tr.address, LangHint: tr.lang, Kind: kind,
		Text: text, Lat: lat, Lon: lon}
	if err := tr.runner.Handle(context.Background(), in); err != nil {
		tr.fail("handle: %v", err)
	}
	tr.confirmSent()
	tr.last = tr.out.take(tr.address)
	tr.pending = append([]dialogs.Reply(nil), tr.last...)
}

// expect checks that the replies to the latest input, read in order,
// contain want. Several '<' lines may match the same reply; a line that
// matches a later reply moves past the earlier ones.
func (tr *transcript) expect(want string) {
	tr.t.Helper()
	for i, r := range tr.pending {
		if strings.Contains(strings.ToLower(render([]dialogs.Reply{r})), strings.ToLower(want)) {
			tr.pending = tr.pending[i:]
			return
		}
	}
	if len(tr.pending) == 0 {
		tr.fail("expected a reply containing %q, got no (further) reply", want)
	}
	tr.fail("expected a reply containing %q\ngot:\n%s", want, render(tr.pending))
}

// press finds a button in the latest replies by number or label.
func (tr *transcript) press(which string) {
	tr.t.Helper()
	var buttons []dialogs.Button
	for i := len(tr.last) - 1; i >= 0; i-- {
		if len(tr.last[i].Buttons) > 0 {
			buttons = tr.last[i].Buttons
			break
		}
	}
	if len(buttons) == 0 {
		tr.fail("press %s: the last reply has no buttons", which)
	}
	if n, err := strconv.Atoi(which); err == nil {
		if n < 1 || n > len(buttons) {
			tr.fail("press %d: there are %d buttons", n, len(buttons))
		}
		tr.send(dialogs.KindButton, buttons[n-1].Data, 0, 0)
		return
	}
	for _, b := range buttons {
		if strings.EqualFold(b.Label, which) {
			tr.send(dialogs.KindButton, b.Data, 0, 0)
			return
		}
	}
	tr.fail("press %q: no such button in %s", which, render([]dialogs.Reply{{Buttons: buttons}}))
}

// wait advances the clock, firing every timer that falls due in order, each
// at its own time.
func (tr *transcript) wait(d time.Duration) {
	tr.t.Helper()
	end := tr.now.Add(d)
	// Replies that reached this user during another user's wait count too.
	got := tr.out.take(tr.address)
	for {
		at, ok, err := tr.runner.Store.NextTimer()
		if err != nil {
			tr.fail("wait: %v", err)
		}
		if !ok || at.After(end) {
			break
		}
		if fired, ok := tr.firedAt[at]; ok && fired > 3 {
			tr.fail("wait: a timer at %s fires without moving on (engine bug)", at.Format(time.RFC3339))
		}
		tr.firedAt[at]++
		if at.After(tr.now) {
			tr.now = at
		}
		if _, err := tr.runner.FireDue(context.Background()); err != nil {
			tr.fail("wait: %v", err)
		}
		tr.confirmSent()
		got = append(got, tr.out.take(tr.address)...)
	}
	tr.now = end
	clear(tr.firedAt)
	tr.last = got
	tr.pending = append([]dialogs.Reply(nil), got...)
}

// confirmSent confirms, at the current clock, the delivery of the prompt
// awaiting it of everyone who was just sent something, except those held
// by 'undelivered'. It stands in for the runner reporting that the
// platform accepted a reply of a Result with Prompt set.
func (tr *transcript) confirmSent() {
	tr.t.Helper()
	for _, id := range tr.out.touched() {
		if !tr.held[id] {
			tr.confirm(id)
		}
	}
}

// confirm reports the delivery of the prompt awaiting it, if any, of the
// identity id ("channel:address").
func (tr *transcript) confirm(id string) {
	tr.t.Helper()
	ch, addr, _ := strings.Cut(id, ":")
	st, found, err := tr.runner.Store.Registrant(store.UserKey(transcriptPepper, ch, addr))
	if err != nil {
		tr.fail("confirm delivery: %v", err)
	}
	if !found || !st.PromptPending {
		return
	}
	in := bot.Inbound{Channel: ch, Address: addr, Kind: dialogs.KindPromptDelivered}
	if err := tr.runner.Handle(context.Background(), in); err != nil {
		tr.fail("confirm delivery: %v", err)
	}
}

// expectEvent finds the next event of a type, with details matching any
// key=value pairs given (values compared as printed).
func (tr *transcript) expectEvent(spec string) {
	tr.t.Helper()
	typ, rest, _ := strings.Cut(spec, " ")
	want := map[string]string{}
	if strings.TrimSpace(rest) != "" {
		want = parseKV(tr, rest)
	}
	tr.evMu.Lock()
	defer tr.evMu.Unlock()
	for i := tr.mark; i < len(tr.events); i++ {
		ev := tr.events[i]
		if ev.Type != typ {
			continue
		}
		for k, v := range want {
			if got := fmt.Sprint(ev.Details[k]); got != v {
				tr.fail("event %s: details.%s is %s, want %s", typ, k, got, v)
			}
		}
		tr.mark = i + 1
		return
	}
	tr.fail("expected event %s, got %s", typ, eventTypes(tr.events[tr.mark:]))
}

// register completes registration through the real dialog.
func (tr *transcript) register(args string) {
	tr.t.Helper()
	kv := parseKV(tr, args)
	get := func(k, def string) string {
		if v, ok := kv[k]; ok {
			return v
		}
		return def
	}
	answers := []string{"/start", get("lang", "en"), "1", get("nationality", "MY"), get("country", "KH"),
		get("city", "Phnom Penh"), get("name", "Test Citizen"), get("passport", "skip"),
		get("employer", "skip"), get("contact", "skip"), get("interval", "24h"), get("time", "09:00"),
		get("duress", "blue mango"), get("duress", "blue mango"), "1"}
	for _, a := range answers {
		tr.send(dialogs.KindText, a, 0, 0)
	}
	key := store.UserKey(transcriptPepper, tr.channel, tr.address)
	st, found, err := tr.runner.Store.Registrant(key)
	if err != nil || !found || st.Status != dialogs.StatusActive {
		tr.fail("register: registration did not complete; last reply:\n%s", render(tr.last))
	}
}

var kvPattern = regexp.MustCompile(`(\w+)=("([^"]*)"|\S+)`)

func parseKV(tr *transcript, s string) map[string]string {
	out := map[string]string{}
	for _, m := range kvPattern.FindAllStringSubmatch(s, -1) {
		v := m[2]
		if strings.HasPrefix(v, `"`) {
			v = m[3]
		}
		out[m[1]] = v
	}
	if len(out) == 0 && strings.TrimSpace(s) != "" {
		tr.fail("register: cannot read %q", s)
	}
	return out
}

// render shows replies as text with their buttons, for messages and for
// byte-identity checks.
func render(rs []dialogs.Reply) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Text)
		for i, btn := range r.Buttons {
			fmt.Fprintf(&b, "\n  [%d] %s (%s)", i+1, btn.Label, btn.Data)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func eventTypes(evs []store.Event) string {
	if len(evs) == 0 {
		return "none"
	}
	var ts []string
	for _, e := range evs {
		ts = append(ts, e.Type)
	}
	return strings.Join(ts, ", ")
}

// failRecorder records a transcript failure instead of failing the test.
type failRecorder struct {
	*testing.T
	msg string
}

type stopTranscript struct{}

func (f *failRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(stopTranscript{})
}

func (f *failRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(stopTranscript{})
}

// TestFailingTranscriptSaysWhere: a wrong expectation is reported with the
// file, the line, what was expected and what came.
func TestFailingTranscriptSaysWhere(t *testing.T) {
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "broken.txt")
	os.WriteFile(path, []byte("# a reviewer's transcript with a mistake\nuser telegram:1\n> hello\n< Goodbye forever\n"), 0o600)
	rec := &failRecorder{T: t}
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(stopTranscript); !ok {
					panic(p)
				}
			}
		}()
		runTranscript(rec, path, cat)
	}()
	for _, want := range []string{path + ":4:", `"Goodbye forever"`, "got:", "This service helps your embassy"} {
		if !strings.Contains(rec.msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, rec.msg)
		}
	}
}
