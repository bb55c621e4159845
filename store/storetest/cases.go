package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// CaseStore is what an engine implements for the embassy API (package
// api's Store port) on top of Store.
type CaseStore interface {
	Store
	Cases(q store.CaseQuery) (store.CasePage, error)
	Case(embassy, id string) (escalation.Case, []escalation.Event, error)
	ChangeCase(ch store.CaseChange, now time.Time) (escalation.Case, error)
	Events(q store.EventQuery) (store.EventPage, error)
	AckEvent(embassy, eventID, by string, now time.Time) error
	Audit() ([]store.AuditEntry, error)
}

// RunCases runs the embassy API's conformance tests against stores made
// by open, one fresh store per subtest, opened with AuditKey.
func RunCases(t *testing.T, open func(t *testing.T) CaseStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, CaseStore)
	}{
		{"CasePagesNewestFirstPerEmbassy", testCasePages},
		{"CaseTransitions", testCaseTransitions},
		{"FilteredPagesMatchModel", testCaseFiltersModel},
		{"OtherEmbassyIsNotFound", testCaseIsolation},
		{"EventsAfterCursorAndAcks", testEventPull},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// openCases gives n registrants one case each, embassies taken in turn
// from embs, and returns each embassy's case ids, oldest first.
func openCases(t *testing.T, s CaseStore, n int, embs ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for i := range n {
		emb := embs[i%len(embs)]
		sev := []escalation.Severity{escalation.SeverityCritical, escalation.SeverityHigh, escalation.SeverityInfo}[i%3]
		key := fmt.Sprintf("key%04d", i)
		o, err := s.Process(key, "", t0.Add(time.Duration(i)*time.Minute), handler(nil, func(st *dialogs.State, r *dialogs.Result) {
			r.Escalations = []dialogs.Escalation{{Type: escalation.TypeSOSRaised, Severity: sev, EmbassyID: emb, Case: dialogs.CaseOpen,
				Registrant: dialogs.RegistrantView{ID: dialogs.Pseudonym(key)}}}
		}))
		if err != nil {
			t.Fatal(err)
		}
		out[emb] = append(out[emb], o.Events[0].CaseID)
	}
	return out
}

func testCasePages(t *testing.T, s CaseStore) {
	want := openCases(t, s, 17, "a", "b", "c")
	for emb, ids := range want {
		newest := slices.Clone(ids)
		slices.Reverse(newest)
		for _, size := range []int{1, 2, 4, 100} {
			var got []string
			q := store.CaseQuery{Embassy: emb, Limit: size}
			for range 100 {
				p, err := s.Cases(q)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Cases) > size {
					t.Fatalf("page of %d for limit %d", len(p.Cases), size)
				}
				for _, c := range p.Cases {
					got = append(got, c.ID)
					if c.EmbassyID != emb {
						t.Errorf("%s's page holds %s of %s", emb, c.ID, c.EmbassyID)
					}
				}
				if p.Next == 0 {
					break
				}
				q.Before = p.Next
			}
			if !slices.Equal(got, newest) {
				t.Errorf("%s limit %d: %v, want %v", emb, size, got, newest)
			}
		}
	}
	p, err := s.Cases(store.CaseQuery{Embassy: "nobody", Limit: 10})
	if err != nil || len(p.Cases) != 0 || p.Next != 0 {
		t.Errorf("an embassy without cases: %+v, %v", p, err)
	}
	// Severity is the highest of the case's events; the filter holds.
	p, _ = s.Cases(store.CaseQuery{Embassy: "a", Severity: escalation.SeverityCritical, Limit: 100})
	for _, c := range p.Cases {
		if c.Severity != escalation.SeverityCritical {
			t.Errorf("severity filter let %s (%s) through", c.ID, c.Severity)
		}
	}
	if len(p.Cases) == 0 {
		t.Error("no critical case of a listed")
	}
}

