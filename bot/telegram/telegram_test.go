package telegram_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/bot/telegram"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/webhook"
)

const token = "123456:TEST-token"

// world is everything between a fake Telegram and an embassy's sink: the
// real channel, runner, store, engine, deliverer and signed webhooks.
type world struct {
	t      *testing.T
	api    *fakeapi.Server
	ch     *telegram.Channel
	runner *bot.Runner
	store  *boltstore.Store
	mu     sync.Mutex
	events []webhook.Event
	hook   *httptest.Server // webhook mode: updates are posted here
	secret string
	stop   func() // ends the world's goroutines (graceful shutdown)
}

func newWorld(t *testing.T, opt telegram.Options) *world {
	return newWorldOn(t, opt, nil, "", true)
}

// newWorldOn builds a world on an existing fake API and data file (a
// restart) when they are given; outbox false leaves the runner's outbox
// loop (resend and purge) off, as in a process stopped before it ran.
func newWorldOn(t *testing.T, opt telegram.Options, api *fakeapi.Server, path string, outbox bool) *world {
	w := &world{t: t, api: api}
	if api == nil {
		w.api = fakeapi.New(token)
		t.Cleanup(w.api.Close)
	}
	cfg := config.Default()
	var r *bot.Runner
	if path == "" {
		r = testkit.Runner(t)
	} else {
		r = testkit.RunnerOn(t, testkit.StoreAt(t, path))
	}
	s := r.Store
	w.store, w.runner = s.(*boltstore.Store), r
	key := make([]byte, 32)
	rand.Read(key)
	sink := httptest.NewServer(&webhook.Sink{Secrets: [][]byte{key}, OnEvent: func(ev webhook.Event) {
		w.mu.Lock()
		w.events = append(w.events, ev)
		w.mu.Unlock()
	}})
	t.Cleanup(sink.Close)
	var eps []webhook.Endpoint
	for _, e := range cfg.Embassies {
		eps = append(eps, webhook.Endpoint{ID: e.ID, URL: sink.URL, Secrets: [][]byte{key}, Embassy: e.ID})
	}
	policy := webhook.DefaultPolicy()
	policy.HeartbeatEvery = 0
	d := &webhook.Deliverer{Store: s.(*boltstore.Store), Endpoints: eps, Policy: policy}
	r.OnEvents = func([]store.Event) { d.Nudge() }
	opt.Token, opt.APIURL = token, w.api.URL
	if opt.PerChat == 0 {
		opt.PerChat = 10 * time.Millisecond
	}
	opt.GlobalRate = max(opt.GlobalRate, 1000)
	opt.PollTimeout = time.Second
	opt.GroupRefusal = func(lang string) string { return "private chats only (" + lang + ")" }
	ch, err := telegram.New(opt, r)
	if err != nil {
		t.Fatal(err)
	}
	r.Register(ch.Name(), ch)
	w.ch = ch
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); d.Run(ctx) }()
	go func() { defer wg.Done(); ch.Run(ctx) }()
	if outbox {
		wg.Add(1)
		go func() { defer wg.Done(); r.RunOutbox(ctx) }()
	}
	var once sync.Once
	w.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(w.stop)
	if opt.Webhook != nil {
		w.hook, w.secret = httptest.NewServer(ch.WebhookHandler()), opt.Webhook.Secret
		t.Cleanup(w.hook.Close)
	}
	return w
}

