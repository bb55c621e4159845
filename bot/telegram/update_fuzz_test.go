package telegram_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/checkinbot/checkinbot/internal/testkit/syncbuf"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/bot/telegram"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/dialogs"
)

// textMark brackets every fuzzed text, caption, button data and name, so
// that any of it reaching a log is found by one search whatever the
// fuzzer made of the rest.
const textMark = "TXTMARKv9"

// FuzzUpdate posts arbitrary updates to the webhook handler over real
// HTTP: either raw bytes, or a real update shape (private text, caption,
// location, sticker, button press, edited message, group message, channel
// post, button on an inaccessible message, button on an inline-mode
// message, an update type the bot does not ask for) built by the fake Bot API around fuzzed text, chat id and
// language, optionally grown past the 1 MiB body limit. Properties:
//
//   - the handler never panics (the server's error log stays empty and
//     every request is answered);
//   - it answers 401 without the secret, 400 to what is not an update or is
//     over 1 MiB, and 200 to a well-formed update (the inbox accepts all);
//   - a private message reaches the inbox once, mapped faithfully (kind,
//     text, address, language hint, message id); nothing else does;
//   - no fuzzed text, caption, data or name ever appears in a log.
func FuzzUpdate(f *testing.F) {
	h := newUpdateHarness(f)
	f.Add([]byte(`{"update_id":1}`), "hello", int64(1001), "en", uint8(0))
	f.Add([]byte(nil), "/start", int64(1001), "th", uint8(1))
	f.Add([]byte(nil), "ok blue mango", int64(-100777), "ms", uint8(7))
	f.Add([]byte(nil), "yes", int64(42), "zh-hans", uint8(5))
	f.Add([]byte(`{"update_id":`), "", int64(0), "", uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, text string, chat int64, lang string, shape uint8) {
		h.reset()
		body, want := h.build(t, raw, text, chat, lang, shape)
		secret := h.secret
		if shape&0x80 != 0 {
			secret = secret[:len(secret)-1] + "X"
			want.status, want.in = http.StatusUnauthorized, nil
		}
		status := h.post(t, body, secret)
		if want.status != 0 && status != want.status {
			t.Errorf("shape %d: status %d, want %d (body %.200q)", shape, status, want.status, body)
		}
		if want.status == 0 && status != http.StatusOK && status != http.StatusBadRequest {
			t.Errorf("raw body: status %d, want 200 or 400 (body %.200q)", status, body)
		}
		got := h.inbound()
		switch {
		case want.in == nil && want.status != 0 && len(got) > 0:
			t.Errorf("shape %d: an update the engine must not see reached it: %+v", shape, got)
		case want.in != nil && len(got) != 1:
			t.Errorf("shape %d: %d inbound, want 1", shape, len(got))
		case want.in != nil && !sameInbound(got[0], *want.in):
			t.Errorf("shape %d: mapped to %+v, want %+v", shape, got[0], *want.in)
		}
		if status != http.StatusOK && status != http.StatusBadRequest && status != http.StatusUnauthorized {
			t.Errorf("unexpected status %d", status)
		}
		if logs := h.logs(); strings.Contains(logs, textMark) {
			t.Errorf("fuzzed text reached a log:\n%s", logs)
		} else if strings.Contains(logs, "panic") {
			t.Errorf("the handler panicked:\n%s", logs)
		}
	})
}

// expectation is what one posted update must produce: the status (0: 200
// or 400, for raw bytes) and the inbound message (nil: none).
type expectation struct {
	status int
	in     *bot.Inbound
}

// updateHarness is one channel in webhook mode on a fake Bot API, behind
// a real HTTP server, with its inbox and every log captured.
type updateHarness struct {
	api    *fakeapi.Server
	srv    *httptest.Server
	secret string
	logBuf syncbuf.Buffer
	mu     sync.Mutex
	got    []bot.Inbound
}

func newUpdateHarness(f *testing.F) *updateHarness {
	h := &updateHarness{api: fakeapi.New(token), secret: "fuzz-webhook-secret-0123456789"}
	f.Cleanup(h.api.Close)
	logger := slog.New(slog.NewTextHandler(&h.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ch, err := telegram.New(telegram.Options{Token: token, APIURL: h.api.URL, PollTimeout: time.Second,
		Webhook:      &telegram.Webhook{URL: "https://bot.example.org/tg", Secret: h.secret},
		GroupRefusal: func(lang string) string { return "private chats only" }, Log: logger},
		bot.InboxOf(handlerFunc(func(_ context.Context, in bot.Inbound) error {
			h.mu.Lock()
			h.got = append(h.got, in)
			h.mu.Unlock()
			return nil
		})))
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ch.Run(ctx) }()
	f.Cleanup(func() { cancel(); <-done })
	h.srv = httptest.NewUnstartedServer(ch.WebhookHandler())
	h.srv.Config.ErrorLog = log.New(&h.logBuf, "http: ", 0)
	h.srv.Start()
	f.Cleanup(h.srv.Close)
	return h
}

type handlerFunc func(context.Context, bot.Inbound) error

func (f handlerFunc) Handle(ctx context.Context, in bot.Inbound) error { return f(ctx, in) }

func (h *updateHarness) reset() {
	h.mu.Lock()
	h.got = nil
	h.mu.Unlock()
	h.logBuf.Reset()
}

func (h *updateHarness) inbound() []bot.Inbound {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bot.Inbound(nil), h.got...)
}

