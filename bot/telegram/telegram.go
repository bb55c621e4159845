// Package telegram is the Telegram channel, on github.com/go-telegram/bot.
//
// Updates come in by long polling (default) or webhook, are mapped to
// engine inputs and handed to the inbox (bot.Inbox.Submit keeps each
// citizen's updates in order, citizens in parallel) and are acknowledged to Telegram only after they were
// committed (at least once; the store's inbound de-duplication by update_id
// makes a redelivery a no-op). Commands are parsed by the engine, not the
// library. Replies leave through a rate-limited, prioritised queue
// (send.go). The library's own logging of whole updates is replaced: no
// message text ever reaches a log.
package telegram

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
)

// Name is the channel's name in the runner and in user keys.
const Name = "telegram"

// DefaultAPIURL is Telegram's Bot API.
const DefaultAPIURL = "https://api.telegram.org"

// Options configure the channel.
type Options struct {
	Token  string
	APIURL string // default DefaultAPIURL
	// Webhook, if set, receives updates over HTTPS instead of long polling.
	Webhook *Webhook
	// GlobalRate caps messages per second overall (Telegram: about 30).
	GlobalRate float64
	// PaidBroadcast sends scheduled prompts and reminders with
	// allow_paid_broadcast, which lets them exceed Telegram's free
	// broadcast limit at 0.1 Telegram Stars a message (docs/telegram.md):
	// they are then paced at PaidRate (default and at most
	// MaxPaidRate) while every other message keeps GlobalRate.
	PaidBroadcast bool
	PaidRate      float64
	// PerChat is the least time between two messages to one chat
	// (Telegram: about one per second).
	PerChat time.Duration
	// Workers bounds concurrent API calls.
	Workers int
	// PollTimeout is the long-polling wait.
	PollTimeout time.Duration
	// ReadyWithin: Ready fails when polling has had no successful
	// getUpdates for this long (default DefaultReadyWithin; at least
	// twice PollTimeout, since a quiet long poll lasts that long).
	ReadyWithin time.Duration
	// HTTPClient makes every API call (tests may re-encode requests).
	HTTPClient tgbot.HttpClient
	// GroupRefusal answers anyone writing from a group chat, per language.
	GroupRefusal func(lang string) string
	Log          *slog.Logger
}

// Webhook is the webhook mode's setting: the public URL Telegram posts
// to and the secret it must present. The local listener is the App's.
type Webhook struct {
	URL    string
	Secret string
}

// Channel is a running Telegram channel.
type Channel struct {
	opt   Options
	api   *tgbot.Bot
	inbox bot.Inbox
	out   *sender

	mu      sync.Mutex
	refused map[int64]time.Time // group → when it was last told we do not work there

	rateLimited atomic.Int64 // 429 answers (ops.go)
	contact     atomic.Int64 // Unix ns of the last successful getUpdates, or the start (ops.go)
	webhookSet  atomic.Bool  // setWebhook succeeded (ops.go)
}

// refuseGroup reports whether a group should be told (again) that the bot
// works only in private chats: at most once an hour, far under Telegram's
// 20 messages a minute per group.
func (c *Channel) refuseGroup(chat int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.refused[chat]) < time.Hour {
		return false
	}
	c.refused[chat] = time.Now()
	return true
}

// New prepares the channel (bot.Channel); updates go to inbox. The caller
// registers it with the runner.
func New(opt Options, inbox bot.Inbox) (*Channel, error) {
	if opt.Token == "" {
		return nil, errors.New("telegram: no bot token (set CHECKIN_TELEGRAM_TOKEN)")
	}
	if opt.APIURL == "" {
		opt.APIURL = DefaultAPIURL
	}
	if opt.GlobalRate <= 0 {
		opt.GlobalRate = 30
	}
	if opt.PaidBroadcast && (opt.PaidRate <= 0 || opt.PaidRate > MaxPaidRate) {
		opt.PaidRate = MaxPaidRate
	}
	if !opt.PaidBroadcast || opt.PaidRate < opt.GlobalRate {
		opt.PaidRate = opt.GlobalRate // paying never slows sending
	}
	if opt.PerChat <= 0 {
		opt.PerChat = time.Second
	}
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	if opt.PollTimeout <= 0 {
		opt.PollTimeout = 30 * time.Second
	}
	if opt.ReadyWithin <= 0 {
		opt.ReadyWithin = DefaultReadyWithin
	}
	if opt.ReadyWithin <= opt.PollTimeout {
		opt.ReadyWithin = 2 * opt.PollTimeout // a quiet long poll is no failure
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: opt.PollTimeout + 15*time.Second}
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	c := &Channel{opt: opt, inbox: inbox, refused: map[int64]time.Time{}}
	api, err := tgbot.New(opt.Token,
		tgbot.WithServerURL(opt.APIURL),
		tgbot.WithSkipGetMe(),
		tgbot.WithHTTPClient(opt.PollTimeout, opt.HTTPClient),
		// The defaults log whole updates, message text included: replace all.
		tgbot.WithDefaultHandler(func(context.Context, *tgbot.Bot, *models.Update) {}),
		tgbot.WithErrorsHandler(func(error) { opt.Log.Warn("telegram library error") }),
		tgbot.WithDebugHandler(func(string, ...any) {}),
	)
	if err != nil {
		return nil, fmt.Errorf("telegram: %w", err)
	}
	c.api = api
	c.out = newSender(c)
	return c, nil
}

