package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// t0 is the suite's fixed clock.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Run runs every conformance test against stores made by open, one fresh
// (empty) store per subtest. open must arrange for the store to be closed
// when the test ends (t.Cleanup), and give it AuditKey as its audit key.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"ProcessCommitsEverythingTogether", testProcessAtomic},
		{"DuplicateInboundIDIsANoOp", testDuplicateInbound},
		{"FailingHandlerLeavesNothing", testFailingHandler},
		{"DueIndexInTimerOrder", testDueIndex},
		{"CaseNumberingAndCaseSeq", testCases},
		{"RoutingAndPerCaseOrder", testRouting},
		{"AttemptOutcomes", testAttemptOutcomes},
		{"SendQueueAcks", testSendQueue},
		{"AuditChain", testAuditChain},
		{"Heartbeat", testHeartbeat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// handler returns a fixed result built on the stored state, and counts its
// calls in *calls (if not nil).
func handler(calls *int, mod func(st *dialogs.State, r *dialogs.Result)) store.Handler {
	return func(prev dialogs.State, _ bool) dialogs.Result {
		if calls != nil {
			*calls++
		}
		r := dialogs.Result{State: prev}
		mod(&r.State, &r)
		return r
	}
}

func esc(typ escalation.Type, sev escalation.Severity, mode dialogs.CaseMode) dialogs.Escalation {
	return dialogs.Escalation{Type: typ, Severity: sev, EmbassyID: "emb", Case: mode,
		Registrant: dialogs.RegistrantView{ID: "reg_x"}}
}

// snapshot is everything observable a failed event must not change.
type snapshot struct {
	Outbox  []escalation.Event
	Sends   []store.SendItem
	Audit   []store.AuditEntry
	Due     []string
	State   dialogs.State
	Found   bool
	Purges  []store.PurgeRow
	Pending []escalation.Delivery
}

func snap(t *testing.T, s Store, key string) snapshot {
	t.Helper()
	var sn snapshot
	var err error
	must := func(e error) {
		t.Helper()
		if e != nil && err == nil {
			err = e
		}
	}
	sn.Outbox, err = s.Outbox()
	var e error
	sn.Sends, e = s.PendingSends("")
	must(e)
	sn.Audit, e = s.Audit()
	must(e)
	sn.Due, e = s.DueFirst(t0.Add(1000*time.Hour), 0)
	must(e)
	sn.State, sn.Found, e = s.Registrant(key)
	must(e)
	sn.Purges, _, e = s.DuePurges(t0.Add(1000 * time.Hour))
	must(e)
	sn.Pending, e = s.Pending()
	must(e)
	if err != nil {
		t.Fatalf("reading the store: %v", err)
	}
	return sn
}

func sameSnap(a, b snapshot) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func testProcessAtomic(t *testing.T, s Store) {
	due := t0.Add(24 * time.Hour)
	to := &store.Envelope{Channel: "telegram", Address: "chat-1", DeleteID: "m1", DeleteBy: t0.Add(48 * time.Hour)}
	out, err := s.ProcessSend("k1", "telegram:1", t0, to, handler(nil, func(st *dialogs.State, r *dialogs.Result) {
		st.Key, st.Status, st.Timer = "k1", dialogs.StatusActive, due
		r.Escalations = []dialogs.Escalation{esc(escalation.TypeSOSRaised, escalation.SeverityCritical, dialogs.CaseOpen)}
		r.Replies = []dialogs.Reply{{Text: "help is coming"}}
		r.DeleteInbound = true
		r.Audit = []string{"sos"}
	}))
	if err != nil || out.Duplicate {
		t.Fatalf("process: %v duplicate=%v", err, out.Duplicate)
	}
	if len(out.Events) != 1 {
		t.Fatalf("events %+v, want 1", out.Events)
	}
	ev := out.Events[0]
	if ev.ID == "" || ev.CaseID == "" || ev.CaseSeq != 1 || ev.Version != escalation.Version ||
		ev.Type != escalation.TypeSOSRaised || !ev.CreatedAt.Equal(t0) || ev.Details == nil {
		t.Errorf("event %+v", ev)
	}
	st, found, err := s.Registrant("k1")
	if err != nil || !found || st.Status != dialogs.StatusActive || st.OpenCase != ev.CaseID {
		t.Errorf("registrant %+v found=%v err=%v: the state and its case go together", st, found, err)
	}
	if keys, err := s.DueFirst(due, 0); err != nil || !slices.Equal(keys, []string{"k1"}) {
		t.Errorf("due %v, %v", keys, err)
	}
	box, err := s.Outbox()
	if err != nil || len(box) != 1 || box[0].ID != ev.ID || box[0].CaseID != ev.CaseID {
		t.Errorf("outbox %+v, %v", box, err)
	}
	sends, err := s.PendingSends("k1")
	if err != nil || len(sends) != 1 || len(out.Sends) != 1 || sends[0].Seq != out.Sends[0].Seq ||
		sends[0].Address != "chat-1" || len(sends[0].Replies) != 1 {
		t.Errorf("send queue %+v (outcome %+v), %v", sends, out.Sends, err)
	}
	if purges, _, err := s.DuePurges(t0); err != nil || len(purges) != 1 || out.Purges != 1 || purges[0].MsgID != "m1" {
		t.Errorf("purges %+v (outcome %d), %v", purges, out.Purges, err)
	}
	// One neutral entry for the event; the action and the escalation only
	// in its sealed reason.
	audit, err := s.Audit()
	if err != nil || len(audit) != 1 || audit[0].Action != store.AuditRegistrantUpdated ||
		!strings.HasPrefix(audit[0].Reason, "sos") || !strings.Contains(audit[0].Reason, ev.Type+" "+ev.ID) {
		t.Errorf("audit %+v, %v", audit, err)
	}
}

func testDuplicateInbound(t *testing.T, s Store) {
	calls := 0
	h := handler(&calls, func(st *dialogs.State, r *dialogs.Result) {
		st.Key, st.Status = "k1", dialogs.StatusActive
		r.Escalations = []dialogs.Escalation{esc(escalation.TypeDuressTriggered, escalation.SeverityCritical, dialogs.CaseOpen)}
		r.Replies = []dialogs.Reply{{Text: "ok"}}
		r.Audit = []string{"checkin"}
	})
	to := &store.Envelope{Channel: "telegram", Address: "chat-1"}
	if _, err := s.ProcessSend("k1", "telegram:7", t0, to, h); err != nil {
		t.Fatal(err)
	}
	before := snap(t, s, "k1")
	out, err := s.ProcessSend("k1", "telegram:7", t0.Add(time.Second), to, h)
	if err != nil || !out.Duplicate || len(out.Events) != 0 || len(out.Sends) != 0 {
		t.Fatalf("redelivery: %+v, %v: want Duplicate and nothing written", out, err)
	}
	if calls != 1 {
		t.Errorf("the handler ran %d times; a duplicate must not run it", calls)
	}
	if after := snap(t, s, "k1"); !sameSnap(before, after) {
		t.Errorf("a duplicate changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
	if out, err := s.ProcessSend("k1", "telegram:8", t0, to, h); err != nil || out.Duplicate || len(out.Events) != 1 {
		t.Errorf("a new id: %+v, %v", out, err)
	}
	// An empty inbound id (timers, roll calls) is never a duplicate.
	for range 2 {
		if out, err := s.Process("k1", "", t0, h); err != nil || out.Duplicate {
			t.Errorf("no inbound id: %+v, %v", out, err)
		}
	}
}

func testFailingHandler(t *testing.T, s Store) {
	// One registrant exists already; the other is new.
	if _, err := s.Process("old", "", t0, handler(nil, func(st *dialogs.State, r *dialogs.Result) {
		st.Key, st.Status, st.Timer = "old", dialogs.StatusActive, t0.Add(time.Hour)
	})); err != nil {
		t.Fatal(err)
	}
	panics := map[string]func(){
		"nil state":  func() { var st *dialogs.State; _ = st.Key },
		"index":      func() { _ = []int{}[len(t.Name())] },
		"panic text": func() { panic("the citizen wrote: secret") },
		"error":      func() { panic(errors.New("boom")) },
	}
	for _, key := range []string{"old", "new"} {
		for name, boom := range panics {
			t.Run(key+"/"+name, func(t *testing.T) {
				before := snap(t, s, key)
				_, err := s.ProcessSend(key, "in-"+key+name, t0, &store.Envelope{Channel: "telegram", Address: "c"},
					handler(nil, func(st *dialogs.State, r *dialogs.Result) {
						// Effects first, then the failure: none may survive.
						st.Status, st.Timer = dialogs.StatusPaused, t0.Add(time.Minute)
						r.Escalations = []dialogs.Escalation{esc(escalation.TypeSOSRaised, escalation.SeverityCritical, dialogs.CaseOpen)}
						r.Replies = []dialogs.Reply{{Text: "x"}}
						r.Audit = []string{"x"}
						boom()
					}))
				if !errors.Is(err, store.ErrBadEvent) {
					t.Fatalf("err %v, want store.ErrBadEvent", err)
				}
				if after := snap(t, s, key); !sameSnap(before, after) {
					t.Fatalf("a failed event left something:\nbefore %+v\nafter  %+v", before, after)
				}
				// Its inbound id was not consumed: the redelivery is processed.
				out, err := s.Process(key, "in-"+key+name, t0, handler(nil, func(st *dialogs.State, r *dialogs.Result) {}))
				if err != nil || out.Duplicate {
					t.Fatalf("after a failure the same id: %+v, %v", out, err)
				}
			})
		}
	}
}

func testDueIndex(t *testing.T, s Store) {
	rng := rand.New(rand.NewPCG(1, 2))
	timers := map[string]time.Time{} // the model: key → armed timer
	set := func(key string, at time.Time, erase bool) {
		t.Helper()
		_, err := s.Process(key, "", t0, handler(nil, func(st *dialogs.State, r *dialogs.Result) {
			st.Key, st.Status, st.Timer = key, dialogs.StatusActive, at
			r.Erase = erase
		}))
		if err != nil {
			t.Fatal(err)
		}
		delete(timers, key)
		if !erase && !at.IsZero() {
			timers[key] = at
		}
	}
	used := map[time.Time]bool{}
	distinct := func() time.Time { // distinct timers: the order of ties is not pinned
		for {
			at := t0.Add(time.Duration(rng.IntN(10_000)) * time.Second)
			if !used[at] {
				used[at] = true
				return at
			}
		}
	}
	check := func(round int) {
		t.Helper()
		for _, now := range []time.Time{t0.Add(-time.Second), t0.Add(time.Hour), t0.Add(90 * time.Minute), t0.Add(10_000 * time.Second)} {
			var want []string
			for k, at := range timers {
				if !at.After(now) {
					want = append(want, k)
				}
			}
			sort.Slice(want, func(i, j int) bool { return timers[want[i]].Before(timers[want[j]]) })
			got, err := s.DueFirst(now, 0)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("round %d, Due(%s) = %v, %v; want %v", round, now.Format(time.TimeOnly), got, err, want)
			}
			// The first n of them, for every n: the scheduler's batches.
			for n := 1; n <= len(want)+1; n += 1 + n/3 {
				got, err := s.DueFirst(now, n)
				if err != nil || !slices.Equal(got, want[:min(n, len(want))]) {
					t.Fatalf("round %d, DueFirst(%s, %d) = %v, %v; want %v", round, now.Format(time.TimeOnly), n, got, err, want[:min(n, len(want))])
				}
			}
		}
		at, found, err := s.NextTimer()
		var first time.Time
		for _, v := range timers {
			if first.IsZero() || v.Before(first) {
				first = v
			}
		}
		if err != nil || found != !first.IsZero() || !at.Equal(first) {
			t.Fatalf("round %d, NextTimer = %s %v %v; want %s", round, at, found, err, first)
		}
	}
	for i := range 40 {
		set(fmt.Sprintf("k%02d", i), distinct(), false)
	}
	check(0)
	for round := 1; round <= 3; round++ {
		for i := range 40 {
			key := fmt.Sprintf("k%02d", i)
			switch rng.IntN(4) {
			case 0: // moved
				set(key, distinct(), false)
			case 1: // disarmed
				set(key, time.Time{}, false)
			case 2: // erased
				set(key, distinct(), true)
			}
		}
		check(round)
	}
}

func testCases(t *testing.T, s Store) {
	emit := func(key string, escs ...dialogs.Escalation) []escalation.Event {
		t.Helper()
		out, err := s.Process(key, "", t0, handler(nil, func(st *dialogs.State, r *dialogs.Result) {
			st.Key = key
			r.Escalations = escs
		}))
		if err != nil {
			t.Fatal(err)
		}
		return out.Events
	}
	info := esc(escalation.TypeRegistrationUpdated, escalation.SeverityInfo, dialogs.CaseNone)
	appendIfOpen := esc(escalation.TypeCheckinResumed, escalation.SeverityInfo, dialogs.CaseAppend)
	open := esc(escalation.TypeCheckinMissed, escalation.SeverityCritical, dialogs.CaseOpen)

	if evs := emit("a", info, appendIfOpen); evs[0].CaseID != "" || evs[1].CaseID != "" {
		t.Fatalf("no open case: %+v, want no case for CaseNone and CaseAppend", evs)
	}
	a := emit("a", open, esc(escalation.TypeCaseUpdated, escalation.SeverityCritical, dialogs.CaseOpen))
	a = append(a, emit("a", appendIfOpen, info)...)
	b := emit("b", open)
	caseA, caseB := a[0].CaseID, b[0].CaseID
	if caseA == "" || caseB == "" || caseA == caseB {
		t.Fatalf("case ids %q %q: each registrant gets its own", caseA, caseB)
	}
	var seqs []int
	for _, ev := range a[:3] {
		if ev.CaseID != caseA {
			t.Errorf("event %s in case %q, want %q", ev.Type, ev.CaseID, caseA)
		}
		seqs = append(seqs, ev.CaseSeq)
	}
	if !slices.Equal(seqs, []int{1, 2, 3}) || a[3].CaseID != "" || a[3].CaseSeq != 0 {
		t.Errorf("case_seq %v (and the info event %+v): want 1 2 3 and none", seqs, a[3])
	}
	if b[0].CaseSeq != 1 {
		t.Errorf("a new case starts at case_seq 1: %d", b[0].CaseSeq)
	}
	c, found, err := s.CaseByID(caseA)
	if err != nil || !found || c.Status != escalation.CaseStatusOpen || c.Seq != 3 || c.UserKey != "a" ||
		c.EmbassyID != "emb" || !slices.Equal(c.Types, []escalation.Type{escalation.TypeCheckinMissed, escalation.TypeCaseUpdated, escalation.TypeCheckinResumed}) {
		t.Errorf("case %+v found=%v err=%v", c, found, err)
	}
	if _, found, err := s.CaseByID("case_nonexistent"); found || err != nil {
		t.Errorf("unknown case: found=%v err=%v", found, err)
	}
}

// route records events for two cases and a caseless one, and routes them
// all to endpoint "p", critical ones to "sec-less" partner "q" as well.
func route(t *testing.T, s Store) []escalation.Event {
	t.Helper()
	var evs []escalation.Event
	for _, step := range []struct {
		key string
		esc dialogs.Escalation
	}{
		{"a", esc(escalation.TypeSOSRaised, escalation.SeverityCritical, dialogs.CaseOpen)},     // seq 1, case A
		{"b", esc(escalation.TypeCheckinMissed, escalation.SeverityCritical, dialogs.CaseOpen)}, // seq 2, case B
		{"a", esc(escalation.TypeCaseUpdated, escalation.SeverityCritical, dialogs.CaseOpen)},   // seq 3, case A
		{"c", esc(escalation.TypeRegistrationCreated, escalation.SeverityInfo, dialogs.CaseNone)},
		{"a", esc(escalation.TypeCaseUpdated, escalation.SeverityCritical, dialogs.CaseOpen)}, // seq 5, case A
	} {
		out, err := s.Process(step.key, "", t0, handler(nil, func(st *dialogs.State, r *dialogs.Result) {
			st.Key = step.key
			r.Escalations = []dialogs.Escalation{step.esc}
		}))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, out.Events...)
	}
	targets := func(ev escalation.Event) []escalation.Target {
		out := []escalation.Target{{Endpoint: "p", Critical: ev.Severity.Critical()}}
		if ev.Type == escalation.TypeSOSRaised {
			out = append(out, escalation.Target{Endpoint: "q", Critical: true})
		}
		return out
	}
	n, err := s.Route(t0, targets)
	if err != nil || n != 6 {
		t.Fatalf("routed %d rows, %v; want 6", n, err)
	}
	if n, err := s.Route(t0, targets); err != nil || n != 0 {
		t.Fatalf("routed again: %d, %v", n, err)
	}
	return evs
}

// chains renders a batch as endpoint:[event indexes] in order, indexes
// into evs.
func chains(t *testing.T, b escalation.DueBatch, evs []escalation.Event) string {
	t.Helper()
	idx := map[string]int{}
	for i, ev := range evs {
		idx[ev.ID] = i
	}
	s := ""
	for _, c := range b.Chains {
		s += c.Endpoint + ":["
		for j, it := range c.Items {
			var body escalation.Event
			if err := json.Unmarshal(it.Body, &body); err != nil || body.ID != it.EventID || it.Endpoint != c.Endpoint {
				t.Fatalf("row %+v: its body is not its event (%v)", it.Delivery, err)
			}
			if j > 0 {
				s += " "
			}
			s += fmt.Sprint(idx[it.EventID])
		}
		s += "] "
	}
	return s
}

func testRouting(t *testing.T, s Store) {
	evs := route(t, s)
	later := t0.Add(time.Minute)
	steps := []struct {
		name     string
		record   []escalation.Attempt
		skip     string
		limit    int
		want     string
		wantNext time.Time
		wantMore bool
	}{
		{name: "all due: each case a chain in recording order", want: "p:[0 2 4] p:[1] p:[3] q:[0] "},
		{name: "limit", limit: 3, want: "p:[0 2] p:[1] ", wantMore: true},
		{name: "skipped endpoint", skip: "p", want: "q:[0] "},
		{name: "a failed head holds its case back",
			record:   []escalation.Attempt{{Endpoint: "p", Seq: 1, Outcome: escalation.AttemptFailed, Err: "HTTP 503", NextAt: later}},
			want:     "p:[1] p:[3] q:[0] ",
			wantNext: later},
		{name: "delivered head releases the next",
			record: []escalation.Attempt{{Endpoint: "p", Seq: 1, Outcome: escalation.AttemptDelivered},
				{Endpoint: "q", Seq: 1, Outcome: escalation.AttemptDelivered}},
			want: "p:[1] p:[2 4] p:[3] "}, // chains in recording order of their heads
		{name: "a later row not due ends the run",
			record:   []escalation.Attempt{{Endpoint: "p", Seq: 5, Outcome: escalation.AttemptFailed, Err: "HTTP 503", NextAt: later}},
			want:     "p:[1] p:[2] p:[3] ",
			wantNext: later},
	}
	for _, st := range steps {
		if err := s.RecordAttempts(t0, st.record); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		b, err := s.DueChains(t0, func(ep string) bool { return ep == st.skip }, st.limit)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := chains(t, b, evs); got != st.want || !b.Next.Equal(st.wantNext) || b.More != st.wantMore {
			t.Errorf("%s: chains %q next %s more %v; want %q next %s more %v",
				st.name, got, b.Next, b.More, st.want, st.wantNext, st.wantMore)
		}
		if !st.wantMore && !slices.Equal(b.Endpoints, endpointsOf(t, s)) {
			t.Errorf("%s: endpoints %v, want every endpoint with pending rows %v", st.name, b.Endpoints, endpointsOf(t, s))
		}
	}
	if due, err := s.DueOfType(escalation.TypeSOSRaised, t0); err != nil || len(due) != 0 {
		t.Errorf("DueOfType after delivery: %+v, %v", due, err)
	}
	if due, err := s.DueOfType(escalation.TypeCaseUpdated, later); err != nil || len(due) != 2 || due[0].Seq != 3 || due[1].Seq != 5 {
		t.Errorf("DueOfType(case.updated) %+v, %v; want seqs 3 and 5", due, err)
	}
	rows, err := s.PendingOf("p")
	if err != nil || len(rows) != 4 {
		t.Fatalf("PendingOf(p) %+v, %v", rows, err)
	}
	for i := 1; i < len(rows); i++ {
		if rows[i-1].Seq >= rows[i].Seq {
			t.Errorf("PendingOf not in recording order: %+v", rows)
		}
	}
}

func endpointsOf(t *testing.T, s Store) []string {
	t.Helper()
	rows, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		if !slices.Contains(out, r.Endpoint) {
			out = append(out, r.Endpoint)
		}
	}
	slices.Sort(out)
	return out
}

