package storetest

import (
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

// IndexStore is an engine that also keeps the embassy's registrant index
// and roll calls (issue 12 items 2 and 3): what the embassy API and
// bot.RollCallStore call.
type IndexStore interface {
	Store
	IndexWith(route store.Router, fingerprint string) error
	Registrants(embassy string, status store.RegistrantStatus, cursor string, limit int) (store.RegistrantPage, error)
	CreateRollCall(rc store.RollCall) error
	RollCall(id string) (store.RollCallReport, bool, error)
	RollCallMember(id, key string) (store.MemberState, bool, error)
	RollCallMembers(id string, m store.MemberState) ([]string, error)
	DueRollCalls(now time.Time) ([]store.RollCall, error)
	CloseRollCall(id string) error
	RollCallCounts(id string) (store.RollCall, store.RollCallCounts, bool, error)
	RollCallPage(id, list, cursor string, limit int) (ids []string, next string, err error)
	ProcessSend(key, inboundID string, now time.Time, to *store.Envelope, h store.Handler) (store.Outcome, error)
	AckSends(acks []store.SendAck) error
}

// RunIndex runs the registrant-index and roll-call conformance tests
// against stores made by open (one fresh store per subtest).
func RunIndex(t *testing.T, open func(t *testing.T) IndexStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, IndexStore)
	}{
		{"IndexMatchesModelOverRandomTransitions", testIndexModel},
		{"IndexRebuildFollowsRouter", testIndexRebuild},
		{"IndexBadInput", testIndexBadInput},
		{"RollCallMemberStates", testRollCallStates},
		{"RollCallDueAndClose", testRollCallClose},
		{"RollCallPromptAccepted", testRollCallPromptAccepted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// routeByNationality sends nationality "A…" to embassy "emb-a" and so on:
// the suite's stand-in for dialogs.Directory.EmbassyFor.
func routeByNationality(nationality, _ string) string {
	if nationality == "" {
		return ""
	}
	return "emb-" + strings.ToLower(nationality[:1])
}

var (
	modelNats   = []string{"AA", "BB", "CC"}
	modelCities = []string{"Phnom Penh", "Siem Reap", ""}
)

// modelEntry is what the model expects the index to hold for one key.
type modelEntry struct {
	embassy string
	status  store.RegistrantStatus
	since   time.Time
	row     store.RegistrantRow
}

// transition is one random state change, as an engine could make it.
func transition(rng *rand.Rand, key string, prev dialogs.State, now time.Time) dialogs.Result {
	st := prev
	st.Key = key
	st.Profile.Nationality = modelNats[rng.IntN(len(modelNats))]
	st.Profile.Country = []string{"KH", "TH"}[rng.IntN(2)]
	st.Profile.City = modelCities[rng.IntN(len(modelCities))]
	if rng.IntN(3) == 0 {
		st.Profile.LastLocation = &escalation.Location{Lat: rng.Float64(), Lon: rng.Float64()}
	}
	if rng.IntN(3) == 0 {
		st.LastCheckin = now
	}
	if rng.IntN(4) == 0 {
		st.OpenCase = fmt.Sprintf("case_%06d", rng.IntN(100))
	}
	st.Hidden, st.Overdue, st.Shown = nil, false, ""
	switch rng.IntN(9) {
	case 0:
		return dialogs.Result{State: st, Erase: true}
	case 1:
		st.Status = dialogs.StatusNew
	case 2:
		// A covert delete: the phone sees a fresh start, the hidden copy
		// stays monitored.
		st.Status = dialogs.StatusNew
		// Its hidden ladder may have gone overdue, like a visible one.
		st.Hidden = &dialogs.Hidden{Profile: st.Profile, LastCheckin: st.LastCheckin, Missed: rng.IntN(2) == 0}
		st.Profile = dialogs.Profile{}
	case 3, 4:
		st.Status, st.Overdue = dialogs.StatusActive, true
	case 5:
		st.Status = dialogs.StatusActive
	case 6:
		st.Status = dialogs.StatusPaused
	case 7:
		// A covert stop or pause: the real status stays active (and may
		// go overdue); the embassy sees the real one.
		st.Status, st.Shown = dialogs.StatusActive, []dialogs.Status{dialogs.StatusStopped, dialogs.StatusPaused}[rng.IntN(2)]
		st.Overdue = rng.IntN(2) == 0
	case 8:
		st.Status = dialogs.StatusStopped
	}
	return dialogs.Result{State: st}
}

// expect is the model: the index entry the spec promises for a result,
// given the previous entry.
func expect(key string, res dialogs.Result, old *modelEntry, now time.Time) *modelEntry {
	if res.Erase {
		return nil
	}
	st := res.State
	p, last := st.Profile, st.LastCheckin
	var status store.RegistrantStatus
	switch {
	case st.Hidden != nil && st.Status == dialogs.StatusNew && st.Hidden.Missed:
		p, last, status = st.Hidden.Profile, st.Hidden.LastCheckin, store.StatusOverdue
	case st.Hidden != nil && st.Status == dialogs.StatusNew:
		p, last, status = st.Hidden.Profile, st.Hidden.LastCheckin, store.StatusActive
	case st.Status == dialogs.StatusNew:
		return nil
	case st.Status == dialogs.StatusActive && st.Overdue:
		status = store.StatusOverdue
	default:
		status = store.RegistrantStatus(st.Status)
	}
	e := &modelEntry{embassy: routeByNationality(p.Nationality, p.Country), status: status,
		row: store.RegistrantRow{ID: dialogs.Pseudonym(key), Key: key, Status: status, Country: p.Country, City: p.City,
			LastLocation: p.LastLocation, OpenCase: st.OpenCase}}
	if !last.IsZero() {
		l := last.UTC()
		e.row.LastCheckin = &l
	}
	if status == store.StatusOverdue {
		e.since = now.UTC()
		if old != nil && old.status == store.StatusOverdue {
			e.since = old.since
		}
		s := e.since
		e.row.OverdueSince = &s
	}
	return e
}

// listAll reads every page of one list with the given page size.
func listAll(t *testing.T, s IndexStore, embassy string, status store.RegistrantStatus, size int) []store.RegistrantRow {
	t.Helper()
	var rows []store.RegistrantRow
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := s.Registrants(embassy, status, cursor, size)
		if err != nil {
			t.Fatalf("registrants %s/%s: %v", embassy, status, err)
		}
		if len(page.Rows) > size {
			t.Fatalf("page of %d rows, asked for %d", len(page.Rows), size)
		}
		rows = append(rows, page.Rows...)
		if page.Next == "" {
			return rows
		}
		if pages > 10000 {
			t.Fatal("pagination does not end")
		}
		cursor = page.Next
	}
}

// wantList is the model's list for one embassy and status, in order.
func wantList(model map[string]*modelEntry, embassy string, status store.RegistrantStatus) []store.RegistrantRow {
	var es []*modelEntry
	for _, e := range model {
		if e.embassy == embassy && e.status == status {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool {
		if !es[i].since.Equal(es[j].since) {
			return es[i].since.Before(es[j].since)
		}
		return es[i].row.Key < es[j].row.Key
	})
	rows := make([]store.RegistrantRow, 0, len(es))
	for _, e := range es {
		rows = append(rows, e.row)
	}
	return rows
}

func compareIndex(t *testing.T, s IndexStore, model map[string]*modelEntry, step int, size int) {
	t.Helper()
	for _, emb := range []string{"emb-a", "emb-b", "emb-c"} {
		for _, status := range store.RegistrantStatuses {
			got, want := listAll(t, s, emb, status, size), wantList(model, emb, status)
			gj, wj := fmt.Sprintf("%+v", rowsText(got)), fmt.Sprintf("%+v", rowsText(want))
			if gj != wj {
				t.Fatalf("after step %d, %s/%s (page size %d):\n got  %s\n want %s", step, emb, status, size, gj, wj)
			}
		}
	}
}

func rowsText(rows []store.RegistrantRow) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		s := fmt.Sprintf("%s %s %s %s %s %s", r.ID, r.Key, r.Status, r.Country, r.City, r.OpenCase)
		if r.LastCheckin != nil {
			s += " last=" + r.LastCheckin.UTC().Format(time.RFC3339Nano)
		}
		if r.OverdueSince != nil {
			s += " since=" + r.OverdueSince.UTC().Format(time.RFC3339Nano)
		}
		if r.LastLocation != nil {
			s += fmt.Sprintf(" loc=%v,%v", r.LastLocation.Lat, r.LastLocation.Lon)
		}
		out = append(out, s)
	}
	return out
}

