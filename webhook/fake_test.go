package webhook

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
)

// These tests drive Round by hand with a fake clock against real local
// HTTP receivers and the in-memory fakeOutbox: the delivery decisions —
// order, retries, the secondary URL, giving up, a refused event — without
// bbolt.

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fakeWorld struct {
	t                  *testing.T
	clock              *fakeClock
	box                *fakeOutbox
	primary, secondary *receiver
	d                  *Deliverer
}

func newFakeWorld(t *testing.T) *fakeWorld {
	w := &fakeWorld{t: t, clock: &fakeClock{t: time.Now().UTC().Truncate(time.Second)}, box: newFakeOutbox()}
	w.primary, w.secondary = newReceiver(t, [][]byte{key1}), newReceiver(t, [][]byte{key1})
	w.primary.sink.Now, w.secondary.sink.Now = w.clock.Now, w.clock.Now // timestamps follow the fake clock
	p := DefaultPolicy()
	p.Retry = []time.Duration{10 * time.Second, 20 * time.Second}
	p.Jitter = 0
	p.SecondaryAfter = time.Minute
	p.GiveUpAfter = 5 * time.Minute
	p.HeartbeatEvery = 0
	p.KeepDelivered = 0
	p.Timeout = 5 * time.Second
	w.d = &Deliverer{Store: w.box, Policy: p, Now: w.clock.Now, Log: slog.New(slog.DiscardHandler),
		Endpoints: []Endpoint{
			{ID: "emb", URL: w.primary.srv.URL, Secrets: [][]byte{key1}, Embassy: "emb", Secondary: "emb/secondary"},
			{ID: "emb/secondary", URL: w.secondary.srv.URL, Secrets: [][]byte{key1}, Embassy: "emb", Backup: true},
		}}
	return w
}

func (w *fakeWorld) event(typ escalation.Type, sev escalation.Severity, caseID string) escalation.Event {
	return w.box.add(escalation.Event{Type: typ, Severity: sev, CaseID: caseID, EmbassyID: "emb",
		CreatedAt: w.clock.Now(), Registrant: &escalation.RegistrantView{ID: "reg_x"}})
}

