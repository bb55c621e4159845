package dialogs_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// A ladder simulation drives one registrant through the real engine with
// two clocks: the wall clock the engine is given as now, and a real
// (monotonic) clock that a downtime advances and a clock step does not.
// The platform accepts each prompt after a delay, or never, as the case
// says. The simulation records, independently of the engine's state, when
// the registrant was first prompted with a confirmed delivery, and checks
// every checkin.missed against it.

// ladderKind is who is monitored.
type ladderKind int

const (
	kindVisible      ladderKind = iota // an ordinary registration: prompts go to the phone
	kindCovertStop                     // stopped under duress: monitored silently (State.Shown)
	kindCovertDelete                   // deleted under duress: monitored silently (State.Hidden)
)

func (k ladderKind) String() string {
	return [...]string{"visible", "covert-stop", "covert-delete"}[k]
}

// disruption is what happens to the service at one moment.
type disruption struct {
	downtime time.Duration // both clocks move, no timer fires
	step     time.Duration // only the wall clock moves (negative: backwards)
}

func (d disruption) String() string {
	if d.downtime > 0 {
		return "down " + d.downtime.String()
	}
	return fmt.Sprintf("step %+v", d.step)
}

// stamp is a moment on both clocks.
type stamp struct {
	wall time.Time
	real time.Duration
}

type ladderSim struct {
	t    *testing.T
	e    *dialogs.Engine
	name string
	kind ladderKind
	st   dialogs.State
	now  stamp

	// delivery of prompts
	delay       time.Duration // platform acceptance after a prompt
	holdUntil   time.Duration // real time before which nothing is accepted
	confirmAt   time.Duration // real time of the outstanding acceptance
	outstanding bool
	prompts     int

	// tellQueued makes the simulated runner say, with every timer, whether
	// a prompt still waits unsent (Input.PromptQueued): then no prompt may
	// be sent while another is outstanding.
	tellQueued bool

	due     time.Time       // the silent ladder's due time (covert kinds)
	steps   []time.Duration // forward clock steps so far
	started *stamp          // the ladder may start: first confirmed delivery, proven undeliverable, or silent due
	missed  []stamp
	numbers []int
}

// handle runs one input at the current time, checks what came out and
// returns it.
func (s *ladderSim) handle(in dialogs.Input) dialogs.Result {
	s.t.Helper()
	in.Key, in.Channel, in.Address = s.st.Key, "telegram", "1001"
	if in.Kind == dialogs.KindTimer && s.kind != kindVisible && s.started == nil && !s.now.wall.Before(s.due) {
		now := s.now
		s.started = &now
	}
	if in.Kind == dialogs.KindUnreachable && s.started == nil && s.st.PromptPending {
		now := s.now
		s.started = &now
	}
	if in.Kind == dialogs.KindTimer && s.tellQueued {
		in.PromptQueued = s.outstanding
	}
	res := s.e.Handle(s.st, in, s.now.wall)
	s.st = res.State
	if res.Prompt {
		if s.kind != kindVisible {
			s.t.Fatalf("%s: a silently monitored phone was prompted: %q", s.name, res.Replies[0].Text)
		}
		if s.tellQueued && s.outstanding {
			s.t.Fatalf("%s: prompted again at %v while the last prompt still waits in the send queue", s.name, s.now.wall)
		}
		s.prompts++
		s.outstanding, s.confirmAt = true, max(s.now.real+s.delay, s.holdUntil)
	}
	for _, esc := range res.Escalations {
		switch esc.Type {
		case dialogs.EventCheckinMissed:
			s.checkMissed(esc)
		case dialogs.EventRegistrationUnreachable:
			if in.Kind != dialogs.KindUnreachable {
				s.t.Fatalf("%s: %s without a report from the channel", s.name, esc.Type)
			}
		default:
			s.t.Fatalf("%s: unexpected %s from the ladder", s.name, esc.Type)
		}
	}
	return res
}

