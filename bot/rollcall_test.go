package bot_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// prioRecorder is a channel that remembers each response with its priority.
type prioRecorder struct {
	mu   sync.Mutex
	sent map[string][]bot.Response
}

func (p *prioRecorder) Send(_ context.Context, address string, resp bot.Response) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent[address] = append(p.sent[address], resp)
	return nil
}

func (p *prioRecorder) since(address string, n int) []bot.Response {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent[address][n:])
}

func (p *prioRecorder) count(address string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent[address])
}

// fakeClock is the runner's clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rollCallRig is a runner on a real bbolt store whose registrant index
// routes by the engine's directory, with six citizens registered: five in
// Phnom Penh and one in Siem Reap.
type rollCallRig struct {
	r       *bot.Runner
	s       *boltstore.Store
	rec     *prioRecorder
	clock   *fakeClock
	embassy string
	events  []store.Event
	mu      sync.Mutex
}

func newRollCallRig(t *testing.T) *rollCallRig {
	t.Helper()
	s := testkit.Store(t)
	eng := testkit.Engine(t)
	if err := s.IndexWith(eng.Directory.EmbassyFor, "test"); err != nil {
		t.Fatal(err)
	}
	rig := &rollCallRig{s: s, rec: &prioRecorder{sent: map[string][]bot.Response{}},
		clock: &fakeClock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}, embassy: eng.Directory.EmbassyFor("MY", "KH")}
	if rig.embassy == "" {
		t.Fatal("the built-in directory has no embassy for MY in KH")
	}
	rig.r = testkit.RunnerOn(t, s)
	rig.r.Now = rig.clock.Now
	rig.r.Register("telegram", rig.rec)
	rig.r.OnEvents = func(evs []store.Event) {
		rig.mu.Lock()
		defer rig.mu.Unlock()
		rig.events = append(rig.events, evs...)
	}
	for _, a := range []string{"2001", "2002", "2003", "2004", "2005"} {
		register(t, rig.r, a)
	}
	siemReap := slices.Clone(registration)
	siemReap[5] = "Siem Reap"
	for _, text := range siemReap {
		if err := rig.r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "2006",
			Kind: dialogs.KindText, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	rig.clock.Add(time.Hour)
	return rig
}

func (rig *rollCallRig) say(t *testing.T, address string, kind dialogs.InputKind, text string) {
	t.Helper()
	if err := rig.r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: address, Kind: kind, Text: text}); err != nil {
		t.Fatal(err)
	}
}

func (rig *rollCallRig) take() []store.Event {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	evs := rig.events
	rig.events = nil
	return evs
}

