package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
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
	policy := webhook.DefaultPolicy() // daily heartbeat, as shipped
	policy.Jitter = 0
	s := newLogSession(t, eps, policy)
	s.register()
	s.rounds(30) // registration events and the heartbeat delivered
	down.Store(true)
	s.say(after...)
	s.rounds(60)
	return s.logs.String(), s.types
}

// TestReviewLogsRevealDuressWhenEndpointDiesLater failed before the prober: the two logs
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

// TestReviewLogsAnswerSettingsGuess failed before the prober: the settings change asks
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