func (w *fakeWorld) round() {
	w.t.Helper()
	if _, err := w.d.Round(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

func ids(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

// row finds the row of event id for endpoint, pending or archived.
func (w *fakeWorld) row(endpoint, id string) (escalation.Delivery, bool) {
	pending, done := w.box.state()
	for _, d := range pending {
		if d.Endpoint == endpoint && d.EventID == id {
			return d, true
		}
	}
	for _, d := range done {
		if d.Endpoint == endpoint && d.EventID == id {
			return d, false
		}
	}
	w.t.Fatalf("no row for %s at %s", id, endpoint)
	return escalation.Delivery{}, false
}

func TestFakeOutboxOrder(t *testing.T) {
	w := newFakeWorld(t)
	var want []string
	for i := range 3 {
		want = append(want, w.event(escalation.TypeCaseUpdated, escalation.SeverityCritical, "case_a").ID)
		if i == 0 {
			want = append(want, w.event(escalation.TypeRegistrationCreated, escalation.SeverityInfo, "").ID)
		}
	}
	w.round()
	got := ids(w.primary.received())
	if len(got) != len(want) {
		t.Fatalf("one round delivered %v, want all of %v", got, want)
	}
	var caseA []string
	for _, id := range got {
		if id != want[1] {
			caseA = append(caseA, id)
		}
	}
	if !slices.Equal(caseA, []string{want[0], want[2], want[3]}) {
		t.Errorf("case events arrived as %v, want recording order %v", caseA, []string{want[0], want[2], want[3]})
	}
	if pending, done := w.box.state(); len(pending) != 0 || len(done) != 4 {
		t.Errorf("pending %d, archived %d: want 0 and 4", len(pending), len(done))
	}
	if len(w.secondary.received()) != 0 {
		t.Errorf("the secondary got %v while the primary was up", ids(w.secondary.received()))
	}
}

func TestFakeOutboxRetries(t *testing.T) {
	w := newFakeWorld(t)
	w.primary.failing.Store(true)
	first := w.event(escalation.TypeSOSRaised, escalation.SeverityCritical, "case_a")
	second := w.event(escalation.TypeCaseUpdated, escalation.SeverityCritical, "case_a")
	w.round()
	d, pending := w.row("emb", first.ID)
	if !pending || d.Attempts != 1 || !d.NextAt.Equal(w.clock.Now().Add(10*time.Second)) || d.LastError != "HTTP 503" {
		t.Fatalf("after one failure: %+v pending=%v", d, pending)
	}
	if d2, _ := w.row("emb", second.ID); d2.Attempts != 0 {
		t.Errorf("the case's second event was tried before its first: %+v", d2)
	}
	requests := func() int { w.primary.mu.Lock(); defer w.primary.mu.Unlock(); return len(w.primary.log) }
	n := requests()
	w.clock.Advance(5 * time.Second)
	late := w.event(escalation.TypeRegistrationCreated, escalation.SeverityInfo, "") // due at once, but the endpoint backs off
	w.round()
	if requests() != n {
		t.Errorf("sent to the endpoint during its backoff")
	}
	w.clock.Advance(6 * time.Second)
	w.round() // second failure: the next delay is the second step
	if d, _ := w.row("emb", first.ID); d.Attempts != 2 || !d.NextAt.Equal(w.clock.Now().Add(20*time.Second)) {
		t.Errorf("after two failures: %+v", d)
	}
	w.primary.failing.Store(false)
	w.clock.Advance(21 * time.Second)
	w.round()
	// In waves: every case's first event (critical first), then the next.
	if got := ids(w.primary.received()); !slices.Equal(got, []string{first.ID, late.ID, second.ID}) {
		t.Errorf("delivered %v, want %v", got, []string{first.ID, late.ID, second.ID})
	}
	if d, pending := w.row("emb", first.ID); pending || d.Attempts != 3 || d.GaveUp {
		t.Errorf("delivered row %+v pending=%v", d, pending)
	}
}

func TestFakeOutboxSecondary(t *testing.T) {
	w := newFakeWorld(t)
	w.primary.failing.Store(true)
	critical := w.event(escalation.TypeDuressTriggered, escalation.SeverityCritical, "case_a")
	waiting := w.event(escalation.TypeCaseUpdated, escalation.SeverityCritical, "case_a") // never attempted: waits behind the first
	// 40 rounds 10 s apart: well past SecondaryAfter (1 m).
	for range 40 {
		w.round()
		w.clock.Advance(10 * time.Second)
	}
	got := ids(w.secondary.received())
	if !slices.Equal(got, []string{critical.ID, waiting.ID}) {
		t.Errorf("the secondary got %v, want both critical events in order %v", got, []string{critical.ID, waiting.ID})
	}
	for _, id := range []string{critical.ID, waiting.ID} {
		if d, pending := w.row("emb", id); !pending || !d.SecondaryQueued || d.GaveUp {
			t.Errorf("critical event at the primary: %+v pending=%v: it must never give up", d, pending)
		}
	}
	for _, ev := range w.secondary.received() {
		if ev.Severity != string(escalation.SeverityCritical) {
			t.Errorf("the secondary got a %s event", ev.Severity)
		}
	}
}

func TestFakeOutboxGiveUp(t *testing.T) {
	w := newFakeWorld(t)
	w.primary.failing.Store(true)
	info := w.event(escalation.TypeRegistrationUpdated, escalation.SeverityInfo, "")
	var gaveUpAt time.Time
	for range 40 { // 40 × 10 s: past GiveUpAfter (5 m)
		w.round()
		if d, pending := w.row("emb", info.ID); !pending && gaveUpAt.IsZero() {
			gaveUpAt = d.DoneAt
		}
		w.clock.Advance(10 * time.Second)
	}
	d, pending := w.row("emb", info.ID)
	if pending || !d.GaveUp || d.Attempts == 0 || d.FirstFailure.IsZero() {
		t.Fatalf("the info event: %+v pending=%v: want given up after failing 5 minutes", d, pending)
	}
	if failed := gaveUpAt.Sub(d.FirstFailure); failed < 5*time.Minute || failed > 5*time.Minute+30*time.Second {
		t.Errorf("given up after failing %s, want 5m (GiveUpAfter) plus at most one retry step", failed)
	}
	if len(w.secondary.received()) != 0 {
		t.Errorf("an info event reached the secondary: %v", ids(w.secondary.received()))
	}
}

// A refused event (a 4xx) is the event's problem: the endpoint is up, so
// other cases go on in the same round while the refused case waits.
func TestFakeOutboxRefusedEventDoesNotBlockOthers(t *testing.T) {
	w := newFakeWorld(t)
	refused := w.event(escalation.TypeSOSRaised, escalation.SeverityCritical, "case_a")
	behind := w.event(escalation.TypeCaseUpdated, escalation.SeverityCritical, "case_a")
	other := w.event(escalation.TypeCheckinMissed, escalation.SeverityCritical, "case_b")
	inner := w.primary.srv.Config.Handler
	w.primary.srv.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.Header.Get(HeaderID), refused.ID) {
			rw.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		inner.ServeHTTP(rw, r)
	})
	w.round()
	if got := ids(w.primary.received()); !slices.Equal(got, []string{other.ID}) {
		t.Errorf("delivered %v, want the other case's %s in the same round", got, other.ID)
	}
	d, pending := w.row("emb", refused.ID)
	if !pending || d.Attempts != 1 || !strings.Contains(d.LastError, "422") {
		t.Errorf("refused row %+v pending=%v", d, pending)
	}
	if d, _ := w.row("emb", behind.ID); d.Attempts != 0 {
		t.Errorf("the refused case's next event was sent: %+v", d)
	}
}