// TestRollCallEndToEnd: a roll call of Phnom Penh prompts the five there
// (not Siem Reap) at reminder priority; two answer by button, one with the
// duress keyword inside an ordinary check-in (same visible reply as a
// plain one), two stay silent. At the deadline exactly the two silent ones
// escalate as rollcall.missed, one event each, on a case; the report
// counts 3 responded, 2 missed; working the deadline again adds nothing.
func TestRollCallEndToEnd(t *testing.T) {
	rig := newRollCallRig(t)
	ctx := context.Background()
	all := []string{"2001", "2002", "2003", "2004", "2005", "2006"}
	before := map[string]int{}
	for _, a := range all {
		before[a] = rig.rec.count(a)
	}
	rig.take()
	deadline := rig.clock.Now().Add(2 * time.Hour)
	rc, err := rig.r.StartRollCall(ctx, bot.RollCallRequest{EmbassyID: rig.embassy, Country: "KH", City: "phnom penh",
		Deadline: deadline})
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Members) != 5 {
		t.Fatalf("members %d, want the 5 in Phnom Penh", len(rc.Members))
	}
	for _, a := range all[:5] {
		got := rig.rec.since(a, before[a])
		if len(got) != 1 || got[0].Priority != bot.PriorityReminder || len(got[0].Replies) != 1 ||
			len(got[0].Replies[0].Buttons) != 2 {
			t.Fatalf("%s was sent %+v, want one prompt with two buttons at reminder priority", a, got)
		}
	}
	if got := rig.rec.since("2006", before["2006"]); len(got) != 0 {
		t.Errorf("Siem Reap was prompted by a Phnom Penh roll call: %+v", got)
	}

	rig.clock.Add(10 * time.Minute)
	replies := map[string][]bot.Response{}
	for _, a := range []string{"2001", "2003"} {
		n := rig.rec.count(a)
		rig.say(t, a, dialogs.KindText, map[string]string{"2001": "OK green apple", "2003": "OK blue mango"}[a])
		replies[a] = rig.rec.since(a, n)
	}
	rig.say(t, "2002", dialogs.KindButton, "checkin")
	if len(replies["2001"]) != 1 || len(replies["2003"]) != 1 ||
		replies["2001"][0].Replies[0].Text != replies["2003"][0].Replies[0].Text ||
		replies["2001"][0].Priority != replies["2003"][0].Priority {
		t.Errorf("a duress check-in answered differently:\n plain  %+v\n duress %+v", replies["2001"], replies["2003"])
	}
	var duress int
	for _, e := range rig.take() {
		if e.Type == dialogs.EventDuressTriggered {
			duress++
		}
	}
	if duress != 1 {
		t.Fatalf("duress.triggered events: %d, want 1", duress)
	}
	rep, _, err := rig.r.RollCall(rc.ID)
	if err != nil || len(rep.Responded) != 3 || len(rep.Pending) != 2 || len(rep.Missed) != 0 {
		t.Fatalf("before the deadline: %+v, %v", rep, err)
	}

	// Nothing happens before the deadline.
	rig.clock.Add(time.Hour)
	if n, err := rig.r.FireRollCalls(ctx); err != nil || n != 0 {
		t.Fatalf("before the deadline: %d missed, %v", n, err)
	}
	rig.clock.Add(time.Hour)
	silentBefore := map[string]int{"2004": rig.rec.count("2004"), "2005": rig.rec.count("2005")}
	// The scheduler's pass works the deadline.
	origin := rig.clock.Now()
	bot.StartScheduler(rig.r, func() time.Duration { return rig.clock.Now().Sub(origin) }).Pass(ctx)
	evs := rig.take()
	missed := map[string]store.Event{}
	for _, e := range evs {
		if e.Type != dialogs.EventRollcallMissed {
			t.Errorf("unexpected event %s at the deadline", e.Type)
			continue
		}
		if e.Details[store.DetailRollCallID] != rc.ID || e.CaseID == "" || e.EmbassyID != rig.embassy {
			t.Errorf("rollcall.missed %+v", e)
		}
		if _, dup := missed[e.Registrant.ID]; dup {
			t.Errorf("two events for %s", e.Registrant.ID)
		}
		missed[e.Registrant.ID] = e
	}
	var silentIDs []string
	for _, a := range []string{"2004", "2005"} {
		silentIDs = append(silentIDs, dialogs.Pseudonym(store.UserKey(testkit.Pepper, "telegram", a)))
		if got := rig.rec.since(a, silentBefore[a]); len(got) != 0 {
			t.Errorf("%s was sent %+v at the deadline: nothing goes to the phone", a, got)
		}
	}
	if len(missed) != 2 || missed[silentIDs[0]].ID == "" || missed[silentIDs[1]].ID == "" {
		t.Errorf("missed %v, want exactly %v", missed, silentIDs)
	}
	rep, _, err = rig.r.RollCall(rc.ID)
	slices.Sort(silentIDs)
	slices.Sort(rep.Missed)
	if err != nil || !rep.Closed || len(rep.Responded) != 3 || !slices.Equal(rep.Missed, silentIDs) || len(rep.Pending) != 0 {
		t.Errorf("after the deadline: %+v, %v", rep, err)
	}
	// The deadline is worked once.
	rig.clock.Add(time.Hour)
	if n, err := rig.r.FireRollCalls(ctx); err != nil || n != 0 || len(rig.take()) != 0 {
		t.Errorf("again: %d missed, %v", n, err)
	}
}

// TestRollCallAnswerRacesDeadline: a member whose answer is committed
// before their turn at the deadline is not escalated.
func TestRollCallAnswerRacesDeadline(t *testing.T) {
	rig := newRollCallRig(t)
	ctx := context.Background()
	rc, err := rig.r.StartRollCall(ctx, bot.RollCallRequest{EmbassyID: rig.embassy, Country: "KH",
		Deadline: rig.clock.Now().Add(time.Hour), Texts: map[string]string{"en": "Flood warning: are you safe?"}})
	if err != nil || len(rc.Members) != 6 {
		t.Fatalf("%d members, %v", len(rc.Members), err)
	}
	last := rig.rec.since("2001", rig.rec.count("2001")-1)
	if last[0].Replies[0].Text != "Flood warning: are you safe?" {
		t.Errorf("prompt %q, want the embassy's words", last[0].Replies[0].Text)
	}
	rig.clock.Add(2 * time.Hour)
	rig.take()
	// Five answer just after the deadline pass read who is unanswered,
	// before their turn comes.
	late := map[string]string{}
	for _, a := range []string{"2001", "2002", "2003", "2004", "2005"} {
		late[store.UserKey(testkit.Pepper, "telegram", a)] = a
	}
	bot.SetBeforeMiss(func(key string) {
		if a, ok := late[key]; ok {
			rig.say(t, a, dialogs.KindButton, "checkin")
		}
	})
	t.Cleanup(func() { bot.SetBeforeMiss(nil) })
	if n, err := rig.r.FireRollCalls(ctx); err != nil || n != 1 {
		t.Fatalf("%d missed, %v; want only 2006", n, err)
	}
	var evs []store.Event
	for _, e := range rig.take() {
		if e.Type == dialogs.EventRollcallMissed {
			evs = append(evs, e)
		}
	}
	if len(evs) != 1 || evs[0].Registrant.ID != dialogs.Pseudonym(store.UserKey(testkit.Pepper, "telegram", "2006")) {
		t.Errorf("events %+v", evs)
	}
}