// testIndexModel drives random transitions — every status into every
// other, overdue entered, kept and left, covert stops and deletes,
// erasures, moves between embassies — through Process and compares every
// list, paged at random sizes, with a model after each batch.
func testIndexModel(t *testing.T, s IndexStore) {
	if err := s.IndexWith(routeByNationality, "nat-v1"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]*modelEntry{}
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
	}
	now := t0
	for step := 0; step < 600; step++ {
		now = now.Add(time.Duration(rng.IntN(3600)) * time.Second)
		key := keys[rng.IntN(len(keys))]
		var res dialogs.Result
		if _, err := s.Process(key, "", now, func(prev dialogs.State, _ bool) dialogs.Result {
			res = transition(rand.New(rand.NewPCG(uint64(step), 7)), key, prev, now)
			return res
		}); err != nil {
			t.Fatal(err)
		}
		if e := expect(key, res, model[key], now); e != nil {
			model[key] = e
		} else {
			delete(model, key)
		}
		if step%25 == 24 {
			compareIndex(t, s, model, step, 1+rng.IntN(7))
		}
	}
	compareIndex(t, s, model, 600, store.MaxPage)
}

// testIndexRebuild: a changed router (embassies reconfigured) refiles
// everyone; overdue-since survives the rebuild; the same fingerprint is a
// no-op.
func testIndexRebuild(t *testing.T, s IndexStore) {
	if err := s.IndexWith(routeByNationality, "nat-v1"); err != nil {
		t.Fatal(err)
	}
	model := map[string]*modelEntry{}
	now := t0
	for i := 0; i < 60; i++ {
		now = now.Add(time.Minute)
		key := fmt.Sprintf("k%02d", i%20)
		var res dialogs.Result
		if _, err := s.Process(key, "", now, func(prev dialogs.State, _ bool) dialogs.Result {
			res = transition(rand.New(rand.NewPCG(uint64(i), 9)), key, prev, now)
			return res
		}); err != nil {
			t.Fatal(err)
		}
		if e := expect(key, res, model[key], now); e != nil {
			model[key] = e
		} else {
			delete(model, key)
		}
	}
	// Everyone moves to emb-a.
	allA := func(string, string) string { return "emb-a" }
	if err := s.IndexWith(allA, "all-a"); err != nil {
		t.Fatal(err)
	}
	for _, e := range model {
		e.embassy = "emb-a"
	}
	for _, status := range store.RegistrantStatuses {
		got, want := rowsText(listAll(t, s, "emb-a", status, 3)), rowsText(wantList(model, "emb-a", status))
		if !slices.Equal(got, want) {
			t.Errorf("after a rebuild, emb-a/%s:\n got  %v\n want %v", status, got, want)
		}
		if rows := listAll(t, s, "emb-b", status, 3); len(rows) != 0 {
			t.Errorf("after a rebuild, emb-b/%s still lists %d", status, len(rows))
		}
	}
}