// Name is the channel's name (bot.Channel).
func (c *Channel) Name() string { return Name }

// MaxPaidRate is the most messages a second Telegram allows a bot with
// allow_paid_broadcast.
const MaxPaidRate = 1000

// SendRate is the rate scheduled prompts leave at (bot.SendRater): the
// global rate, or with paid broadcast the paid one — prompts are what the
// time question's crowding advice is about.
func (c *Channel) SendRate() float64 { return c.opt.PaidRate }

// Routes serves WebhookHandler on every path in webhook mode (bot.Router);
// in polling mode the channel needs no route.
func (c *Channel) Routes() map[string]http.Handler {
	if c.opt.Webhook == nil {
		return nil
	}
	return map[string]http.Handler{"/": c.WebhookHandler()}
}

// Run receives updates until ctx ends (bot.Channel). Then, intake stopped,
// it keeps sending until the inbox's queued replies were accepted or its
// drain bound passed (a graceful shutdown: what is left stays in the send
// queue for the next start), and returns. In webhook mode it registers the
// webhook with Telegram; updates arrive through WebhookHandler, which the
// App serves on its HTTP listener.
func (c *Channel) Run(ctx context.Context) error {
	sendCtx, stopSending := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { c.out.run(sendCtx); close(done) }()
	defer func() {
		_ = c.inbox.DrainReplies(context.Background())
		stopSending()
		<-done
	}()
	c.opt.Log.Info("checkinbot serving Telegram", "mode", map[bool]string{true: "webhook", false: "polling"}[c.opt.Webhook != nil])
	if c.opt.Webhook != nil {
		return c.serveWebhook(ctx)
	}
	c.markContact() // the start counts as contact (Ready)
	defer c.contact.Store(0)
	if _, err := c.api.DeleteWebhook(ctx, &tgbot.DeleteWebhookParams{}); err != nil && ctx.Err() == nil {
		return fmt.Errorf("telegram: deleteWebhook (needed for polling): %s", classify(err))
	}
	return c.poll(ctx)
}

// poll long-polls getUpdates. The offset moves past an update only once it
// was committed — or given up because it fails deterministically
// (bot.ErrUpdateFailed). When the store cannot write (bot.ErrStoreUnavailable)
// the offset is held and the batch fetched again with growing backoff, for
// as long as the outage lasts: a crash or a full disk means redelivery,
// never loss.
func (c *Channel) poll(ctx context.Context) error {
	var offset int64
	backoff := time.Duration(0) // network
	hold := time.Duration(0)    // store outage
	for ctx.Err() == nil {
		if wait := max(backoff, hold); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		asked := time.Now()
		updates, err := c.getUpdates(ctx, offset)
		if err == nil && len(updates) == 0 && time.Since(asked) < time.Second {
			// A server that does not hold the request open (some emulators,
			// proxies): do not spin on it.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			backoff = min(max(2*backoff, 200*time.Millisecond), 30*time.Second)
			c.opt.Log.Warn("telegram getUpdates failed; retrying", "err", err, "in", backoff)
			continue
		}
		backoff = 0
		c.markContact()
		var results []<-chan error
		for _, u := range updates {
			results = append(results, c.dispatch(ctx, u))
		}
		// Confirm updates up to the first one that must come again; it and
		// those after it come again (those already committed are recognised
		// by their update_id and only re-send what is unsent).
		held := false
		for i, res := range results {
			err := <-res
			if held {
				continue
			}
			if err == nil || errors.Is(err, bot.ErrUpdateFailed) {
				offset = max(offset, updates[i].ID+1)
				continue
			}
			held = true
			offset = max(offset, updates[i].ID)
		}
		if held {
			hold = min(max(2*hold, time.Second), 30*time.Second)
		} else {
			hold = 0
		}
	}
	return nil
}