// checkMissed holds one checkin.missed against the properties.
func (s *ladderSim) checkMissed(esc dialogs.Escalation) {
	s.t.Helper()
	p := s.e.Policy
	if s.started == nil {
		s.t.Fatalf("%s: checkin.missed at %v for a citizen never prompted with a confirmed delivery", s.name, s.now.wall)
	}
	firstWait := max(p.RemindAfter, p.FinalReminderAfter-p.RemindAfter, p.EscalateAfter-p.FinalReminderAfter)
	if s.now.wall.Sub(s.started.wall) < p.EscalateAfter || s.now.real-s.started.real < p.EscalateAfter-s.slack(firstWait) {
		s.t.Fatalf("%s: checkin.missed %s (wall) / %s (real) after the ladder started; escalate_after is %s",
			s.name, s.now.wall.Sub(s.started.wall), s.now.real-s.started.real, p.EscalateAfter)
	}
	n, _ := esc.Details["escalation"].(int)
	if n != len(s.numbers)+1 {
		s.t.Fatalf("%s: escalation %d after %v: numbers must run 1, 2, 3…", s.name, n, s.numbers)
	}
	if k := len(s.missed); k > 0 {
		prev := s.missed[k-1]
		if s.now.wall.Sub(prev.wall) < p.ReescalateEvery || s.now.real-prev.real < p.ReescalateEvery-s.slack(p.ReescalateEvery) {
			s.t.Fatalf("%s: escalation %d only %s (wall) / %s (real) after the previous one", s.name, n,
				s.now.wall.Sub(prev.wall), s.now.real-prev.real)
		}
	}
	s.numbers = append(s.numbers, n)
	s.missed = append(s.missed, s.now)
}

// step runs the next timer or delivery within limit (real time), or moves
// the clocks to limit. It reports whether anything ran.
func (s *ladderSim) step(limit time.Duration) bool {
	s.t.Helper()
	next, isTimer := limit, false
	if at := s.st.DueAt(); !at.IsZero() {
		if r := s.now.real + max(at.Sub(s.now.wall), 0); r <= next {
			next, isTimer = r, true
		}
	}
	if s.outstanding && s.confirmAt <= next && s.confirmAt >= s.holdUntil {
		next, isTimer = max(s.confirmAt, s.now.real), false
		s.move(next - s.now.real)
		s.outstanding = false
		if s.started == nil {
			now := s.now
			s.started = &now
		}
		s.handle(dialogs.Input{Kind: dialogs.KindPromptDelivered})
		return true
	}
	s.move(next - s.now.real)
	if isTimer {
		s.handle(dialogs.Input{Kind: dialogs.KindTimer})
	}
	return isTimer
}

func (s *ladderSim) move(d time.Duration) {
	s.now.wall, s.now.real = s.now.wall.Add(d), s.now.real+d
}

// run lets the service run normally for d of real time.
func (s *ladderSim) run(d time.Duration) {
	s.t.Helper()
	end := s.now.real + d
	for i := 0; s.now.real < end; i++ {
		if i > 10000 {
			s.t.Fatalf("%s: the ladder does not move on (timer %v at %v)", s.name, s.st.DueAt(), s.now.wall)
		}
		s.step(end)
	}
}

// runUntil runs until the ladder reaches a stage, or fails after limit.
func (s *ladderSim) runUntil(stage int, pending bool, limit time.Duration) {
	s.t.Helper()
	end := s.now.real + limit
	for !s.at(stage, pending) {
		if s.now.real >= end {
			s.t.Fatalf("%s: stage %d (pending %v) never reached", s.name, stage, pending)
		}
		s.step(end)
	}
}

func (s *ladderSim) at(stage int, pending bool) bool {
	if s.kind == kindCovertDelete {
		return s.st.Hidden.Ladder == stage
	}
	return s.st.Ladder == stage && s.st.PromptPending == pending
}

// disrupt applies a downtime or a clock step. A prompt awaiting acceptance
// is lost in a downtime half the time (the process died before sending).
func (s *ladderSim) disrupt(d disruption, rng *rand.Rand) {
	if d.downtime > 0 {
		s.move(d.downtime)
		if s.outstanding && rng.IntN(2) == 0 {
			s.outstanding = false
		}
		return
	}
	s.now.wall = s.now.wall.Add(d.step)
	if d.step > 0 {
		s.steps = append(s.steps, d.step)
	}
}