func testIndexBadInput(t *testing.T, s IndexStore) {
	if _, err := s.Registrants("emb-a", "late", "", 10); err == nil || !strings.Contains(err.Error(), "late") {
		t.Errorf("unknown status: %v, want an error naming it", err)
	}
	if _, err := s.Registrants("emb-a", store.StatusActive, "!!not a cursor!!", 10); err == nil {
		t.Error("a cursor the store never handed out was accepted")
	}
	if p, err := s.Registrants("nobody", store.StatusOverdue, "", 0); err != nil || len(p.Rows) != 0 || p.Next != "" {
		t.Errorf("empty list: %+v, %v", p, err)
	}
}

// rcStep processes one event for key with a hand-made result.
func rcStep(t *testing.T, s IndexStore, key string, now time.Time, mod func(st *dialogs.State, r *dialogs.Result)) {
	t.Helper()
	if _, err := s.Process(key, "", now, handler(nil, mod)); err != nil {
		t.Fatal(err)
	}
}

// sameCounts checks that a roll call's counters say what its memberships
// say, and returns them.
func sameCounts(t *testing.T, s IndexStore, id string) store.RollCallCounts {
	t.Helper()
	rep, found, err := s.RollCall(id)
	if err != nil || !found {
		t.Fatalf("report of %s: found=%v %v", id, found, err)
	}
	_, n, found, err := s.RollCallCounts(id)
	if err != nil || !found {
		t.Fatalf("counts of %s: found=%v %v", id, found, err)
	}
	want := store.RollCallCounts{Members: len(rep.Responded) + len(rep.Pending) + len(rep.Missed) + len(rep.Unprompted),
		Responded: len(rep.Responded), Pending: len(rep.Pending), Missed: len(rep.Missed), Unprompted: len(rep.Unprompted), Prompted: n.Prompted}
	if n != want {
		t.Errorf("%s: counts %+v, the members say %+v", id, n, want)
	}
	// Every list, paged two at a time, is the report's, in ascending order.
	for list, ids := range map[string][]string{"pending": rep.Pending, "responded": rep.Responded, "missed": rep.Missed, "unprompted": rep.Unprompted} {
		var got []string
		cursor := ""
		for range 100 {
			page, next, err := s.RollCallPage(id, list, cursor, 2)
			if err != nil || len(page) > 2 || (next != "" && len(page) != 2) {
				t.Fatalf("%s %s page: %v next %q, %v", id, list, page, next, err)
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			cursor = next
		}
		want := slices.Sorted(slices.Values(ids))
		if !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Errorf("%s %s pages %v, the members say %v", id, list, got, want)
		}
	}
	return n
}