// logs waits for the channel's background calls (answering a button,
// refusing a group) to settle, then returns everything logged.
func (h *updateHarness) logs() string {
	time.Sleep(time.Millisecond)
	return h.logBuf.String()
}

func (h *updateHarness) post(t *testing.T, body []byte, secret string) int {
	req, err := http.NewRequest(http.MethodPost, h.srv.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("no answer (did the handler panic?): %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// build makes the body of one update and what it must produce.
func (h *updateHarness) build(t *testing.T, raw []byte, text string, chat int64, lang string, shape uint8) ([]byte, expectation) {
	if shape&0x3f == 0 {
		return raw, expectation{}
	}
	// Marked text, name and data (valid UTF-8: the raw bodies try the
	// rest); a chat id that is a private chat's.
	text, lang = strings.ToValidUTF8(text, ""), strings.ToValidUTF8(lang, "")
	marked := textMark + text + textMark
	if chat == 0 {
		chat = 1
	}
	u := fakeapi.User{ID: chat, Username: textMark + "user", Lang: lang}
	want := &bot.Inbound{Channel: telegram.Name, Address: strconv.FormatInt(chat, 10), LangHint: lang, Handle: "@" + u.Username}
	var id int64
	kind := shape & 0x3f % 12
	switch kind {
	case 0, 1: // a typed message
		id, _ = h.api.Text(u, marked)
		want.Kind, want.Text = dialogs.KindText, marked
	case 2: // a shared location
		id = h.api.Location(u, float64(int8(shape))/1.5, float64(chat%360)-180)
		want.Kind, want.Lat, want.Lon = dialogs.KindLocation, float64(int8(shape))/1.5, float64(chat%360)-180
	case 3:
		id = h.api.Sticker(u)
		want.Kind = dialogs.KindMedia
	case 4: // a photo "as proof of life", read by its caption
		id = h.api.Photo(u, marked)
		want.Kind, want.Text = dialogs.KindText, marked
	case 5: // a button
		id = h.api.Press(u, 7, marked)
		want.Kind, want.Text = dialogs.KindButton, marked
	case 6: // an edited message is read like a new one
		id, _ = h.api.Text(u, marked)
		want.Kind, want.Text = dialogs.KindText, marked
	case 7: // a group: refused, never seen by the engine
		id = h.api.GroupText(u, -chat-1, marked)
		want = nil
	case 8: // a channel post: nothing to do
		id, _ = h.api.Text(u, marked)
		want = nil
	case 9: // a button under a message the bot can no longer access
		id = h.api.Press(u, 7, marked)
		want.Kind, want.Text = dialogs.KindButton, marked
	case 10: // an update type the bot never asks for
		id, _ = h.api.Text(u, marked)
		want = nil
	default: // a button under an inline-mode message: no chat to answer in
		id = h.api.Press(u, 7, marked)
		want = nil
	}
	upd := h.api.Update(id)
	switch kind {
	case 6:
		upd = map[string]any{"update_id": id, "edited_message": upd["message"]}
	case 8:
		upd = map[string]any{"update_id": id, "channel_post": upd["message"]}
	case 9:
		q := upd["callback_query"].(map[string]any)
		q["message"] = map[string]any{"message_id": 7, "date": 0, "chat": map[string]any{"id": chat, "type": "private"}}
	case 10:
		upd = map[string]any{"update_id": id, "message_reaction": upd["message"]}
	case 11:
		q := upd["callback_query"].(map[string]any)
		delete(q, "message")
		q["inline_message_id"] = "AAAA-inline"
	}
	if want != nil {
		want.MessageID = "u" + strconv.FormatInt(id, 10)
		if m, ok := upd["message"].(map[string]any); ok {
			want.DeleteID = strconv.Itoa(m["message_id"].(int))
		} else if m, ok := upd["edited_message"].(map[string]any); ok {
			want.DeleteID = strconv.Itoa(m["message_id"].(int))
		}
		if u.Username == "" {
			want.Handle = ""
		}
	}
	body, err := json.Marshal(upd)
	if err != nil {
		t.Fatal(err)
	}
	if shape&0x40 != 0 {
		// Past the 1 MiB limit, inside the update: refused whole.
		body = append(body[:len(body)-1], []byte(`,"padding":"`+strings.Repeat("x", 1<<20)+`"}`)...)
		return body, expectation{status: http.StatusBadRequest}
	}
	return body, expectation{status: http.StatusOK, in: want}
}

func sameInbound(got, want bot.Inbound) bool {
	return got == want
}