func testAttemptOutcomes(t *testing.T, s Store) {
	later := t0.Add(time.Minute)
	cases := []struct {
		attempt      escalation.Attempt
		wantPending  bool
		wantAttempts int
		wantGaveUp   bool
		wantFailure  bool // FirstFailure set
		wantSecond   bool // a row for "p2"
	}{
		{attempt: escalation.Attempt{Outcome: escalation.AttemptDelivered}, wantAttempts: 1},
		{attempt: escalation.Attempt{Outcome: escalation.AttemptFailed, Err: "HTTP 503", NextAt: later},
			wantPending: true, wantAttempts: 1, wantFailure: true},
		{attempt: escalation.Attempt{Outcome: escalation.AttemptFailed, Err: "HTTP 503", NextAt: later, Secondary: "p2"},
			wantPending: true, wantAttempts: 1, wantFailure: true, wantSecond: true},
		{attempt: escalation.Attempt{Outcome: escalation.AttemptGaveUp, Err: "HTTP 503"}, wantAttempts: 1, wantGaveUp: true},
		{attempt: escalation.Attempt{Outcome: escalation.AttemptHeld}, wantPending: true},
		{attempt: escalation.Attempt{Outcome: escalation.AttemptHeld, Secondary: "p2"}, wantPending: true, wantSecond: true},
		{attempt: escalation.Attempt{Outcome: escalation.AttemptAbandoned, Err: "endpoint failing"}, wantGaveUp: true},
	}
	keys := 0
	for _, tc := range cases {
		name := tc.attempt.Outcome.String()
		if tc.attempt.Secondary != "" {
			name += "+secondary"
		}
		t.Run(name, func(t *testing.T) {
			keys++
			key := fmt.Sprintf("k%d", keys)
			out, err := s.Process(key, "", t0, handler(nil, func(st *dialogs.State, r *dialogs.Result) {
				r.Escalations = []dialogs.Escalation{esc(escalation.TypeSOSRaised, escalation.SeverityCritical, dialogs.CaseOpen)}
			}))
			if err != nil {
				t.Fatal(err)
			}
			ev := out.Events[0]
			if _, err := s.Route(t0, func(escalation.Event) []escalation.Target {
				return []escalation.Target{{Endpoint: "p", Critical: true}}
			}); err != nil {
				t.Fatal(err)
			}
			rows, _ := s.PendingOf("p")
			seq := rows[len(rows)-1].Seq
			a := tc.attempt
			a.Endpoint, a.Seq = "p", seq
			if err := s.RecordAttempts(t0, []escalation.Attempt{a}); err != nil {
				t.Fatal(err)
			}
			row, pending := find(t, s.Pending, "p", seq)
			if pending != tc.wantPending {
				t.Fatalf("pending %v, want %v", pending, tc.wantPending)
			}
			if !pending {
				row, _ = find(t, s.Delivered, "p", seq)
				if row.DoneAt.IsZero() || row.GaveUp != tc.wantGaveUp || row.LastError != a.Err {
					t.Errorf("archived %+v", row)
				}
			} else if tc.wantFailure && (!row.FirstFailure.Equal(t0) || !row.NextAt.Equal(later) || row.LastError != a.Err) {
				t.Errorf("failed row %+v", row)
			}
			if row.EventID != ev.ID || row.Attempts != tc.wantAttempts {
				t.Errorf("row %+v: want event %s, %d attempts", row, ev.ID, tc.wantAttempts)
			}
			sec, found := find(t, s.Pending, "p2", seq)
			if found != tc.wantSecond || (found && (!sec.Critical || sec.EventID != ev.ID || !sec.NextAt.Equal(t0))) {
				t.Errorf("secondary row %+v found=%v, want %v", sec, found, tc.wantSecond)
			}
			if tc.wantSecond && !row.SecondaryQueued {
				t.Errorf("row %+v does not say its secondary is queued", row)
			}
			if tc.wantSecond { // asking again does not queue a second copy
				if err := s.RecordAttempts(t0, []escalation.Attempt{a}); err != nil {
					t.Fatal(err)
				}
				if n := len(must(t, s.PendingOf)("p2")); n != keysWithSecondary(t, s) {
					t.Errorf("secondary rows %d after asking twice", n)
				}
			}
		})
	}
	t.Run("none is refused", func(t *testing.T) {
		before, _ := s.Pending()
		if len(before) == 0 {
			t.Fatal("no pending rows to try")
		}
		err := s.RecordAttempts(t0, []escalation.Attempt{
			{Endpoint: before[0].Endpoint, Seq: before[0].Seq, Outcome: escalation.AttemptDelivered},
			{Endpoint: before[0].Endpoint, Seq: before[0].Seq}})
		if err == nil {
			t.Fatal("an attempt without an outcome was recorded")
		}
		if after, _ := s.Pending(); !slices.EqualFunc(before, after, func(a, b escalation.Delivery) bool { return a == b }) {
			t.Errorf("a refused write changed rows:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

func must(t *testing.T, f func(string) ([]escalation.Delivery, error)) func(string) []escalation.Delivery {
	return func(ep string) []escalation.Delivery {
		t.Helper()
		rows, err := f(ep)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
}

// keysWithSecondary counts the "p" rows, pending or archived, that queued
// a secondary copy.
func keysWithSecondary(t *testing.T, s Store) int {
	n := 0
	for _, list := range []func() ([]escalation.Delivery, error){s.Pending, s.Delivered} {
		rows, err := list()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Endpoint == "p" && r.SecondaryQueued {
				n++
			}
		}
	}
	return n
}

func find(t *testing.T, list func() ([]escalation.Delivery, error), endpoint string, seq uint64) (escalation.Delivery, bool) {
	t.Helper()
	rows, err := list()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Endpoint == endpoint && r.Seq == seq {
			return r, true
		}
	}
	return escalation.Delivery{}, false
}

func testSendQueue(t *testing.T, s Store) {
	reply := func(key, text string) {
		t.Helper()
		if _, err := s.ProcessSend(key, "", t0, &store.Envelope{Channel: "telegram", Address: "chat-" + key},
			handler(nil, func(st *dialogs.State, r *dialogs.Result) { r.Replies = []dialogs.Reply{{Text: text}} })); err != nil {
			t.Fatal(err)
		}
	}
	reply("a", "a1")
	reply("b", "b1")
	reply("a", "a2")
	// Process queues nothing: it is for callers that deliver no reply.
	if _, err := s.Process("a", "", t0, handler(nil, func(st *dialogs.State, r *dialogs.Result) {
		r.Replies = []dialogs.Reply{{Text: "never queued"}}
	})); err != nil {
		t.Fatal(err)
	}
	texts := func(items []store.SendItem) []string {
		var out []string
		for _, it := range items {
			out = append(out, it.UserKey+":"+it.Replies[0].Text)
		}
		return out
	}
	all, err := s.PendingSends("")
	if err != nil || !slices.Equal(texts(all), []string{"a:a1", "a:a2", "b:b1"}) {
		t.Fatalf("everyone's queue %v, %v; want per citizen in writing order", texts(all), err)
	}
	as, _ := s.PendingSends("a")
	if !slices.Equal(texts(as), []string{"a:a1", "a:a2"}) || as[0].Address != "chat-a" {
		t.Fatalf("a's queue %+v", as)
	}
	if q, err := s.StillQueued("a", as[0].Seq); err != nil || !q {
		t.Fatalf("StillQueued before the ack: %v, %v", q, err)
	}
	if err := s.AckSends([]store.SendAck{{UserKey: "a", Seq: as[0].Seq,
		Remember: []store.PurgeRow{{Channel: "telegram", Address: "chat-a", MsgID: "sent-1", Due: t0.Add(time.Hour), Deadline: t0.Add(48 * time.Hour)}}}}); err != nil {
		t.Fatal(err)
	}
	if q, err := s.StillQueued("a", as[0].Seq); err != nil || q {
		t.Errorf("StillQueued after the ack: %v, %v", q, err)
	}
	if left, _ := s.PendingSends(""); !slices.Equal(texts(left), []string{"a:a2", "b:b1"}) {
		t.Errorf("after the ack: %v", texts(left))
	}
	// The remembered message is due later, and a purge ack brings it forward.
	if due, next, err := s.DuePurges(t0); err != nil || len(due) != 0 || !next.Equal(t0.Add(time.Hour)) {
		t.Errorf("purges before: %+v next %s, %v", due, next, err)
	}
	if err := s.AckSends([]store.SendAck{{UserKey: "a", Seq: as[1].Seq, Purge: true, PurgeAt: t0}}); err != nil {
		t.Fatal(err)
	}
	due, _, err := s.DuePurges(t0)
	if err != nil || len(due) != 1 || due[0].MsgID != "sent-1" || due[0].UserKey != "a" {
		t.Fatalf("purges after a purge ack: %+v, %v", due, err)
	}
	if err := s.SettlePurges(due, nil); err != nil {
		t.Fatal(err)
	}
	if left, _, _ := s.DuePurges(t0.Add(1000 * time.Hour)); len(left) != 0 {
		t.Errorf("settled purge rows left: %+v", left)
	}
}

func testAuditChain(t *testing.T, s Store) {
	for i := range 5 {
		if _, err := s.Process(fmt.Sprintf("k%d", i%2), "", t0.Add(time.Duration(i)*time.Second), handler(nil, func(st *dialogs.State, r *dialogs.Result) {
			r.Audit = []string{fmt.Sprintf("step %d", i)}
			if i == 3 {
				r.Escalations = []dialogs.Escalation{esc(escalation.TypeSOSRaised, escalation.SeverityCritical, dialogs.CaseOpen)}
			}
		})); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := s.Audit()
	if err != nil || len(entries) != 5 {
		t.Fatalf("audit %+v, %v; want 5 entries", entries, err)
	}
	prev := ""
	for i, e := range entries {
		if e.Prev != prev || e.Hash == "" || e.Hash == prev || (i > 0 && e.Seq <= entries[i-1].Seq) {
			t.Fatalf("entry %d %+v does not link to %q", i, e, prev)
		}
		// One entry per event, its escalation (step 3) only in the reason.
		if want := dialogs.Pseudonym([]string{"k0", "k1", "k0", "k1", "k0"}[i]); e.Subject != want {
			t.Errorf("entry %d subject %q, want %q", i, e.Subject, want)
		}
		if e.Action != store.AuditRegistrantUpdated || !strings.HasPrefix(e.Reason, fmt.Sprintf("step %d", i)) ||
			strings.Contains(e.Reason, escalation.TypeSOSRaised) != (i == 3) {
			t.Errorf("entry %d: action %q, reason %q", i, e.Action, e.Reason)
		}
		prev = e.Hash
	}
	if n, err := s.VerifyAudit(); err != nil || n != len(entries) {
		t.Errorf("VerifyAudit = %d, %v; want %d", n, err, len(entries))
	}
}

func testHeartbeat(t *testing.T, s Store) {
	every := time.Hour
	for _, step := range []struct {
		at   time.Time
		want bool
	}{{t0, true}, {t0.Add(time.Minute), false}, {t0.Add(59 * time.Minute), false}, {t0.Add(time.Hour), true}} {
		if got, err := s.Heartbeat("p", "emb", step.at, every); err != nil || got != step.want {
			t.Errorf("Heartbeat at %s = %v, %v; want %v", step.at.Format(time.TimeOnly), got, err, step.want)
		}
	}
	if got, err := s.Heartbeat("q", "emb", t0.Add(time.Minute), every); err != nil || !got {
		t.Errorf("another endpoint's first heartbeat = %v, %v", got, err)
	}
	box, _ := s.Outbox()
	if len(box) != 3 {
		t.Fatalf("outbox %+v, want 3 heartbeats", box)
	}
	for _, ev := range box {
		if ev.Type != escalation.TypeEndpointHeartbeat || ev.Registrant != nil || ev.Severity != escalation.SeverityInfo {
			t.Errorf("heartbeat %+v", ev)
		}
	}
	if _, err := s.Route(t0, func(ev escalation.Event) []escalation.Target {
		return []escalation.Target{{Endpoint: ev.Details["endpoint"].(string)}}
	}); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueOfType(escalation.TypeEndpointHeartbeat, t0)
	if err != nil || len(due) != 3 || due[0].Endpoint != "p" || due[2].Endpoint != "q" {
		t.Errorf("due heartbeats %+v, %v", due, err)
	}
}