func memberState(t *testing.T, s IndexStore, id, key string) store.MemberState {
	t.Helper()
	m, found, err := s.RollCallMember(id, key)
	if err != nil || !found {
		t.Fatalf("member %s of %s: found=%v %v", key, id, found, err)
	}
	return m
}

// testRollCallStates walks members through every transition Process
// makes: prompt, check-in, SOS, pause, a rollcall.missed event (only for
// its own roll call), erasure — and checks that other events change
// nothing.
func testRollCallStates(t *testing.T, s IndexStore) {
	active := func(st *dialogs.State, _ *dialogs.Result) { st.Status = dialogs.StatusActive }
	keys := []string{"checkin", "sos", "pause", "missed", "erased", "silent", "chatty"}
	for _, k := range keys {
		rcStep(t, s, k, t0, active)
	}
	rc := store.RollCall{ID: "rc_1", EmbassyID: "emb-a", Country: "KH", CreatedAt: t0, Deadline: t0.Add(time.Hour), Members: keys}
	if err := s.CreateRollCall(rc); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRollCall(rc); err == nil {
		t.Error("a roll call id was accepted twice")
	}
	for _, k := range keys {
		if m := memberState(t, s, "rc_1", k); m != store.MemberListed {
			t.Fatalf("%s starts %v", k, m)
		}
	}
	now := t0.Add(time.Minute)
	for _, k := range keys {
		rcStep(t, s, k, now, func(_ *dialogs.State, r *dialogs.Result) { r.Audit = []string{store.AuditRollCallPrompted} })
	}
	for _, k := range keys {
		if m := memberState(t, s, "rc_1", k); m != store.MemberPrompted {
			t.Fatalf("%s after the prompt: %v", k, m)
		}
	}
	sameCounts(t, s, "rc_1")
	now = now.Add(time.Minute)
	rcStep(t, s, "checkin", now, func(st *dialogs.State, _ *dialogs.Result) { st.LastCheckin = now })
	rcStep(t, s, "sos", now, func(_ *dialogs.State, r *dialogs.Result) {
		r.Escalations = []dialogs.Escalation{esc(escalation.TypeSOSRaised, escalation.SeverityCritical, dialogs.CaseOpen)}
	})
	rcStep(t, s, "pause", now, func(st *dialogs.State, _ *dialogs.Result) { st.Status = dialogs.StatusPaused })
	rcStep(t, s, "missed", now, func(_ *dialogs.State, r *dialogs.Result) {
		other := esc(escalation.TypeRollcallMissed, escalation.SeverityHigh, dialogs.CaseOpen)
		other.Details = map[string]any{store.DetailRollCallID: "rc_other"}
		r.Escalations = []dialogs.Escalation{other}
	})
	if m := memberState(t, s, "rc_1", "missed"); m != store.MemberPrompted {
		t.Errorf("another roll call's rollcall.missed moved this one to %v", m)
	}
	rcStep(t, s, "missed", now, func(_ *dialogs.State, r *dialogs.Result) {
		mine := esc(escalation.TypeRollcallMissed, escalation.SeverityHigh, dialogs.CaseOpen)
		mine.Details = map[string]any{store.DetailRollCallID: "rc_1"}
		r.Escalations = []dialogs.Escalation{mine}
	})
	rcStep(t, s, "erased", now, func(_ *dialogs.State, r *dialogs.Result) { r.Erase = true })
	rcStep(t, s, "chatty", now, func(st *dialogs.State, r *dialogs.Result) {
		st.Profile.City, r.Audit = "Kampot", []string{"update.city"}
	})
	want := map[string]store.MemberState{"checkin": store.MemberResponded, "sos": store.MemberResponded,
		"pause": store.MemberResponded, "missed": store.MemberMissed, "silent": store.MemberPrompted, "chatty": store.MemberPrompted}
	for k, w := range want {
		if m := memberState(t, s, "rc_1", k); m != w {
			t.Errorf("%s: %v, want %v", k, m, w)
		}
	}
	if _, found, _ := s.RollCallMember("rc_1", "erased"); found {
		t.Error("an erased registrant is still listed in the roll call")
	}
	if n := sameCounts(t, s, "rc_1"); n.Members != 6 {
		t.Errorf("counts after an erasure: %+v, want 6 members", n)
	}
	// A later check-in does not undo missed; a second one changes nothing.
	rcStep(t, s, "missed", now.Add(time.Minute), func(st *dialogs.State, _ *dialogs.Result) { st.LastCheckin = now.Add(time.Minute) })
	if m := memberState(t, s, "rc_1", "missed"); m != store.MemberMissed {
		t.Errorf("a check-in after the miss: %v", m)
	}
	rep, found, err := s.RollCall("rc_1")
	if err != nil || !found {
		t.Fatalf("report: %v %v", found, err)
	}
	if len(rep.Responded) != 3 || len(rep.Missed) != 1 || len(rep.Pending) != 2 || len(rep.Unprompted) != 0 {
		t.Errorf("report %+v", rep)
	}
	for _, id := range slices.Concat(rep.Responded, rep.Missed, rep.Pending) {
		if !strings.HasPrefix(id, "reg_") {
			t.Errorf("report lists %q, want pseudonymous ids only", id)
		}
	}
	if _, found, err := s.RollCall("rc_none"); found || err != nil {
		t.Errorf("unknown roll call: found=%v %v", found, err)
	}
}

