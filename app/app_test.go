package app_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/internal/testkit/apptest"
)

// registration is a citizen's whole registration, keyword "blue mango".
var registration = []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
	"24h", "09:00", "blue mango", "blue mango", "1"}

// TestAppEndToEnd drives the whole program — HTTP listener, Telegram
// webhook, runner, store, send queue, fake Bot API, webhook delivery to a
// real receiver — through registration and a duress check-in: the citizen
// sees the same reply as for a plain check-in, the embassy gets a signed
// duress.triggered, and no log line carries what the citizen typed.
func TestAppEndToEnd(t *testing.T) {
	var logs bytes.Buffer
	p := apptest.MustRunApp(t, func(o *app.Options) {
		o.Log = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	u := fakeapi.User{ID: 7001, Username: "siti", Lang: "en"}
	for _, text := range append(registration, "ok", "All good here. BLUE mango") {
		p.Say(u, text)
	}
	want := len(registration) + 2
	p.WaitFor("every reply", func() bool { return len(p.API.Sent(u.ID)) >= want })
	sent := p.API.Sent(u.ID)
	normal, duress := sent[want-2].Params["text"], sent[want-1].Params["text"]
	if !strings.Contains(normal, "Check-in received") || normal != duress {
		t.Errorf("plain check-in answered %q, duress %q: they must be identical", normal, duress)
	}
	p.WaitFor("the duress webhook", func() bool {
		for _, ev := range p.Receiver.Events() {
			if ev.Type == "duress.triggered" {
				return true
			}
		}
		return false
	})
	types := map[string]int{}
	for _, ev := range p.Receiver.Events() {
		types[ev.Type]++
	}
	if types["registration.created"] != 1 || types["duress.triggered"] != 1 {
		t.Errorf("embassy received %v, want one registration.created and one duress.triggered", types)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	for _, secret := range []string{"blue mango", "BLUE", "Siti", "siti", "Phnom"} {
		if strings.Contains(strings.ToLower(logs.String()), strings.ToLower(secret)) {
			t.Errorf("a log line carries %q:\n%s", secret, logs.String())
		}
	}
}

// TestWebhookRefusesWrongSecret: the program's listener serves the
// Telegram webhook only to a caller presenting the secret.
func TestWebhookRefusesWrongSecret(t *testing.T) {
	p := apptest.MustRunApp(t)
	p.WebhookSecret = "not-the-secret-at-all"
	id, _ := p.API.Text(fakeapi.User{ID: 7002, Lang: "en"}, "/start")
	if code := p.Post(id); code != http.StatusUnauthorized {
		t.Errorf("wrong secret answered %d, want 401", code)
	}
}