func testCaseTransitions(t *testing.T, s CaseStore) {
	ids := openCases(t, s, 1, "a")["a"]
	id := ids[0]
	now := t0.Add(time.Hour)
	// Every action from every status, in the order a case can reach them.
	steps := []struct {
		action escalation.CaseAction
		ok     bool
		status escalation.CaseStatus
	}{
		{escalation.ActionNote, true, escalation.CaseStatusOpen},
		{escalation.ActionAck, true, escalation.CaseStatusAcknowledged},
		{escalation.ActionAck, false, escalation.CaseStatusAcknowledged},
		{escalation.ActionNote, true, escalation.CaseStatusAcknowledged},
		{escalation.ActionResolve, true, escalation.CaseStatusResolved},
		{escalation.ActionResolve, false, escalation.CaseStatusResolved},
		{escalation.ActionAck, false, escalation.CaseStatusResolved},
		{escalation.ActionNote, true, escalation.CaseStatusResolved},
	}
	notes := 0
	for i, st := range steps {
		by := fmt.Sprintf("TOKEN_%d", i)
		c, err := s.ChangeCase(store.CaseChange{Embassy: "a", CaseID: id, Action: st.action, By: by,
			Outcome: escalation.OutcomeSafe, Text: "n"}, now)
		var te *escalation.TransitionError
		switch {
		case st.ok && err != nil:
			t.Fatalf("step %d %s: %v", i, st.action, err)
		case !st.ok && (errs.ErrorCode(err) != errs.ECONFLICT || !errors.As(err, &te)):
			t.Fatalf("step %d %s: %v, want a conflict", i, st.action, err)
		}
		if st.ok && st.action != escalation.ActionAck {
			notes++
		}
		if c.ID != id || c.Status != st.status || len(c.Notes) != notes {
			t.Errorf("step %d %s: case %+v, want status %s with %d notes", i, st.action, c, st.status, notes)
		}
		stored, _, err := s.Case("a", id)
		if err != nil || stored.Status != st.status || len(stored.Notes) != notes {
			t.Errorf("step %d: stored %+v (%v)", i, stored, err)
		}
	}
	audit, err := s.Audit()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range audit {
		if e.Action == store.AuditCaseUpdated && strings.Contains(e.Reason, id+" by TOKEN_") {
			n++
		}
	}
	if want := 5; n != want {
		t.Errorf("%d audited changes, want %d (the successful ones)", n, want)
	}
}

func testCaseIsolation(t *testing.T, s CaseStore) {
	ids := openCases(t, s, 2, "a", "b")
	a := ids["a"][0]
	if _, _, err := s.Case("b", a); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("b reads a's case: %v", err)
	}
	for _, act := range []escalation.CaseAction{escalation.ActionAck, escalation.ActionResolve, escalation.ActionNote} {
		if _, err := s.ChangeCase(store.CaseChange{Embassy: "b", CaseID: a, Action: act, By: "B", Outcome: escalation.OutcomeSafe, Text: "x"}, t0); errs.ErrorCode(err) != errs.ENOTFOUND {
			t.Errorf("b %s a's case: %v", act, err)
		}
	}
	if _, err := s.ChangeCase(store.CaseChange{Embassy: "a", CaseID: "case_999999", Action: escalation.ActionAck, By: "A"}, t0); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("a missing case: %v", err)
	}
	c, _, err := s.Case("a", a)
	if err != nil || c.Status != escalation.CaseStatusOpen || len(c.Notes) != 0 {
		t.Errorf("a's case after b's attempts: %+v (%v)", c, err)
	}
}

