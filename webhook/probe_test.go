package webhook_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/webhook"
)

// mode is how a test receiver answers every request, HEAD probe or POST.
type mode int32

const (
	modeOK       mode = iota // 200
	modeDown                 // 503
	modeRefuse               // 401: up, but the secret is wrong
	modeRedirect             // 302
	modeDrop                 // the connection is closed without an answer
	modes
)

func (m mode) String() string {
	return [...]string{"ok", "503", "401", "302", "drop"}[m]
}

// switchable is a real HTTP server whose behaviour a schedule sets.
type switchable struct {
	srv *httptest.Server
	m   atomic.Int32
}

func newSwitchable(t *testing.T) *switchable {
	s := &switchable{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode(s.m.Load()) {
		case modeDown:
			w.WriteHeader(http.StatusServiceUnavailable)
		case modeRefuse:
			w.WriteHeader(http.StatusUnauthorized)
		case modeRedirect:
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case modeDrop:
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// scenario is one generated interleaving: per step (5 s of the fake clock,
// a round and a report), the mode of the primary, secondary and partner
// URLs; the step at which the citizen acts; and the delivery policy.
type scenario struct {
	steps     [][3]mode
	actAt     int
	plain     []string // what the citizen sends in the plain session
	covert    []string // the same with the keyword, or a right guess of it
	heartbeat time.Duration
	secondary time.Duration
}

func (sc scenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "act at step %d (%q vs %q), heartbeat_every %s, secondary_after %s, modes:",
		sc.actAt, sc.plain, sc.covert, sc.heartbeat, sc.secondary)
	for i, s := range sc.steps {
		if i == 0 || s != sc.steps[i-1] {
			fmt.Fprintf(&b, " %d:%v/%v/%v", i, s[0], s[1], s[2])
		}
	}
	return b.String()
}

// genScenario draws runs of modes (each URL changes at random, mostly
// staying as it is), one of the actions a compound boss could compare,
// and a policy.
func genScenario(rng *rand.Rand) scenario {
	sc := scenario{steps: make([][3]mode, 60+rng.IntN(60))}
	var cur [3]mode
	for i := range sc.steps {
		for u := range cur {
			if rng.IntN(8) == 0 {
				cur[u] = mode(rng.IntN(int(modes)))
			}
		}
		sc.steps[i] = cur
	}
	sc.actAt = rng.IntN(len(sc.steps))
	guess := func(word string) []string {
		var msgs []string
		for range 3 {
			msgs = append(msgs, "/settings", "5", word, "purple tiger", "purple tiger")
		}
		return msgs
	}
	switch rng.IntN(3) {
	case 0:
		sc.plain, sc.covert = []string{"ok"}, []string{"ok " + keyword}
	case 1:
		sc.plain, sc.covert = []string{"OK, I am fine"}, []string{"OK, I am fine " + keyword}
	default:
		// A right guess of the current word against a wrong one: only the
		// wrong guesses record keyword.change_failed.
		sc.plain, sc.covert = guess(keyword), guess("green apple")
	}
	sc.heartbeat = []time.Duration{0, 2 * time.Minute, 24 * time.Hour}[rng.IntN(3)]
	sc.secondary = []time.Duration{30 * time.Second, 2 * time.Minute}[rng.IntN(2)]
	return sc
}

// runScenario drives one session of the real runner, store and deliverer
// through sc on a fake clock, sending msgs at sc.actAt, and returns the
// log (time dropped) and the event types recorded.
func runScenario(t *testing.T, sc scenario, msgs []string) (string, []string) {
	urls := [3]*switchable{newSwitchable(t), newSwitchable(t), newSwitchable(t)}
	var eps []webhook.Endpoint
	for _, e := range config.Default().Embassies {
		eps = append(eps,
			webhook.Endpoint{ID: e.ID, URL: urls[0].srv.URL, Secrets: [][]byte{logKey}, Embassy: e.ID, Secondary: e.ID + "/secondary"},
			webhook.Endpoint{ID: e.ID + "/secondary", URL: urls[1].srv.URL, Secrets: [][]byte{logKey}, Embassy: e.ID, Backup: true},
			// A partner that receives alerts only: the duress event reaches
			// it, the plain session sends it nothing but heartbeats.
			webhook.Endpoint{ID: e.ID + "/partner/ngo", URL: urls[2].srv.URL, Secrets: [][]byte{logKey}, Embassy: e.ID,
				Events: []string{dialogs.EventDuressTriggered, dialogs.EventSOSRaised, dialogs.EventKeywordChangeFailed}})
	}
	policy := webhook.DefaultPolicy()
	policy.Jitter = 0 // random, but not with duress: the comparison needs it fixed
	policy.HeartbeatEvery = sc.heartbeat
	policy.SecondaryAfter = sc.secondary
	policy.Timeout = 2 * time.Second
	s := newLogSession(t, eps, policy)
	s.register()
	step := func(m [3]mode) {
		for i, u := range urls {
			u.m.Store(int32(m[i]))
		}
		s.rounds(1)
	}
	for i, m := range sc.steps {
		if i == sc.actAt {
			s.say(msgs...)
		}
		step(m)
	}
	for range 40 { // everything back: recovery lines
		step([3]mode{})
	}
	return s.logs.String(), s.types
}

// TestProbeLogsBlindToEvents is the generator behind the two review
// findings: for random interleavings of the primary, secondary and partner
// URLs answering, failing, refusing, redirecting or dropping, with the
// citizen acting at a random moment, a session whose action records an
// alert (a duress check-in, wrong guesses of the secret word) writes
// exactly the log of the one whose action records none. Across all
// scenarios, every kind of line the prober writes must have appeared, so
// the comparison is not between two empty logs.
func TestProbeLogsBlindToEvents(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	seen := map[string]bool{}
	kinds := []string{"endpoint failing", "still failing", "endpoint recovered", "last_status=5xx",
		"last_status=3xx", "last_status=connection", "did not accept the signed heartbeat", "last_status=401",
		"accepted the signed heartbeat", "endpoint=my-mekong/secondary", "endpoint=my-mekong/partner/ngo"}
	for seed := range uint64(seeds) {
		sc := genScenario(rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)))
		plain, plainTypes := runScenario(t, sc, sc.plain)
		covert, covertTypes := runScenario(t, sc, sc.covert)
		if len(covertTypes) <= len(plainTypes) {
			t.Fatalf("seed %d: events: plain %v, covert %v: the comparison would prove nothing", seed, plainTypes, covertTypes)
		}
		if plain != covert {
			pl, cl := strings.Split(plain, "\n"), strings.Split(covert, "\n")
			i := 0
			for i < min(len(pl), len(cl)) && pl[i] == cl[i] {
				i++
			}
			line := func(l []string) string {
				if i < len(l) {
					return l[i]
				}
				return "(end of log)"
			}
			t.Errorf("seed %d: the logs differ at line %d of %d/%d:\n plain:  %s\n covert: %s\nscenario: %v",
				seed, i+1, len(pl), len(cl), line(pl), line(cl), sc)
		}
		for _, k := range kinds {
			seen[k] = seen[k] || strings.Contains(plain, k)
		}
		for _, secret := range []string{keyword, "mango", "green apple", "purple", name, "Siti", address, "345 678",
			"duress", "keyword", "critical", "case_", "evt_", "http://"} {
			if strings.Contains(strings.ToLower(covert), strings.ToLower(secret)) {
				t.Errorf("seed %d: a log line carries %q", seed, secret)
			}
		}
	}
	if testing.Short() {
		return
	}
	for _, k := range kinds {
		if !seen[k] {
			t.Errorf("no scenario logged %q: the generator does not reach that line", k)
		}
	}
}