// slack is how much real time forward steps may have taken from waits of
// at most wait: a step that ends more than five minutes past a rung
// restarts that wait (dialogs.lateAfter), so only a step no longer than
// the wait plus five minutes can shorten it, by at most its size.
func (s *ladderSim) slack(wait time.Duration) time.Duration {
	var d time.Duration
	for _, st := range s.steps {
		if st <= wait+5*time.Minute {
			d += st
		}
	}
	return d
}

// Stages a disruption can hit: before the due time, the prompt awaiting
// delivery, then each stage after a confirmed delivery.
var ladderStages = []struct {
	name    string
	stage   int
	pending bool
}{
	{"waiting", 0, false}, {"prompt-unconfirmed", 1, true}, {"prompted", 1, false},
	{"reminder-unconfirmed", 2, true}, {"reminded", 2, false}, {"final", 3, false},
	{"missed-1", 4, false}, {"missed-2", 5, false},
}

var disruptions = []disruption{
	{downtime: 2 * time.Minute}, {downtime: 20 * time.Minute}, {downtime: 2 * time.Hour},
	{downtime: 26 * time.Hour}, {downtime: 72 * time.Hour},
	{step: 10 * time.Minute}, {step: 4 * time.Hour}, {step: 48 * time.Hour},
	{step: -10 * time.Minute}, {step: -4 * time.Hour}, {step: -48 * time.Hour},
}

// TestLadderEscalatesOnlyThePrompted: for registrants of every kind in
// every ladder stage, hit by every downtime length and clock step
// (forward and backward), at a random point of the stage, with prompts
// accepted after a random delay, held for hours, or never, and some
// channels reporting the citizen unreachable:
//   - no checkin.missed for anyone who was not prompted with a confirmed
//     delivery (or proven unreachable, or — silently monitored — due) at
//     least escalate_after before, on the wall clock; on the real clock, a
//     forward step no longer than a wait can shorten that wait by its own
//     size, and a longer one (+48 h) shortens nothing (see slack);
//   - escalation numbers run 1, 2, 3… and are reescalate_every apart;
//   - a silently monitored phone is never prompted;
//   - and the alarm still comes: once deliveries flow, a citizen who never
//     answers is escalated, again and again.
func TestLadderEscalatesOnlyThePrompted(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	stopped, _ := say(e, base, testNow, "/stop blue mango", "1")
	deleted, _ := say(e, base, testNow, "/delete blue mango", "1")
	if stopped.Shown != dialogs.StatusStopped || deleted.Hidden == nil {
		t.Fatal("covert stop or delete did not happen")
	}
	rng := rand.New(rand.NewPCG(10, 5))
	cases := 0
	for _, kind := range []ladderKind{kindVisible, kindCovertStop, kindCovertDelete} {
		for _, stage := range ladderStages {
			if kind != kindVisible && stage.pending {
				continue // nothing is sent, so nothing awaits delivery
			}
			for _, d := range disruptions {
				for run := 0; run < 6; run++ {
					// Runs 3–5 repeat 0–2 with the runner telling the engine
					// when a prompt still waits in the send queue.
					variant, told := run%3, run >= 3
					cases++
					s := &ladderSim{t: t, e: e, kind: kind, now: stamp{wall: testNow},
						delay: time.Duration(rng.IntN(120)) * time.Second, tellQueued: told}
					switch kind {
					case kindVisible:
						s.st = base
					case kindCovertStop:
						s.st, s.due = stopped, stopped.NextDue
					case kindCovertDelete:
						s.st, s.due = deleted, deleted.Hidden.NextDue
					}
					unreachable := kind == kindVisible && variant == 2
					if variant == 1 {
						// The channel is down for hours before deliveries flow.
						s.holdUntil = time.Duration(1+rng.IntN(12)) * time.Hour
					}
					s.name = fmt.Sprintf("%s/%s/%s/v%d/told=%v", kind, stage.name, d, variant, told)
					pending := stage.pending
					if unreachable {
						// The citizen blocked the bot: the first prompt is
						// proven undeliverable, and nothing awaits delivery
						// from then on.
						s.delay = 1000 * time.Hour
						s.runUntil(1, true, 48*time.Hour)
						s.handle(dialogs.Input{Kind: dialogs.KindUnreachable})
						s.delay, s.outstanding, pending = time.Duration(rng.IntN(120))*time.Second, false, false
					}
					if stage.stage > 0 || !unreachable {
						s.runUntil(stage.stage, pending, 4*24*time.Hour)
					}
					// Somewhere within the stage, then the disruption.
					s.run(time.Duration(rng.Int64N(int64(e.Policy.RemindAfter))))
					s.disrupt(d, rng)
					before := len(s.missed)
					s.run(5 * 24 * time.Hour)
					if len(s.missed)-before < 2 {
						t.Errorf("%s: %d escalations in the five days after the disruption; the alarm must still come",
							s.name, len(s.missed)-before)
					}
				}
			}
		}
	}
	t.Logf("%d cases", cases)
}

