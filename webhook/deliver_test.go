package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// receiver is a real Sink behind a switch that can make it fail, recording
// every request that reached it.
type receiver struct {
	sink    *Sink
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	log     []request // every request, in arrival order
	events  []Event   // first receipt of each event, in order
}

type request struct {
	id string
	ts string
	at time.Time
}

func newReceiver(t *testing.T, keys [][]byte) *receiver {
	r := &receiver{}
	r.sink = &Sink{Secrets: keys, OnEvent: func(ev Event) { r.events = append(r.events, ev) }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodHead { // the prober: reachability only, never an event
			if r.failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			r.sink.ServeHTTP(w, req)
			return
		}
		r.mu.Lock()
		r.log = append(r.log, request{req.Header.Get(HeaderID), req.Header.Get(HeaderTimestamp), time.Now()})
		r.mu.Unlock()
		if r.failing.Load() {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		rec := httptest.NewRecorder()
		r.sink.ServeHTTP(rec, req)
		if rec.Code == http.StatusUnauthorized {
			t.Errorf("the sink rejected a delivery: %s", rec.Body)
		}
		w.WriteHeader(rec.Code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func openStore(t *testing.T) *boltstore.Store {
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "checkinbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// record writes escalations for one registrant, as the runner would.
func record(t *testing.T, s *boltstore.Store, key string, escs ...dialogs.Escalation) []store.Event {
	out, err := s.Process(key, "", time.Now(), func(prev dialogs.State, _ bool) dialogs.Result {
		return dialogs.Result{State: prev, Escalations: escs}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Events
}

func esc(typ string, sev dialogs.Severity, mode dialogs.CaseMode) dialogs.Escalation {
	return dialogs.Escalation{Type: typ, Severity: sev, EmbassyID: "my-mekong", Case: mode,
		Registrant: dialogs.RegistrantView{ID: "reg_x", Name: "Siti Aminah"}}
}

func fastPolicy() Policy {
	p := DefaultPolicy()
	p.Retry = []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
	p.SecondaryAfter = 300 * time.Millisecond
	p.HeartbeatEvery = 0
	p.Poll = 50 * time.Millisecond
	p.ReportEvery = 50 * time.Millisecond
	p.Timeout = 2 * time.Second
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEndpointOutage: the embassy answers 503 with Retry-After, then
// recovers. Everything arrives, in per-case order, signed and re-signed;
// critical events also reached the secondary URL after the threshold;
// informational ones did not.
func TestEndpointOutage(t *testing.T) {
	s := openStore(t)
	primary, secondary := newReceiver(t, [][]byte{key1}), newReceiver(t, [][]byte{key1})
	primary.failing.Store(true)

	var all []store.Event
	all = append(all, record(t, s, "a", esc(dialogs.EventRegistrationCreated, dialogs.SeverityInfo, dialogs.CaseNone))...)
	for i := 0; i < 3; i++ {
		all = append(all, record(t, s, "a", esc(dialogs.EventDuressTriggered, dialogs.SeverityCritical, dialogs.CaseOpen))...)
		all = append(all, record(t, s, "b", esc(dialogs.EventSOSRaised, dialogs.SeverityCritical, dialogs.CaseOpen))...)
	}
	d := &Deliverer{Store: s, Policy: fastPolicy(), Endpoints: []Endpoint{
		{ID: "my-mekong", URL: primary.srv.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong", Secondary: "my-mekong/secondary"},
		{ID: "my-mekong/secondary", URL: secondary.srv.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong", Backup: true},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Critical events reach the secondary once the primary has failed for
	// 300 ms, and so does one heartbeat, sent because the prober found the
	// primary failing that long, whatever waits.
	critical := func() (n, probes int) {
		for _, ev := range secondary.received() {
			switch {
			case ev.Type == dialogs.EventEndpointHeartbeat:
				probes++
			case ev.Severity == "critical":
				n++
			default:
				t.Errorf("secondary got a %s %s event", ev.Severity, ev.Type)
			}
		}
		return n, probes
	}
	waitFor(t, "the secondary URL", func() bool { n, probes := critical(); return n == 6 && probes >= 1 })
	time.Sleep(300 * time.Millisecond) // several more ticks of the prober in the same outage
	if _, probes := critical(); probes != 1 {
		t.Errorf("the secondary got %d heartbeat probes during one outage, want 1", probes)
	}
	time.Sleep(1200 * time.Millisecond) // let Retry-After: 1 be honoured at least once
	primary.failing.Store(false)
	waitFor(t, "every event at the primary", func() bool { return len(primary.received()) == len(all) })

	// Per-case order: each case's events arrived in case_seq order.
	last := map[string]int{}
	for _, ev := range primary.received() {
		if ev.CaseID == "" {
			continue
		}
		if ev.CaseSeq <= last[ev.CaseID] {
			t.Errorf("case %s: seq %d arrived after %d", ev.CaseID, ev.CaseSeq, last[ev.CaseID])
		}
		last[ev.CaseID] = ev.CaseSeq
	}
	// Same id on every attempt, a fresh timestamp, and Retry-After honoured.
	primary.mu.Lock()
	byID := map[string][]request{}
	for _, r := range primary.log {
		byID[r.id] = append(byID[r.id], r)
	}
	primary.mu.Unlock()
	retried := false
	for id, rs := range byID {
		if len(rs) < 2 {
			continue
		}
		retried = true
		if gap := rs[1].at.Sub(rs[0].at); gap < 900*time.Millisecond {
			t.Errorf("%s retried after %s despite Retry-After: 1", id, gap)
		}
		if rs[0].ts == rs[len(rs)-1].ts {
			t.Errorf("%s: every attempt carried timestamp %s", id, rs[0].ts)
		}
	}
	if !retried {
		t.Error("no event was retried")
	}
	waitFor(t, "an empty backlog", func() bool { n, _ := s.Backlog(); return n == 0 })
}

// TestNonCriticalGivesUpCriticalNever: after give_up_after of its own
// failures an informational event is archived as given up; a critical one
// keeps trying.
func TestNonCriticalGivesUpCriticalNever(t *testing.T) {
	s := openStore(t)
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer dead.Close()
	record(t, s, "a", esc(dialogs.EventRegistrationCreated, dialogs.SeverityInfo, dialogs.CaseNone))
	p := fastPolicy()
	p.GiveUpAfter = 200 * time.Millisecond
	d := &Deliverer{Store: s, Policy: p, Endpoints: []Endpoint{{ID: "my-mekong", URL: dead.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong"}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the give-up", func() bool {
		ds, _ := s.Delivered()
		return len(ds) == 1
	})
	if ds, _ := s.Delivered(); !ds[0].GaveUp || ds[0].Type != dialogs.EventRegistrationCreated || ds[0].Attempts < 2 {
		t.Errorf("archived %+v", ds)
	}
	record(t, s, "b", esc(dialogs.EventDuressTriggered, dialogs.SeverityCritical, dialogs.CaseOpen))
	d.Nudge()
	waitFor(t, "repeated attempts", func() bool {
		pending, _ := s.Pending()
		return len(pending) == 1 && pending[0].Attempts >= 4
	})
	if pending, _ := s.Pending(); pending[0].Type != dialogs.EventDuressTriggered {
		t.Errorf("pending %+v", pending)
	}
}

// TestRejectedEventDoesNotBlockOthers: a receiver refusing one event (4xx)
// is up; other cases' events are delivered meanwhile.
func TestRejectedEventDoesNotBlockOthers(t *testing.T) {
	s := openStore(t)
	poison := record(t, s, "a", esc(dialogs.EventSOSRaised, dialogs.SeverityCritical, dialogs.CaseOpen))[0].ID
	other := record(t, s, "b", esc(dialogs.EventDuressTriggered, dialogs.SeverityCritical, dialogs.CaseOpen))[0].ID
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderID)
		if id == poison {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		mu.Lock()
		got = append(got, id)
		mu.Unlock()
	}))
	defer srv.Close()
	d := &Deliverer{Store: s, Policy: fastPolicy(), Endpoints: []Endpoint{{ID: "my-mekong", URL: srv.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong"}}}
	for i := 0; i < 3; i++ {
		if _, err := d.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != other {
		t.Errorf("delivered %v, want the other case's event despite the rejected one", got)
	}
}

// TestRedirectIsAFailure: a redirected delivery is not counted as done.
func TestRedirectIsAFailure(t *testing.T) {
	s := openStore(t)
	record(t, s, "a", esc(dialogs.EventDuressTriggered, dialogs.SeverityCritical, dialogs.CaseOpen))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusFound)
		}
	}))
	defer srv.Close()
	d := &Deliverer{Store: s, Policy: fastPolicy(), Endpoints: []Endpoint{{ID: "my-mekong", URL: srv.URL + "/old", Secrets: [][]byte{key1}, Embassy: "my-mekong"}}}
	d.Round(context.Background())
	if ds, _ := s.Delivered(); len(ds) != 0 {
		t.Errorf("a redirect counted as delivered: %+v", ds)
	}
}

// TestUnconfiguredEmbassyEventsWait: events of an embassy without a URL are
// kept, and delivered once it is configured.
func TestUnconfiguredEmbassyEventsWait(t *testing.T) {
	s := openStore(t)
	record(t, s, "a", esc(dialogs.EventSOSRaised, dialogs.SeverityCritical, dialogs.CaseOpen))
	d := &Deliverer{Store: s, Policy: fastPolicy()}
	d.Round(context.Background())
	if n, _ := s.Backlog(); n != 1 {
		t.Fatalf("backlog %d: the event was routed to nobody", n)
	}
	if n, _ := s.Prune(time.Now().Add(time.Hour)); n != 0 {
		t.Errorf("pruned an undelivered event")
	}
	r := newReceiver(t, [][]byte{key1})
	p := fastPolicy()
	p.Retry = []time.Duration{time.Millisecond}
	d2 := &Deliverer{Store: s, Policy: p, Endpoints: []Endpoint{{ID: "my-mekong", URL: r.srv.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong"}}}
	waitFor(t, "delivery after configuration", func() bool {
		d2.Round(context.Background())
		return len(r.received()) == 1
	})
}

// TestPartnersAndHeartbeats: a partner gets only its chosen types; every
// endpoint gets one signed heartbeat per period.
func TestPartnersAndHeartbeats(t *testing.T) {
	s := openStore(t)
	embassy, ngo := newReceiver(t, [][]byte{key1}), newReceiver(t, [][]byte{key2})
	record(t, s, "a", esc(dialogs.EventRegistrationCreated, dialogs.SeverityInfo, dialogs.CaseNone))
	record(t, s, "a", esc(dialogs.EventSOSRaised, dialogs.SeverityCritical, dialogs.CaseOpen))
	p := fastPolicy()
	p.HeartbeatEvery = time.Hour
	d := &Deliverer{Store: s, Policy: p, Endpoints: []Endpoint{
		{ID: "my-mekong", URL: embassy.srv.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong"},
		{ID: "my-mekong/partner/ngo", URL: ngo.srv.URL, Secrets: [][]byte{key2}, Embassy: "my-mekong", Events: []string{dialogs.EventSOSRaised}},
	}}
	for i := 0; i < 3; i++ {
		if _, err := d.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
		d.ReportHealth() // the prober records and sends the heartbeats
	}
	types := func(evs []Event) map[string]int {
		m := map[string]int{}
		for _, e := range evs {
			m[e.Type]++
		}
		return m
	}
	if got := types(embassy.received()); got[dialogs.EventRegistrationCreated] != 1 || got[dialogs.EventSOSRaised] != 1 || got[dialogs.EventEndpointHeartbeat] != 1 {
		t.Errorf("embassy got %v", got)
	}
	if got := types(ngo.received()); len(got) != 2 || got[dialogs.EventSOSRaised] != 1 || got[dialogs.EventEndpointHeartbeat] != 1 {
		t.Errorf("partner got %v", got)
	}
}

// TestSinkRejectsAndDeduplicates: bad signatures get 401; a redelivery is
// acknowledged without a second line.
func TestSinkRejectsAndDeduplicates(t *testing.T) {
	var out, summary safeBuffer
	sink := &Sink{Secrets: [][]byte{key1}, Out: &out, Summary: &summary}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	post := func(h http.Header, b []byte) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytesReader(b))
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := signed([][]byte{key1}, time.Now(), body)
	if code := post(good, body); code != http.StatusNoContent {
		t.Errorf("good delivery: %d", code)
	}
	if code := post(signed([][]byte{key1}, time.Now(), body), body); code != http.StatusNoContent {
		t.Errorf("redelivery: %d", code)
	}
	if code := post(signed([][]byte{key2}, time.Now(), body), body); code != http.StatusUnauthorized {
		t.Errorf("wrong key: %d", code)
	}
	if code := post(signed([][]byte{key1}, time.Now().Add(-time.Hour), body), body); code != http.StatusUnauthorized {
		t.Errorf("stale: %d", code)
	}
	lines := out.lines()
	if len(lines) != 1 {
		t.Fatalf("%d lines written, want 1", len(lines))
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil || ev["id"] != "evt_1" {
		t.Errorf("line %q", lines[0])
	}
	if s := summary.String(); !containsAll(s, "duress.triggered", "evt_1") || containsAll(s, "Siti") {
		t.Errorf("summary %q", s)
	}
}

// TestRunReportsOnCadence: Run reports a failing endpoint on its own ticker
// and, once it answers again, its recovery; no line names an event.
func TestRunReportsOnCadence(t *testing.T) {
	s := openStore(t)
	r := newReceiver(t, [][]byte{key1})
	r.failing.Store(true)
	id := record(t, s, "a", esc(dialogs.EventSOSRaised, dialogs.SeverityCritical, dialogs.CaseOpen))[0].ID
	var logs safeBuffer
	p := fastPolicy()
	p.ReportEvery = 50 * time.Millisecond
	d := &Deliverer{Store: s, Policy: p, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Endpoints: []Endpoint{{ID: "my-mekong", URL: r.srv.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong"}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "a failing report", func() bool { return strings.Contains(logs.String(), "endpoint failing") })
	r.failing.Store(false)
	waitFor(t, "a recovery report", func() bool { return strings.Contains(logs.String(), "endpoint recovered") })
	if strings.Contains(logs.String(), id) {
		t.Errorf("a log line names the event:\n%s", logs.String())
	}
}