func testEventPull(t *testing.T, s CaseStore) {
	openCases(t, s, 9, "a", "b", "c")
	if _, err := s.Heartbeat("a-primary", "a", t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	outbox, err := s.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ev := range outbox {
		if ev.EmbassyID == "a" && ev.Type != escalation.TypeEndpointHeartbeat {
			want = append(want, ev.ID)
		}
	}
	pull := func(q store.EventQuery) []string {
		t.Helper()
		var got []string
		for range 100 {
			p, err := s.Events(q)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range p.Events {
				got = append(got, ev.ID)
			}
			if p.Next < q.After {
				t.Fatalf("cursor went back from %d to %d", q.After, p.Next)
			}
			q.After = p.Next
			if !p.More {
				break
			}
		}
		return got
	}
	for _, size := range []int{1, 2, 50} {
		if got := pull(store.EventQuery{Embassy: "a", Limit: size}); !slices.Equal(got, want) {
			t.Errorf("limit %d: %v, want %v (a's events without heartbeats, in order)", size, got, want)
		}
	}
	// The cursor counts the embassy's own events alone: it tells a
	// nothing of b's and c's volume.
	if p, err := s.Events(store.EventQuery{Embassy: "a", Limit: 100}); err != nil || p.Next != uint64(len(want)) {
		t.Errorf("a's cursor after its %d events: %d (%v), want %d", len(want), p.Next, err, len(want))
	}
	if err := s.AckEvent("a", want[0], "A", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.AckEvent("a", want[0], "A2", t0); err != nil {
		t.Errorf("acknowledging twice: %v", err)
	}
	if err := s.AckEvent("b", want[1], "B", t0); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("b acknowledges a's event: %v", err)
	}
	if err := s.AckEvent("a", "evt_missing", "A", t0); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("a missing event: %v", err)
	}
	if got := pull(store.EventQuery{Embassy: "a", Limit: 2, Unacked: true}); !slices.Equal(got, want[1:]) {
		t.Errorf("unacked: %v, want %v", got, want[1:])
	}
	if got := pull(store.EventQuery{Embassy: "a", Limit: 2}); !slices.Equal(got, want) {
		t.Errorf("acknowledging hid the event from the full list: %v", got)
	}
	audit, _ := s.Audit()
	n := 0
	for _, e := range audit {
		if e.Action == store.AuditEventAcknowledged && strings.HasPrefix(e.Reason, "event.ack "+want[0]) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d audit entries for the acknowledgement, want 1", n)
	}
}

// caseModel is what the store should hold about one case, kept by the
// test from the operations it applied.
type caseModel struct {
	id       string
	embassy  string
	status   escalation.CaseStatus
	severity escalation.Severity
	types    []escalation.Type
}