// TestUnconfirmedPromptNeverEscalates: when the platform never accepts a
// prompt, the citizen is asked again every remind_after and the embassy is
// never told — for as long as it lasts.
func TestUnconfirmedPromptNeverEscalates(t *testing.T) {
	e := newEngine(t)
	s := &ladderSim{t: t, e: e, name: "never-delivered", st: registered(t, e), now: stamp{wall: testNow},
		holdUntil: 1 << 62}
	s.run(10 * 24 * time.Hour)
	if len(s.missed) != 0 {
		t.Fatalf("%d escalations for a citizen whose prompts never arrived", len(s.missed))
	}
	// Due after a day, then asked again every hour: about nine days of prompts.
	if want := int((9*24*time.Hour)/e.Policy.RemindAfter) - 24; s.prompts < want {
		t.Errorf("%d prompts in ten days, want at least %d (one per remind_after)", s.prompts, want)
	}
	if !strings.HasPrefix(s.st.NextDue.Format(time.RFC3339), "2026-03-03") {
		t.Errorf("the due time moved to %v without a check-in", s.st.NextDue)
	}
}

// TestLadderOnTime: undisturbed and with deliveries confirmed at once, the
// ladder keeps the configured times from the prompt's delivery.
func TestLadderOnTime(t *testing.T) {
	e := newEngine(t)
	s := &ladderSim{t: t, e: e, name: "on-time", st: registered(t, e), now: stamp{wall: testNow}}
	s.runUntil(1, false, 48*time.Hour)
	start := s.now.wall
	s.run(e.Policy.EscalateAfter + 2*e.Policy.ReescalateEvery + time.Minute)
	want := []time.Time{start.Add(e.Policy.EscalateAfter), start.Add(e.Policy.EscalateAfter + e.Policy.ReescalateEvery),
		start.Add(e.Policy.EscalateAfter + 2*e.Policy.ReescalateEvery)}
	if len(s.missed) != len(want) {
		t.Fatalf("%d escalations, want %d", len(s.missed), len(want))
	}
	for i, m := range s.missed {
		if !m.wall.Equal(want[i]) {
			t.Errorf("escalation %d at %v, want %v", i+1, m.wall, want[i])
		}
	}
}

func TestNextDueAndLadder(t *testing.T) {
	e := newEngine(t)
	st := registered(t, e) // registered 09:00 Phnom Penh (02:00Z), daily at 09:00
	if want := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC); !st.NextDue.Equal(want) {
		t.Fatalf("next due %v, want %v", st.NextDue, want)
	}
	// An early check-in at 08:55 the next day is due again the day after.
	st2, _ := say(e, st, time.Date(2026, 3, 3, 1, 55, 0, 0, time.UTC), "ok")
	if want := time.Date(2026, 3, 4, 2, 0, 0, 0, time.UTC); !st2.NextDue.Equal(want) {
		t.Errorf("early check-in: next due %v, want %v", st2.NextDue, want)
	}
	// Three days of downtime: the citizen was never prompted, so the late
	// timer sends the prompt and no escalation (schedule.go).
	res := e.Handle(st, dialogs.Input{Kind: dialogs.KindTimer, Key: st.Key}, st.NextDue.Add(72*time.Hour))
	if len(res.Replies) != 1 || len(res.Escalations) != 0 || !res.Prompt {
		t.Errorf("catch-up: %d replies, escalations %v, prompt %v", len(res.Replies), eventTypes2(res.Escalations), res.Prompt)
	}
	if !res.State.Timer.After(st.NextDue.Add(72 * time.Hour)) {
		t.Errorf("catch-up: timer %v not in the future", res.State.Timer)
	}
}