// testRollCallClose: due roll calls come in deadline order; closing turns
// the never-prompted into Unprompted and the still-prompted into Missed,
// and takes the roll call off the due list.
func testRollCallClose(t *testing.T, s IndexStore) {
	for _, k := range []string{"a", "b", "c"} {
		rcStep(t, s, k, t0, func(st *dialogs.State, _ *dialogs.Result) { st.Status = dialogs.StatusActive })
	}
	for i, d := range []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour} {
		rc := store.RollCall{ID: fmt.Sprintf("rc_%d", i), EmbassyID: "emb-a", Country: "KH", CreatedAt: t0,
			Deadline: t0.Add(d), Members: []string{"a", "b", "c"}}
		if err := s.CreateRollCall(rc); err != nil {
			t.Fatal(err)
		}
	}
	due, err := s.DueRollCalls(t0.Add(2 * time.Hour))
	if err != nil || len(due) != 2 || due[0].ID != "rc_1" || due[1].ID != "rc_2" {
		t.Fatalf("due %+v, %v; want rc_1, rc_2", due, err)
	}
	rcStep(t, s, "a", t0, func(_ *dialogs.State, r *dialogs.Result) { r.Audit = []string{store.AuditRollCallPrompted} })
	rcStep(t, s, "b", t0, func(_ *dialogs.State, r *dialogs.Result) { r.Audit = []string{store.AuditRollCallPrompted} })
	rcStep(t, s, "b", t0, func(st *dialogs.State, _ *dialogs.Result) { st.LastCheckin = t0.Add(time.Second) })
	if got, err := s.RollCallMembers("rc_1", store.MemberPrompted); err != nil || !slices.Equal(got, []string{"a"}) {
		t.Errorf("prompted members %v, %v", got, err)
	}
	if err := s.CloseRollCall("rc_1"); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseRollCall("rc_1"); err != nil {
		t.Errorf("closing twice: %v", err)
	}
	for _, id := range []string{"rc_0", "rc_1", "rc_2"} {
		sameCounts(t, s, id)
	}
	rep, _, err := s.RollCall("rc_1")
	if err != nil || !rep.Closed || len(rep.Missed) != 1 || len(rep.Responded) != 1 || len(rep.Unprompted) != 1 || len(rep.Pending) != 0 {
		t.Errorf("closed report %+v, %v", rep, err)
	}
	due, err = s.DueRollCalls(t0.Add(2 * time.Hour))
	if err != nil || len(due) != 1 || due[0].ID != "rc_2" {
		t.Errorf("due after closing rc_1: %+v, %v", due, err)
	}
	// After closing, a member's events no longer touch it.
	rcStep(t, s, "a", t0.Add(time.Minute), func(st *dialogs.State, _ *dialogs.Result) { st.LastCheckin = t0.Add(time.Minute) })
	if m := memberState(t, s, "rc_1", "a"); m != store.MemberMissed {
		t.Errorf("a closed roll call changed: %v", m)
	}
	if err := s.CloseRollCall("rc_none"); err == nil {
		t.Error("closing an unknown roll call succeeded")
	}
}

