package webhook_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/webhook"
)

// Adversarial review (issue 9): the existing log test lets the endpoint
// fail during registration, so "endpoint failing" is already in both logs
// before the check-in. Here the endpoint is healthy while the citizen
// registers (every event delivered, daily heartbeat sent), then goes down.
// A plain check-in records no event, so nothing is attempted and nothing
// logged; a duress check-in records duress.triggered, which is attempted,
// fails, and the health report then says "webhook endpoint failing". The
// compound boss reading the log learns that the last message carried the
// keyword.
func reviewSessionEndpointDiesAfterRegistration(t *testing.T, after ...string) (string, []string) {
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var eps []webhook.Endpoint
	for _, e := range config.Default().Embassies {
		eps = append(eps, webhook.Endpoint{ID: e.ID, URL: srv.URL, Secrets: [][]byte{logKey}, Embassy: e.ID})
	}
	clock := time.Date(2030, 3, 1, 8, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	r := testkit.Runner(t)
	r.Now, r.Log = now, logger
	r.Register("telegram", nopSender{})
	var types []string
	r.OnEvents = func(evs []store.Event) {
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
	}
	policy := webhook.DefaultPolicy() // daily heartbeat, as shipped
	policy.Jitter = 0
	d := &webhook.Deliverer{Store: r.Store.(*boltstore.Store), Endpoints: eps, Policy: policy, Now: now, Log: logger}
	say := func(text string) {
		if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: address, Kind: dialogs.KindText, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	rounds := func(n int) {
		for range n {
			clock = clock.Add(5 * time.Second)
			if _, err := d.Round(context.Background()); err != nil {
				t.Fatal(err)
			}
			d.ReportHealth()
		}
	}
	for _, text := range []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", name, "skip", "skip",
		"skip", "24h", "09:00", keyword, keyword, "1"} {
		say(text)
	}
	rounds(30) // registration events and the heartbeat delivered
	down.Store(true)
	for _, text := range after {
		say(text)
	}
	rounds(60)
	return logs.String(), types
}

// TestReviewLogsRevealDuressWhenEndpointDiesLater fails today: the two logs
// differ.
func TestReviewLogsRevealDuressWhenEndpointDiesLater(t *testing.T) {
	plain, plainTypes := reviewSessionEndpointDiesAfterRegistration(t, "ok")
	duress, duressTypes := reviewSessionEndpointDiesAfterRegistration(t, "ok "+keyword)
	if !strings.Contains(strings.Join(duressTypes, ","), dialogs.EventDuressTriggered) ||
		strings.Contains(strings.Join(plainTypes, ","), dialogs.EventDuressTriggered) {
		t.Fatalf("events: plain %v, duress %v: the comparison would prove nothing", plainTypes, duressTypes)
	}
	if plain != duress {
		t.Errorf("the log tells a duress check-in apart when the endpoint fails after registration:\n--- plain:\n%s--- duress:\n%s", plain, duress)
	}
}

// TestReviewLogsAnswerSettingsGuess fails today: the settings change asks
// for the current word and looks the same whether the guess is right, but
// the third wrong guess in a day records keyword.change_failed, and with
// the endpoint failing since registration that event makes the log say
// "webhook endpoint failing". Three guesses and a look at the log tell the
// boss whether "blue mango" is the word.
func TestReviewLogsAnswerSettingsGuess(t *testing.T) {
	probe := func(guess string) []string {
		var msgs []string
		for range 3 {
			msgs = append(msgs, "/settings", "5", guess, "purple tiger", "purple tiger")
		}
		return msgs
	}
	right, rightTypes := reviewSessionEndpointDiesAfterRegistration(t, probe(keyword)...)
	wrong, wrongTypes := reviewSessionEndpointDiesAfterRegistration(t, probe("green apple")...)
	t.Logf("events: right guess %v, wrong guess %v", rightTypes, wrongTypes)
	if right != wrong {
		t.Errorf("the log tells a right guess of the current word from a wrong one:\n--- right:\n%s--- wrong:\n%s", right, wrong)
	}
}