// TestRollCallBadRequests: every invalid request is refused with EINVALID
// naming the field, and nothing is recorded or sent.
func TestRollCallBadRequests(t *testing.T) {
	rig := newRollCallRig(t)
	now := rig.clock.Now()
	ok := bot.RollCallRequest{EmbassyID: rig.embassy, Country: "KH", Deadline: now.Add(time.Hour)}
	long := make([]rune, bot.MaxRollCallText+1)
	for i := range long {
		long[i] = 'x'
	}
	cases := map[string]func(q *bot.RollCallRequest){
		"embassy":  func(q *bot.RollCallRequest) { q.EmbassyID = "" },
		"country":  func(q *bot.RollCallRequest) { q.Country = "kh" },
		"deadline": func(q *bot.RollCallRequest) { q.Deadline = now },
		"week":     func(q *bot.RollCallRequest) { q.Deadline = now.Add(bot.MaxRollCallDeadline + time.Minute) },
		"text.en":  func(q *bot.RollCallRequest) { q.Texts = map[string]string{"en": string(long)} },
		"text.th":  func(q *bot.RollCallRequest) { q.Texts = map[string]string{"th": ""} },
	}
	sent := rig.rec.count("2001")
	for name, mod := range cases {
		q := ok
		mod(&q)
		_, err := rig.r.StartRollCall(context.Background(), q)
		var e *errs.Error
		if !errors.As(err, &e) || e.Code != errs.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	if rig.rec.count("2001") != sent {
		t.Error("a refused roll call prompted someone")
	}
	if due, err := rig.s.DueRollCalls(now.Add(30 * 24 * time.Hour)); err != nil || len(due) != 0 {
		t.Errorf("refused roll calls recorded: %+v, %v", due, err)
	}
}

// TestResumeRollCallsAfterACrash: a roll call recorded but not prompted
// (the service stopped inside StartRollCall) is prompted by
// ResumeRollCalls (RunScheduler calls it on start), in the roll call's own words; members the engine will
// not prompt (a stopped citizen) stay listed and are never escalated.
func TestResumeRollCallsAfterACrash(t *testing.T) {
	rig := newRollCallRig(t)
	ctx := context.Background()
	rig.say(t, "2005", dialogs.KindText, "/stop")
	rig.say(t, "2005", dialogs.KindText, "1")
	if st, _, _ := rig.s.Registrant(store.UserKey(testkit.Pepper, "telegram", "2005")); st.Status != dialogs.StatusStopped {
		t.Fatalf("2005 is %q, want stopped", st.Status)
	}
	var keys []string
	for _, a := range []string{"2001", "2002", "2005"} {
		keys = append(keys, store.UserKey(testkit.Pepper, "telegram", a))
	}
	now := rig.clock.Now()
	rc := store.RollCall{ID: "rc_crashed", EmbassyID: rig.embassy, Country: "KH", CreatedAt: now,
		Deadline: now.Add(time.Hour), Texts: map[string]string{"en": "Curfew tonight: are you safe?"}, Members: keys}
	if err := rig.s.CreateRollCall(rc); err != nil {
		t.Fatal(err)
	}
	n1, n5 := rig.rec.count("2001"), rig.rec.count("2005")
	if err := rig.r.ResumeRollCalls(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rig.rec.since("2001", n1); len(got) != 1 || got[0].Replies[0].Text != "Curfew tonight: are you safe?" {
		t.Errorf("2001 after resuming: %+v", got)
	}
	if got := rig.rec.since("2005", n5); len(got) != 0 {
		t.Errorf("a stopped citizen was prompted: %+v", got)
	}
	rig.clock.Add(2 * time.Hour)
	rig.take()
	if n, err := rig.r.FireRollCalls(ctx); err != nil || n != 2 {
		t.Errorf("%d missed, %v; want 2001 and 2002, not the stopped 2005", n, err)
	}
	rep, _, err := rig.r.RollCall("rc_crashed")
	if err != nil || len(rep.Missed) != 2 || len(rep.Unprompted) != 1 {
		t.Errorf("report %+v, %v", rep, err)
	}
}
