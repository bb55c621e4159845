package webhook_test

import (
	"context"
	"github.com/checkinbot/checkinbot/internal/testkit/syncbuf"
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

// nopSender accepts every reply.
type nopSender struct{}

func (nopSender) Send(context.Context, string, bot.Response) error { return nil }

// logKey signs the deliveries of these sessions.
var logKey = []byte("0123456789abcdef0123456789abcdef")

const (
	address = "+855 12 345 678"
	keyword = "blue mango"
	name    = "Siti Aminah"
)

// logSession is one citizen's session through the real engine, store and
// runner, with a deliverer driven round by round on a fake clock and every
// log line captured (time dropped): the harness of the tests that compare
// the log of a plain session with that of a duress one.
type logSession struct {
	t      *testing.T
	logs   *syncbuf.Buffer
	logger *slog.Logger
	clock  time.Time
	r      *bot.Runner
	d      *webhook.Deliverer
	types  []string // event types recorded, in order
}

func newLogSession(t *testing.T, eps []webhook.Endpoint, policy webhook.Policy) *logSession {
	s := &logSession{t: t, logs: &syncbuf.Buffer{}, clock: time.Date(2030, 3, 1, 8, 0, 0, 0, time.UTC)}
	s.logger = slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	now := func() time.Time { return s.clock }
	s.r = testkit.Runner(t)
	s.r.Now, s.r.Log = now, s.logger
	s.r.Register("telegram", nopSender{})
	s.r.OnEvents = func(evs []store.Event) {
		for _, ev := range evs {
			s.types = append(s.types, ev.Type)
		}
	}
	s.d = &webhook.Deliverer{Store: s.r.Store.(*boltstore.Store), Endpoints: eps, Policy: policy, Now: now, Log: s.logger}
	return s
}

// say sends texts from the citizen, one message each.
func (s *logSession) say(texts ...string) {
	for _, text := range texts {
		if err := s.r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: address, Kind: dialogs.KindText, Text: text}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// register completes a registration with the keyword.
func (s *logSession) register() {
	s.say("/start", "en", "1", "MY", "KH", "Phnom Penh", name, "skip", "skip", "skip", "24h", "09:00", keyword, keyword, "1")
}

// rounds advances the clock 5 s and runs one delivery round and one health
// report, n times.
func (s *logSession) rounds(n int) {
	for range n {
		s.clock = s.clock.Add(5 * time.Second)
		if _, err := s.d.Round(context.Background()); err != nil {
			s.t.Fatal(err)
		}
		s.d.ReportHealth()
	}
}

// session runs one complete session against the real engine, store and
// runner, with every embassy's primary and secondary URL answering 503,
// and returns every log line written (time dropped) and the event types
// recorded. The deliverer is driven through the same rounds on a fake
// clock whatever the session did.
//
// pullOnly names an embassy configured with no URL at all ("" for none).
func session(t *testing.T, checkin, pullOnly string) (string, []string) {
	var up atomic.Bool // both URLs answer 503 until the end of the session
	answer := func(w http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}
	down := httptest.NewServer(http.HandlerFunc(answer))
	defer down.Close()
	secondaryDown := httptest.NewServer(http.HandlerFunc(answer))
	defer secondaryDown.Close()
	var eps []webhook.Endpoint
	for _, e := range config.Default().Embassies {
		if e.ID == pullOnly {
			continue // no URL: its events wait in the outbox
		}
		eps = append(eps,
			webhook.Endpoint{ID: e.ID, URL: down.URL, Secrets: [][]byte{logKey}, Embassy: e.ID, Secondary: e.ID + "/secondary"},
			webhook.Endpoint{ID: e.ID + "/secondary", URL: secondaryDown.URL, Secrets: [][]byte{logKey}, Embassy: e.ID, Backup: true})
	}
	// No daily heartbeat: the endpoints learn of failures only from what
	// waits for them (and the secondary from its probe), the harder case.
	policy := webhook.DefaultPolicy()
	policy.HeartbeatEvery = 0
	// Jitter moves the retry that finds the recovery, at random: the same
	// in both sessions only without it.
	policy.Jitter = 0
	s := newLogSession(t, eps, policy)
	prev := slog.Default()
	slog.SetDefault(s.logger)
	defer slog.SetDefault(prev)

	s.register()
	s.rounds(30) // the endpoint is found failing on the registration
	s.say(checkin)
	s.rounds(60) // past the secondary threshold, several reports
	up.Store(true)
	s.rounds(150) // recovery of both, whatever their backoff
	return s.logs.String(), s.types
}

// TestDeliveryLogsBlindToDuress: with the embassy's endpoint and its
// secondary URL down (then back), or with no URL configured at all, a
// session with a plain check-in and one with a duress check-in write
// exactly the same log lines, and none of them carries message text, the
// keyword, a name or a phone number.
func TestDeliveryLogsBlindToDuress(t *testing.T) {
	tests := []struct {
		name     string
		pullOnly string
		want     []string // the log must say what an operator needs
	}{
		{"URLs failing", "", []string{"webhook endpoint failing", "still failing", "my-mekong/secondary", "last_status=5xx", "recovered\" endpoint=my-mekong/secondary"}},
		{"no URL", "my-mekong", []string{"no webhook URL", "embassy=my-mekong", "waiting_for=2m0s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plain, plainTypes := session(t, "ok", tc.pullOnly)
			duress, duressTypes := session(t, "ok "+keyword, tc.pullOnly)
			has := func(typ string, types []string) bool { return strings.Contains(strings.Join(types, ","), typ) }
			if !has(dialogs.EventDuressTriggered, duressTypes) || has(dialogs.EventDuressTriggered, plainTypes) {
				t.Fatalf("events: plain %v, duress %v: the comparison would prove nothing", plainTypes, duressTypes)
			}
			for _, want := range tc.want {
				if !strings.Contains(plain, want) {
					t.Errorf("the log does not report %q:\n%s", want, plain)
				}
			}
			pl, dl := strings.Split(plain, "\n"), strings.Split(duress, "\n")
			for i := range max(len(pl), len(dl)) {
				var a, b string
				if i < len(pl) {
					a = pl[i]
				}
				if i < len(dl) {
					b = dl[i]
				}
				if a != b {
					t.Errorf("the logs differ at line %d:\n plain:  %s\n duress: %s", i+1, a, b)
					break
				}
			}
			if len(pl) != len(dl) {
				t.Errorf("the plain session logged %d lines, the duress one %d", len(pl), len(dl))
			}
			for _, secret := range []string{keyword, "mango", name, "Siti", "Aminah", address, "345 678", "Phnom Penh",
				"duress", "critical", "sos", "case_", "evt_", "http://"} {
				if strings.Contains(strings.ToLower(duress), strings.ToLower(secret)) {
					t.Errorf("a log line carries %q:\n%s", secret, duress)
				}
			}
			if testing.Verbose() {
				t.Log(duress)
			}
		})
	}
}