// post delivers a queued update to the webhook handler, as Telegram
// would, and returns the HTTP status.
func (w *world) post(id int64) int {
	w.t.Helper()
	body, _ := json.Marshal(w.api.Update(id))
	req, _ := http.NewRequest(http.MethodPost, w.hook.URL, bytes.NewReader(body))
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", w.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// deliver hands an update to the bot: in webhook mode by posting it (it
// must be accepted), else it waits in the fake API for getUpdates.
func (w *world) deliver(id int64) {
	w.t.Helper()
	if w.hook != nil {
		if code := w.post(id); code != http.StatusOK {
			w.t.Fatalf("webhook answered %d to update %d", code, id)
		}
	}
}

func (w *world) text(u fakeapi.User, s string) (int64, int) {
	w.t.Helper()
	upd, id := w.api.Text(u, s)
	w.deliver(upd)
	return upd, id
}

func (w *world) press(u fakeapi.User, msg int, data string) {
	w.t.Helper()
	w.deliver(w.api.Press(u, msg, data))
}

// reply waits for the n-th message sent to the user (0-based) and checks it.
func (w *world) reply(u fakeapi.User, n int, contains string) fakeapi.Call {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if sent := w.api.Sent(u.ID); len(sent) > n {
			if !strings.Contains(sent[n].Params["text"]+sent[n].Params["reply_markup"], contains) {
				w.t.Fatalf("message %d to %d: want %q, got %q %s", n, u.ID, contains, sent[n].Params["text"], sent[n].Params["reply_markup"])
			}
			return sent[n]
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no message %d to %d (want %q); %d sent", n, u.ID, contains, len(w.api.Sent(u.ID)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *world) event(typ string) webhook.Event {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for _, ev := range w.events {
			if ev.Type == typ {
				w.mu.Unlock()
				return ev
			}
		}
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	w.t.Fatalf("no signed %s webhook reached the sink", typ)
	return webhook.Event{}
}

func (w *world) deleted(msgID int) bool {
	for _, c := range w.api.Calls("deleteMessage") {
		if c.Params["message_id"] == strconv.Itoa(msgID) {
			return true
		}
	}
	return false
}

func (w *world) waitDeleted(msgID int) {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !w.deleted(msgID) {
		if time.Now().After(deadline) {
			w.t.Fatalf("message %d was not deleted", msgID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// buttonData finds the callback data of a button label in a sent message.
func buttonData(t *testing.T, c fakeapi.Call, label string) string {
	var m struct {
		InlineKeyboard [][]struct {
			Text         string `json:"text"`
			CallbackData string `json:"callback_data"`
		} `json:"inline_keyboard"`
	}
	if err := json.Unmarshal([]byte(c.Params["reply_markup"]), &m); err != nil {
		t.Fatalf("no inline keyboard in %q: %v", c.Params["reply_markup"], err)
	}
	for _, row := range m.InlineKeyboard {
		for _, b := range row {
			if b.Text == label {
				return b.CallbackData
			}
		}
	}
	t.Fatalf("no button %q in %s", label, c.Params["reply_markup"])
	return ""
}

// register walks through registration with buttons where there are some,
// and waits for the covert clean-up.
func (w *world) register(u fakeapi.User) (next int) {
	w.t.Helper()
	next, sensitive := w.registerNoWait(u)
	// Covert clean-up: the typed keywords and the prompts revealing the
	// feature are deleted.
	for _, id := range sensitive {
		w.waitDeleted(id)
	}
	return next
}

// registerNoWait registers u and returns the index of the next reply and
// the ids of the messages the clean-up must delete.
func (w *world) registerNoWait(u fakeapi.User) (next int, sensitive []int) {
	w.t.Helper()
	w.text(u, "/start")
	msg := w.reply(u, 0, "Which language")
	w.press(u, msg.Result, buttonData(w.t, msg, "English"))
	msg = w.reply(u, 1, "Do you agree?")
	w.press(u, msg.Result, buttonData(w.t, msg, "I agree"))
	msg = w.reply(u, 2, "passport do you have")
	w.press(u, msg.Result, buttonData(w.t, msg, "Malaysia"))
	msg = w.reply(u, 3, "Which country are you in now")
	w.press(u, msg.Result, buttonData(w.t, msg, "Cambodia"))
	w.reply(u, 4, "Which city")
	w.text(u, "Phnom Penh")
	w.reply(u, 5, "full name")
	w.text(u, "Siti Aminah")
	for i := 6; i <= 8; i++ {
		msg = w.reply(u, i, "Skip")
		w.press(u, msg.Result, "skip")
	}
	msg = w.reply(u, 9, "How often")
	w.press(u, msg.Result, buttonData(w.t, msg, "Every day"))
	msg = w.reply(u, 10, "time of day")
	w.press(u, msg.Result, "08:00")
	kwPrompt := w.reply(u, 11, "secret word")
	_, kw1 := w.text(u, "blue mango")
	kwPrompt2 := w.reply(u, 12, "again")
	_, kw2 := w.text(u, "blue mango")
	msg = w.reply(u, 13, "Please check your answers")
	w.press(u, msg.Result, buttonData(w.t, msg, "Confirm"))
	w.reply(u, 14, "You are registered")
	w.event(dialogs.EventRegistrationCreated)
	return 15, []int{kw1, kw2, kwPrompt.Result, kwPrompt2.Result}
}

// TestConversationThroughTelegram: registration with keyboards, a check-in,
// a duress check-in inside a sentence (identical reply, same clean-up,
// signed webhook), SOS with a location, and a redelivered update.
func TestConversationThroughTelegram(t *testing.T) {
	w := newWorld(t, telegram.Options{})
	u := fakeapi.User{ID: 5551, Username: "siti", Lang: "en"}
	n := w.register(u)
	if got := len(w.api.Calls("answerCallbackQuery")); got < 5 {
		t.Errorf("callback queries answered: %d", got)
	}

	_, okID := w.api.Text(u, "ok")
	normal := w.reply(u, n, "Check-in received")
	w.waitDeleted(okID)
	_, duressID := w.api.Text(u, "I'm fine, really. BLUE mango!")
	duress := w.reply(u, n+1, "Check-in received")
	w.waitDeleted(duressID)
	if normal.Params["text"] != duress.Params["text"] || normal.Params["reply_markup"] != duress.Params["reply_markup"] {
		t.Errorf("duress reply differs:\n%q\n%q", normal.Params, duress.Params)
	}
	ev := w.event(dialogs.EventDuressTriggered)
	if !ev.DoNotContact || ev.Severity != "critical" {
		t.Errorf("duress event %+v", ev)
	}

	upd, _ := w.api.Text(u, "sos")
	w.reply(u, n+2, "Your embassy has been alerted")
	w.event(dialogs.EventSOSRaised)
	w.api.Location(u, 11.5564, 104.9282)
	w.reply(u, n+3, "safe for the embassy to call you")
	w.event(dialogs.EventCaseUpdated)

	// Telegram redelivers the SOS update: nothing happens twice.
	w.api.Redeliver(upd, w.api.Update(upd))
	w.api.Sticker(u)
	w.reply(u, n+4, "I can only read text")
	time.Sleep(100 * time.Millisecond)
	if sent := w.api.Sent(u.ID); len(sent) != n+5 {
		t.Errorf("%d messages sent, want %d (the redelivered update was processed again?)", len(sent), n+5)
	}
}

func TestGroupChatsAreRefused(t *testing.T) {
	w := newWorld(t, telegram.Options{})
	u := fakeapi.User{ID: 5552, Lang: "ms"}
	w.api.GroupText(u, -100777, "hello")
	w.api.GroupText(u, -100777, "hello again") // told once, not per message
	deadline := time.Now().Add(5 * time.Second)
	for len(w.api.Sent(-100777)) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	sent := w.api.Sent(-100777)
	if len(sent) != 1 || !strings.Contains(sent[0].Params["text"], "private chats only (ms)") {
		t.Fatalf("group refusal: %+v", sent)
	}
	if n, _ := w.store.Backlog(); n != 0 {
		t.Errorf("a group message reached the engine")
	}
}

// TestRateLimitAndBlockedUser: a 429 pauses the chat for retry_after, a
// 5xx is retried, and a 403 tells the embassy the citizen is unreachable.
func TestRateLimitAndBlockedUser(t *testing.T) {
	w := newWorld(t, telegram.Options{})
	u := fakeapi.User{ID: 5553, Lang: "en"}
	n := w.register(u)
	w.api.Fail("sendMessage", fakeapi.Failure{Status: 429, RetryAfter: 1}, fakeapi.Failure{Status: 502})
	start := time.Now()
	w.api.Text(u, "ok")
	w.reply(u, n, "Check-in received")
	if took := time.Since(start); took < time.Second {
		t.Errorf("retry_after 1 s not honoured: sent after %s", took)
	}
	w.api.Fail("sendMessage", fakeapi.Failure{Status: 403})
	w.api.Text(u, "ok")
	ev := w.event(dialogs.EventRegistrationUnreachable)
	if ev.Severity != "high" {
		t.Errorf("unreachable event %+v", ev)
	}
}

// TestWebhookMode: the wrong secret gets 401; the right one gets 200 once
// the update was committed.
func TestWebhookMode(t *testing.T) {
	w := newWorld(t, telegram.Options{Webhook: &telegram.Webhook{URL: "https://bot.example/tg", Secret: "s3cret-token"}})
	deadline := time.Now().Add(5 * time.Second)
	for len(w.api.Calls("setWebhook")) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c := w.api.Calls("setWebhook"); len(c) != 1 || c[0].Params["secret_token"] != "s3cret-token" || c[0].Params["url"] != "https://bot.example/tg" {
		t.Fatalf("setWebhook calls %+v", c)
	}
	srv := httptest.NewServer(w.ch.WebhookHandler())
	defer srv.Close()
	body := []byte(`{"update_id": 9001, "message": {"message_id": 5, "date": 1, "chat": {"id": 5554, "type": "private"}, "from": {"id": 5554, "is_bot": false, "first_name": "T"}, "text": "hello"}}`)
	for _, c := range []struct {
		secret string
		want   int
	}{{"", 401}, {"wrong", 401}, {"s3cret-token", 200}, {"s3cret-token", 200}} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		if c.secret != "" {
			req.Header.Set("X-Telegram-Bot-Api-Secret-Token", c.secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("secret %q: %d, want %d", c.secret, resp.StatusCode, c.want)
		}
	}
	u := fakeapi.User{ID: 5554}
	w.reply(u, 0, "Which language")
	time.Sleep(100 * time.Millisecond)
	if got := len(w.api.Sent(5554)); got != 1 {
		t.Errorf("update delivered twice was answered %d times", got)
	}
	if len(w.api.Calls("getUpdates")) != 0 {
		t.Error("webhook mode polled")
	}
}

// TestSendingKeepsTheLimits: many citizens at once; no chat gets two
// messages closer than the per-chat interval and the global rate holds.
func TestSendingKeepsTheLimits(t *testing.T) {
	const perChat, rate = 200 * time.Millisecond, 50.0
	w := newWorld(t, telegram.Options{PerChat: perChat})
	_ = rate
	var users []fakeapi.User
	for i := 0; i < 20; i++ {
		users = append(users, fakeapi.User{ID: int64(7000 + i), Lang: "en"})
	}
	for round := 0; round < 3; round++ {
		for _, u := range users {
			w.api.Text(u, "hello")
		}
	}
	for _, u := range users {
		w.reply(u, 2, "Which language")
	}
	for _, u := range users {
		sent := w.api.Sent(u.ID)
		for i := 1; i < len(sent); i++ {
			if gap := sent[i].At.Sub(sent[i-1].At); gap < perChat-5*time.Millisecond {
				t.Errorf("chat %d: two messages %s apart", u.ID, gap)
			}
		}
	}
	if slices.ContainsFunc(w.api.Calls("sendMessage"), func(c fakeapi.Call) bool { return c.Params["text"] == "" }) {
		t.Error("an empty message was sent")
	}
}

// TestUncommittedUpdateIsNotAcknowledged: when the store cannot commit,
// the webhook answers 500 so that Telegram delivers the update again.
func TestUncommittedUpdateIsNotAcknowledged(t *testing.T) {
	w := newWorld(t, telegram.Options{Webhook: &telegram.Webhook{URL: "https://bot.example/tg", Secret: "s3cret-token"}})
	w.store.Close() // every commit now fails
	srv := httptest.NewServer(w.ch.WebhookHandler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"update_id": 9101, "message": {"message_id": 5, "date": 1, "chat": {"id": 5560, "type": "private"}, "from": {"id": 5560, "is_bot": false, "first_name": "T"}, "text": "sos"}}`))
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", "s3cret-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 so Telegram retries", resp.StatusCode)
	}
}

// TestCaptionIsRead: a photo sent "as proof of life" is read by its
// caption, so a keyword in it raises the alarm behind an ordinary reply.
func TestCaptionIsRead(t *testing.T) {
	w := newWorld(t, telegram.Options{})
	u := fakeapi.User{ID: 5561, Lang: "en"}
	n := w.register(u)
	w.api.Photo(u, "ok, all fine here, blue mango")
	w.reply(u, n, "Check-in received")
	w.event(dialogs.EventDuressTriggered)
}

var errDiskFull = errors.New("no space left on device")

func (w *world) notSaved() string {
	return w.runner.Engine.Catalog.Text("en", bot.NotSavedMessage, nil)
}

func (w *world) count(u fakeapi.User, text string) int {
	n := 0
	for _, c := range w.api.Sent(u.ID) {
		if strings.Contains(c.Params["text"], text) {
			n++
		}
	}
	return n
}

// TestDiskFullPolling: while the store cannot write, polling holds the
// offset at the SOS (it is fetched again and again, never given up), the
// runner is unhealthy, and the citizen is told once to send again. When
// the store recovers, the held SOS is processed: its reply and its webhook
// arrive.
func TestDiskFullPolling(t *testing.T) {
	w := newWorld(t, telegram.Options{})
	u := fakeapi.User{ID: 5570, Lang: "en"}
	n := w.register(u)
	w.store.SetWriteFault(errDiskFull)
	upd, _ := w.text(u, "sos")
	w.reply(u, n, w.notSaved())
	// The update keeps coming: at least two more fetches still ask for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		held := 0
		for _, c := range w.api.Calls("getUpdates") {
			if c.Params["offset"] == strconv.FormatInt(upd, 10) {
				held++
			}
		}
		if held >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the offset was not held at the SOS update (%d fetches of it)", held)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if w.runner.Healthy() == nil {
		t.Error("healthy while the store cannot write")
	}
	w.store.SetWriteFault(nil)
	w.reply(u, n+1, "Your embassy has been alerted")
	w.event(dialogs.EventSOSRaised)
	if got := w.count(u, w.notSaved()); got != 1 {
		t.Errorf("told %d times that the message was not saved, want once", got)
	}
	if w.runner.Healthy() != nil || w.runner.GivenUp() != 0 {
		t.Errorf("after recovery: healthy %v, given up %d", w.runner.Healthy(), w.runner.GivenUp())
	}
}

// TestDiskFullWebhook: while the store cannot write, the webhook answers
// 503 (Telegram retries) and the citizen is told once; once it recovers,
// the retried SOS is processed.
func TestDiskFullWebhook(t *testing.T) {
	w := newWorld(t, telegram.Options{Webhook: &telegram.Webhook{URL: "https://bot.example/tg", Secret: "s3cret-token"}})
	u := fakeapi.User{ID: 5571, Lang: "en"}
	n := w.register(u)
	w.store.SetWriteFault(errDiskFull)
	upd, _ := w.api.Text(u, "sos")
	for range 2 {
		if code := w.post(upd); code != http.StatusServiceUnavailable {
			t.Fatalf("webhook answered %d while the store cannot write, want 503", code)
		}
	}
	w.reply(u, n, w.notSaved())
	w.store.SetWriteFault(nil)
	if code := w.post(upd); code != http.StatusOK {
		t.Fatalf("retried update answered %d after recovery", code)
	}
	w.reply(u, n+1, "Your embassy has been alerted")
	w.event(dialogs.EventSOSRaised)
	if got := w.count(u, w.notSaved()); got != 1 {
		t.Errorf("told %d times that the message was not saved, want once", got)
	}
}

// TestPurgeAfterRestart: a secret-word exchange completes, and the
// process stops before its clean-up ran; after the restart on the same
// data file, every message of the exchange is deleted.
func TestPurgeAfterRestart(t *testing.T) {
	w1 := newWorldOn(t, telegram.Options{}, nil, "", false)
	u := fakeapi.User{ID: 5572, Lang: "en"}
	_, sensitive := w1.registerNoWait(u)
	w1.stop() // graceful: replies drained, acknowledgements committed
	w1.store.Close()
	for _, id := range sensitive {
		if w1.deleted(id) {
			t.Fatalf("message %d was deleted before the restart: the test would prove nothing", id)
		}
	}
	w2 := newWorldOn(t, telegram.Options{}, w1.api, w1.store.Path(), true)
	for _, id := range sensitive {
		w2.waitDeleted(id)
	}
	// The rows are settled in one commit after the batch of deletes: wait
	// for it rather than racing it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, _ := w2.store.PurgeRows()
		if len(rows) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d purge rows left after the purge", len(rows))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