// testCaseFiltersModel applies random escalations (opening cases or
// adding to open ones) and random officer actions to cases of three
// embassies, and after each round reads every filter combination
// (embassy × status × severity × type, at several page sizes) page by
// page, comparing with a model: the status index must follow every
// change, in the transaction that makes it.
func testCaseFiltersModel(t *testing.T, s CaseStore) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 12))
	embs := []string{"a", "b", "c"}
	sevs := []escalation.Severity{escalation.SeverityInfo, escalation.SeverityHigh, escalation.SeverityCritical}
	types := []escalation.Type{escalation.TypeSOSRaised, escalation.TypeCheckinMissed, escalation.TypeDuressTriggered}
	statuses := []escalation.CaseStatus{"", escalation.CaseStatusOpen, escalation.CaseStatusAcknowledged, escalation.CaseStatusResolved}
	var all []*caseModel               // oldest first
	current := map[string]*caseModel{} // registrant key → its latest case
	now := t0
	for round := range 4 {
		for range 30 {
			now = now.Add(time.Minute)
			if len(all) == 0 || rng.IntN(2) == 0 {
				// An escalation: a new case, or one more event on the
				// registrant's case unless that one is resolved.
				i := rng.IntN(12)
				key, emb := fmt.Sprintf("key%04d", i), embs[i%len(embs)]
				sev, typ := sevs[rng.IntN(len(sevs))], types[rng.IntN(len(types))]
				o, err := s.Process(key, "", now, handler(nil, func(st *dialogs.State, r *dialogs.Result) {
					r.Escalations = []dialogs.Escalation{{Type: typ, Severity: sev, EmbassyID: emb, Case: dialogs.CaseOpen,
						Registrant: dialogs.RegistrantView{ID: dialogs.Pseudonym(key)}}}
				}))
				if err != nil {
					t.Fatal(err)
				}
				c := current[key]
				if c == nil || c.status == escalation.CaseStatusResolved {
					c = &caseModel{id: o.Events[0].CaseID, embassy: emb, status: escalation.CaseStatusOpen, severity: sev}
					all = append(all, c)
					current[key] = c
				} else if sev.Rank() > c.severity.Rank() {
					c.severity = sev
				}
				c.types = append(c.types, typ)
				if o.Events[0].CaseID != c.id {
					t.Fatalf("escalation of %s went to case %s, want %s", key, o.Events[0].CaseID, c.id)
				}
				continue
			}
			c := all[rng.IntN(len(all))]
			act := []escalation.CaseAction{escalation.ActionAck, escalation.ActionResolve, escalation.ActionNote}[rng.IntN(3)]
			want := c.status
			switch {
			case act == escalation.ActionAck && c.status == escalation.CaseStatusOpen:
				want = escalation.CaseStatusAcknowledged
			case act == escalation.ActionResolve && c.status != escalation.CaseStatusResolved:
				want = escalation.CaseStatusResolved
			}
			got, err := s.ChangeCase(store.CaseChange{Embassy: c.embassy, CaseID: c.id, Action: act, By: "officer",
				Outcome: escalation.OutcomeSafe, Text: "n"}, now)
			if (err == nil) == (act != escalation.ActionNote && want == c.status) {
				t.Fatalf("%s %s (%s): %v", act, c.id, c.status, err)
			}
			if got.Status != want {
				t.Fatalf("%s %s: status %s, want %s", act, c.id, got.Status, want)
			}
			c.status = want
		}
		for _, emb := range append(embs, "nobody") {
			for _, status := range statuses {
				for _, sev := range append([]escalation.Severity{""}, sevs...) {
					for _, typ := range append([]escalation.Type{""}, types...) {
						var want []string
						for _, c := range slices.Backward(all) {
							if c.embassy == emb && (status == "" || c.status == status) && (sev == "" || c.severity == sev) &&
								(typ == "" || slices.Contains(c.types, typ)) {
								want = append(want, c.id)
							}
						}
						for _, size := range []int{1, 3, 100} {
							q := store.CaseQuery{Embassy: emb, Status: status, Severity: sev, Type: typ, Limit: size}
							got := readCasePages(t, s, q)
							if !slices.Equal(got, want) {
								t.Fatalf("round %d, %+v: %v, want %v", round, q, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// readCasePages follows q's cursor to the end and returns the case ids,
// checking each page's size: full unless it is the last, except that a
// type or severity filter (which an engine may serve by looking at a
// bounded window of cases per call) may give a short or empty page with
// a cursor — one that moves on.
func readCasePages(t *testing.T, s CaseStore, q store.CaseQuery) []string {
	t.Helper()
	var got []string
	windowed := q.Type != "" || q.Severity != ""
	for range 100_000 {
		p, err := s.Cases(q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Cases) > q.Limit || (p.Next != 0 && len(p.Cases) != q.Limit && !windowed) {
			t.Fatalf("%+v: page of %d, next %d", q, len(p.Cases), p.Next)
		}
		if p.Next != 0 && q.Before != 0 && p.Next >= q.Before {
			t.Fatalf("%+v: the cursor does not move on (next %d)", q, p.Next)
		}
		for _, c := range p.Cases {
			got = append(got, c.ID)
		}
		if p.Next == 0 {
			return got
		}
		q.Before = p.Next
	}
	t.Fatalf("%+v: more than 100,000 pages", q)
	return nil
}