// testRollCallPromptAccepted: the prompted count follows the platform's
// acceptance of each member's roll-call prompt (AckSends with Accepted),
// once per member, not a refusal, and not before; an erasure takes it
// back. Counts always agree with the memberships.
func testRollCallPromptAccepted(t *testing.T, s IndexStore) {
	keys := []string{"a", "b", "c", "d"}
	for _, k := range keys {
		rcStep(t, s, k, t0, func(st *dialogs.State, _ *dialogs.Result) { st.Status, st.Address = dialogs.StatusActive, "chat-"+k })
	}
	rc := store.RollCall{ID: "rc_acc", EmbassyID: "emb-a", Country: "KH", CreatedAt: t0, Deadline: t0.Add(time.Hour), Members: keys}
	if err := s.CreateRollCall(rc); err != nil {
		t.Fatal(err)
	}
	seq := map[string]uint64{}
	for _, k := range keys {
		o, err := s.ProcessSend(k, "", t0, &store.Envelope{Channel: "telegram", Scheduled: true}, handler(nil, func(_ *dialogs.State, r *dialogs.Result) {
			r.Audit, r.Replies, r.Prompt = []string{store.AuditRollCallPrompted}, []dialogs.Reply{{Text: "check in now"}}, true
		}))
		if err != nil || len(o.Sends) != 1 {
			t.Fatalf("prompt of %s: %+v, %v", k, o.Sends, err)
		}
		seq[k] = o.Sends[0].Seq
	}
	if n := sameCounts(t, s, "rc_acc"); n.Prompted != 0 || n.Pending != 4 {
		t.Errorf("prompts queued, none accepted: %+v", n)
	}
	ack := func(k string, accepted bool) {
		t.Helper()
		if err := s.AckSends([]store.SendAck{{Seq: seq[k], UserKey: k, Accepted: accepted}}); err != nil {
			t.Fatal(err)
		}
	}
	ack("a", true)
	ack("a", true)  // a duplicate acknowledgement
	ack("b", false) // the platform refused it for good
	// c answers before the platform's acceptance is recorded.
	rcStep(t, s, "c", t0.Add(time.Second), func(st *dialogs.State, _ *dialogs.Result) { st.LastCheckin = t0.Add(time.Second) })
	ack("c", true)
	if n := sameCounts(t, s, "rc_acc"); n.Prompted != 2 || n.Responded != 1 || n.Pending != 3 {
		t.Errorf("a and c accepted, b refused, c answered: %+v", n)
	}
	rcStep(t, s, "a", t0.Add(time.Minute), func(_ *dialogs.State, r *dialogs.Result) { r.Erase = true })
	if n := sameCounts(t, s, "rc_acc"); n.Prompted != 1 || n.Members != 3 {
		t.Errorf("after a's erasure: %+v, want 1 prompted of 3", n)
	}
	if err := s.CloseRollCall("rc_acc"); err != nil {
		t.Fatal(err)
	}
	if n := sameCounts(t, s, "rc_acc"); n.Prompted != 1 || n.Missed != 2 || n.Responded != 1 {
		t.Errorf("closed: %+v", n)
	}
}