func (c *Channel) getUpdates(ctx context.Context, offset int64) ([]*models.Update, error) {
	body, _ := json.Marshal(map[string]any{"offset": offset, "timeout": int(c.opt.PollTimeout / time.Second),
		"allowed_updates": []string{"message", "edited_message", "callback_query"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opt.APIURL+"/bot"+c.opt.Token+"/getUpdates", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.opt.HTTPClient.Do(req)
	if err != nil {
		return nil, errors.New("connection failed") // the error text would carry the token
	}
	defer resp.Body.Close()
	var r struct {
		OK     bool             `json:"ok"`
		Result []*models.Update `json:"result"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil || !r.OK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return r.Result, nil
}

// serveWebhook registers the webhook and waits for ctx; WebhookHandler,
// served by the App, receives the updates.
func (c *Channel) serveWebhook(ctx context.Context) error {
	w := c.opt.Webhook
	if _, err := c.api.SetWebhook(ctx, &tgbot.SetWebhookParams{URL: w.URL, SecretToken: w.Secret,
		AllowedUpdates: []string{"message", "edited_message", "callback_query"}}); err != nil && ctx.Err() == nil {
		return fmt.Errorf("telegram: setWebhook: %s", classify(err))
	}
	c.webhookSet.Store(ctx.Err() == nil)
	defer c.webhookSet.Store(false)
	<-ctx.Done() // updates arrive through WebhookHandler, on the App's listener
	return nil
}

// WebhookHandler is the HTTP handler of webhook mode. A request without
// the right secret gets 401 (the library would answer 200 to anyone); a
// good one gets 200 only after its update was committed.
func (c *Channel) WebhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-Telegram-Bot-Api-Secret-Token")
		if c.opt.Webhook == nil || subtle.ConstantTimeCompare([]byte(got), []byte(c.opt.Webhook.Secret)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var u models.Update
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&u); err != nil {
			http.Error(w, "bad update", http.StatusBadRequest)
			return
		}
		select {
		case err := <-c.dispatch(r.Context(), &u):
			switch {
			case err == nil, errors.Is(err, bot.ErrUpdateFailed):
				// Committed, or given up (logged and counted by the runner).
				w.WriteHeader(http.StatusOK)
			case errors.Is(err, bot.ErrStoreUnavailable):
				// Telegram retries, with its own backoff: the update is not lost.
				w.Header().Set("Retry-After", "5")
				http.Error(w, "cannot save now", http.StatusServiceUnavailable)
			default:
				http.Error(w, "not processed", http.StatusInternalServerError)
			}
		case <-r.Context().Done():
		}
	})
}

// dispatch maps one update and submits it to the inbox, behind the
// citizen's earlier updates. The returned channel yields the outcome once it was processed:
// nil when committed (or nothing to do), an error when it must come again.
func (c *Channel) dispatch(ctx context.Context, u *models.Update) <-chan error {
	done := make(chan error, 1)
	in, msgID, ok := c.mapUpdate(ctx, u)
	if !ok {
		done <- nil
		return done
	}
	if msgID != 0 {
		in.DeleteID = strconv.Itoa(msgID)
	}
	res := c.inbox.Submit(ctx, in) // its place in the citizen's order is taken now
	go func() {
		err := <-res
		if err != nil && !errors.Is(err, bot.ErrUpdateFailed) {
			c.opt.Log.Warn("telegram update not processed; it will come again", "update", u.ID)
		}
		done <- err
	}()
	return done
}

// mapUpdate turns an update into an engine input; ok is false for updates
// the engine never sees (groups, channel posts, edits).
func (c *Channel) mapUpdate(ctx context.Context, u *models.Update) (bot.Inbound, int, bool) {
	in := bot.Inbound{Channel: Name, MessageID: "u" + strconv.FormatInt(u.ID, 10)}
	var chat models.Chat
	var from *models.User
	msgID := 0
	switch {
	case u.Message != nil || u.EditedMessage != nil:
		// An edited message is read like a new one: it may carry the keyword.
		m := u.Message
		if m == nil {
			m = u.EditedMessage
		}
		chat, from, msgID = m.Chat, m.From, m.ID
		switch {
		case m.Text != "":
			in.Kind, in.Text = dialogs.KindText, m.Text
		case m.Caption != "":
			// A photo "as proof of life" is read by its caption, so a
			// keyword in it is never missed.
			in.Kind, in.Text = dialogs.KindText, m.Caption
		case m.Location != nil:
			in.Kind, in.Lat, in.Lon = dialogs.KindLocation, m.Location.Latitude, m.Location.Longitude
		default:
			in.Kind = dialogs.KindMedia // sticker, voice, photo, document, contact …
		}
	case u.CallbackQuery != nil:
		q := u.CallbackQuery
		from = &q.From
		if q.Message.Message != nil {
			chat = q.Message.Message.Chat
		} else if q.Message.InaccessibleMessage != nil {
			chat = q.Message.InaccessibleMessage.Chat
		}
		in.Kind, in.Text = dialogs.KindButton, q.Data
		c.out.later(func(ctx context.Context) {
			c.api.AnswerCallbackQuery(ctx, &tgbot.AnswerCallbackQueryParams{CallbackQueryID: q.ID})
		})
	default:
		return in, 0, false
	}
	if chat.ID == 0 {
		return in, 0, false
	}
	if chat.Type != models.ChatTypePrivate {
		lang := ""
		if from != nil {
			lang = from.LanguageCode
		}
		if c.opt.GroupRefusal != nil && c.refuseGroup(chat.ID) {
			c.out.enqueue(chat.ID, bot.PriorityReply, c.opt.GroupRefusal(lang), nil, nil)
		}
		return in, 0, false
	}
	in.Address = strconv.FormatInt(chat.ID, 10)
	if from != nil {
		in.LangHint = from.LanguageCode
		if from.Username != "" {
			in.Handle = "@" + from.Username
		}
	}
	return in, msgID, true
}

// Send queues a response for a chat: all replies of one event as one
// message (fewer messages under the per-chat limit), buttons as an inline
// keyboard. r.Done hears when Telegram accepted it, with its message id.
func (c *Channel) Send(_ context.Context, address string, r bot.Response) error {
	chat, err := strconv.ParseInt(address, 10, 64)
	if err != nil {
		return fmt.Errorf("telegram: address %q is not a chat id", address)
	}
	if len(r.Replies) == 0 {
		r.Report(bot.Receipt{})
		return nil
	}
	var text bytes.Buffer
	var keyboard [][]models.InlineKeyboardButton
	for i, rep := range r.Replies {
		if i > 0 {
			text.WriteString("\n\n")
		}
		text.WriteString(rep.Text)
		if len(rep.Buttons) > 0 {
			keyboard = keyboardOf(rep.Buttons)
		}
	}
	var markup models.ReplyMarkup
	if keyboard != nil {
		markup = &models.InlineKeyboardMarkup{InlineKeyboard: keyboard}
	}
	c.out.enqueue(chat, r.Priority, text.String(), markup, r.Done)
	return nil
}

// Delete deletes one message of a chat — the citizen's or the bot's —
// waiting for Telegram's answer (bot.Deleter).
func (c *Channel) Delete(ctx context.Context, address, msgID string) error {
	chat, err1 := strconv.ParseInt(address, 10, 64)
	id, err2 := strconv.Atoi(msgID)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("telegram: cannot delete %q in chat %q: %w", msgID, address, bot.ErrRejected)
	}
	return c.out.deleteMessage(ctx, chat, id)
}

// keyboardOf lays buttons out one per row, or two per row for short
// labels, so they stay readable on a small screen.
func keyboardOf(buttons []dialogs.Button) [][]models.InlineKeyboardButton {
	short := true
	for _, b := range buttons {
		if len([]rune(b.Label)) > 14 {
			short = false
		}
	}
	var rows [][]models.InlineKeyboardButton
	for i, b := range buttons {
		btn := models.InlineKeyboardButton{Text: b.Label, CallbackData: b.Data}
		if short && i%2 == 1 {
			rows[len(rows)-1] = append(rows[len(rows)-1], btn)
			continue
		}
		rows = append(rows, []models.InlineKeyboardButton{btn})
	}
	return rows
}
