package dialogs_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// Snooze (DESIGN §2 flow 6): "Remind me in 30 minutes" postpones the
// question of a due check-in, capped at one hour past the original due —
// the delivery of its prompt, from which the ladder runs. The property is
// checked against a twin: the same registrant, the same delivery delays,
// the same clock, who never snoozes. The expectation comes from the twin
// and the policy, never from the code under test.

// snoozeWays are the ways a citizen snoozes: the button (global data, so
// it works under any prompt), its number, its label, a typed word, a word
// followed by other words.
var snoozeWays = []dialogs.Input{
	{Kind: dialogs.KindButton, Text: "snooze"},
	{Kind: dialogs.KindText, Text: "3"},
	{Kind: dialogs.KindText, Text: "Remind me in 30 minutes"},
	{Kind: dialogs.KindText, Text: "later"},
	{Kind: dialogs.KindText, Text: "Snooze, busy at work"},
}

// snoozePolicies: the transcript policy (1 h / 2 h / 3 h: only the first
// prompt can be snoozed, the cap falls at the first reminder), and a short
// one whose whole ladder fits inside the cap, so that reminders and the
// final reminder can be snoozed too.
func snoozePolicies(e *dialogs.Engine) map[string]dialogs.Policy {
	short := e.Policy
	short.RemindAfter, short.FinalReminderAfter, short.EscalateAfter = 10*time.Minute, 20*time.Minute, 30*time.Minute
	short.ReescalateEvery, short.Snooze = time.Hour, 15*time.Minute
	return map[string]dialogs.Policy{"default": e.Policy, "short": short}
}

// TestSnoozeNeverPostponesEscalationPastCap: for both policies, every
// ladder stage (prompt awaiting delivery, prompted, reminder awaiting
// delivery, reminded, final reminder), every way of snoozing, sequences of
// one to four snoozes at random moments, and prompts accepted at once or
// after a random delay:
//   - the first checkin.missed comes never earlier than the twin's and at
//     most SnoozeCap later;
//   - an accepted snooze ends after now, by the prompt's delivery (or, not
//     yet reported, the snooze itself) + SnoozeCap, its reply names that
//     time, and the question is asked again exactly then;
//   - a refused snooze (cap reached) changes nothing in the schedule;
//   - escalation numbers still run 1, 2, 3… (ladderSim checks).
func TestSnoozeNeverPostponesEscalationPastCap(t *testing.T) {
	e0 := newEngine(t)
	base := registered(t, e0)
	rng := rand.New(rand.NewPCG(12, 5))
	zone, _ := time.LoadLocation("Asia/Phnom_Penh")
	accepted, refused, cases := map[string]int{}, 0, 0
	for pname, pol := range snoozePolicies(e0) {
		e := dialogs.Engine{Catalog: e0.Catalog, Directory: e0.Directory, Policy: pol, Pepper: e0.Pepper}
		for _, stage := range ladderStages {
			if stage.stage == 0 || stage.stage >= 4 {
				continue // nothing due yet / already escalated: covered by TestSnoozeNothingToPostpone
			}
			for wi, way := range snoozeWays {
				for variant := range 4 {
					cases++
					delay := time.Duration(0)
					if variant%2 == 1 {
						delay = time.Duration(rng.IntN(120)) * time.Second
					}
					name := fmt.Sprintf("%s/%s/way%d/v%d", pname, stage.name, wi, variant)
					twin := &ladderSim{t: t, e: &e, name: name + "/twin", st: base, now: stamp{wall: testNow}, delay: delay}
					s := &ladderSim{t: t, e: &e, name: name, st: base, now: stamp{wall: testNow}, delay: delay}
					twin.runUntil(stage.stage, stage.pending, 48*time.Hour)
					s.runUntil(stage.stage, stage.pending, 48*time.Hour)

					var start time.Time // of the ladder, fixed at the first accepted snooze
					for range 1 + rng.IntN(4) {
						s.run(time.Duration(rng.Int64N(int64(pol.RemindAfter))))
						if len(s.missed) > 0 {
							break
						}
						before := s.st
						in := way
						if in.Kind == dialogs.KindText && before.Step != dialogs.StepDue && wi != 3 && wi != 4 {
							in = dialogs.Input{Kind: dialogs.KindButton, Text: "snooze"} // a number or label needs the question open
						}
						res := s.handle(in)
						if res.Prompt || len(res.Escalations) > 0 {
							t.Fatalf("%s: a snooze prompted (%v) or escalated (%v)", name, res.Prompt, eventTypes2(res.Escalations))
						}
						if !slices.Contains(res.Audit, "checkin.snoozed") {
							refused++
							if !res.State.Timer.Equal(before.Timer) || res.State.Ladder != before.Ladder || res.State.PromptPending != before.PromptPending {
								t.Fatalf("%s: a refused snooze moved the ladder: timer %v→%v, stage %d→%d",
									name, before.Timer, res.State.Timer, before.Ladder, res.State.Ladder)
							}
							continue
						}
						accepted[pname+"/"+stage.name]++
						until := res.State.SnoozedUntil
						if start.IsZero() {
							// The ladder's start as the simulation saw it:
							// the first confirmed delivery, or this snooze
							// if it came first (it proves the delivery).
							start = s.now.wall
							if s.started != nil {
								start = s.started.wall
							}
						}
						if !until.After(s.now.wall) || until.After(start.Add(pol.SnoozeCap)) || until.After(s.now.wall.Add(pol.Snooze+time.Minute)) {
							t.Fatalf("%s: snoozed at %v until %v; the prompt was delivered at %v", name, s.now.wall, until, start)
						}
						if !res.State.Timer.Equal(until) {
							t.Fatalf("%s: snoozed until %v, timer at %v", name, until, res.State.Timer)
						}
						if shown := until.In(zone).Format("15:04"); len(res.Replies) != 1 || !strings.Contains(res.Replies[0].Text, shown) {
							t.Fatalf("%s: the reply %+v does not say %s", name, res.Replies, shown)
						}
						// Asked again exactly at the end of the snooze, unless
						// snoozed again before.
						prompts := s.prompts
						s.run(until.Sub(s.now.wall) - time.Second)
						if s.prompts != prompts {
							t.Fatalf("%s: asked again before the snooze ended at %v", name, until)
						}
						s.run(time.Second)
						if s.prompts != prompts+1 {
							t.Fatalf("%s: not asked again when the snooze ended at %v", name, until)
						}
					}
					twin.run(3 * 24 * time.Hour)
					s.run(3 * 24 * time.Hour)
					if len(twin.missed) == 0 || len(s.missed) == 0 {
						t.Fatalf("%s: no escalation (twin %d, snoozed %d)", name, len(twin.missed), len(s.missed))
					}
					want, got := twin.missed[0].wall, s.missed[0].wall
					if got.Before(want) || got.After(want.Add(pol.SnoozeCap)) {
						t.Errorf("%s: escalated at %v; without snoozing %v, so between that and %v",
							name, got, want, want.Add(pol.SnoozeCap))
					}
				}
			}
		}
	}
	t.Logf("%d cases, snoozes accepted %v, %d refused", cases, accepted, refused)
	// Both sides of the cap are exercised: a stage can be snoozed when it
	// starts before the cap, one hour after the first delivery.
	for pname, pol := range snoozePolicies(e0) {
		starts := map[int]time.Duration{1: 0, 2: pol.RemindAfter, 3: pol.FinalReminderAfter}
		for _, stage := range ladderStages {
			if stage.stage == 0 || stage.stage >= 4 {
				continue
			}
			n := accepted[pname+"/"+stage.name]
			if possible := starts[stage.stage] < pol.SnoozeCap; possible != (n > 0) {
				t.Errorf("%s/%s: %d snoozes accepted; the stage starts %s after the first delivery, the cap is %s",
					pname, stage.name, n, starts[stage.stage], pol.SnoozeCap)
			}
		}
	}
	if refused == 0 {
		t.Error("no snooze was refused: the cap was never reached")
	}
}

// TestSnoozeNothingToPostpone: pressing an old snooze button (or typing a
// snooze word) where nothing can be postponed moves no timer and says why:
// past the cap or already escalated, "cannot be put off any longer" and
// the question again with two answers; with nothing due, "nothing to put
// off"; a covertly stopped or deleted phone sees exactly what a really
// stopped or deleted one sees.
func TestSnoozeNothingToPostpone(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	now := testNow.Add(5 * time.Hour)
	set := func(f func(*dialogs.State)) dialogs.State { s := base; f(&s); return s }
	stopped, _ := say(e, base, testNow, "/stop", "1")
	covertStopped, _ := say(e, base, testNow, "/stop blue mango", "1")
	deleted, _ := say(e, base, testNow, "/delete", "1")
	covertDeleted, _ := say(e, base, testNow, "/delete blue mango", "1")
	limit := e.Catalog.Text("en", "SnoozeLimit", nil)
	nothing := e.Catalog.Text("en", "SnoozeNothing", nil)
	cases := []struct {
		name string
		st   dialogs.State
		want []string // reply texts, in order
		like string   // or: exactly what the phone of this case sees
	}{
		{name: "not-due", st: base, want: []string{nothing}},
		{name: "paused", st: set(func(s *dialogs.State) {
			s.Status, s.PausedUntil, s.Timer = dialogs.StatusPaused, now.Add(time.Hour), now.Add(time.Hour)
		}), want: []string{nothing}},
		{name: "stopped", st: stopped, want: []string{nothing}},
		{name: "covert-stopped", st: set(func(s *dialogs.State) {
			*s = covertStopped
			s.Ladder, s.PromptedAt, s.Timer = 1, now.Add(-5*time.Minute), now.Add(55*time.Minute) // silently due
		}), like: "stopped"},
		{name: "past-cap", st: set(func(s *dialogs.State) {
			s.Ladder, s.PromptedAt, s.Timer = 2, now.Add(-61*time.Minute), now.Add(59*time.Minute)
		}), want: []string{limit, e.Catalog.Text("en", "DuePrompt", nil)}},
		{name: "escalated", st: set(func(s *dialogs.State) {
			s.Ladder, s.Overdue, s.PromptedAt, s.Timer = 4, true, now.Add(-10*time.Minute), now.Add(time.Hour)
		}), want: []string{limit, e.Catalog.Text("en", "DuePrompt", nil)}},
		{name: "deleted", st: deleted},
		{name: "covert-deleted", st: covertDeleted, like: "deleted"},
	}
	seen := map[string]string{}
	for _, c := range cases {
		for _, in := range []dialogs.Input{{Kind: dialogs.KindButton, Text: "snooze"}, {Kind: dialogs.KindText, Text: "later"}} {
			in.Key, in.Channel, in.Address = "user-1", "telegram", "1001"
			res := e.Handle(c.st, in, now)
			if slices.Contains(res.Audit, "checkin.snoozed") || !res.State.Timer.Equal(c.st.Timer) || !res.State.SnoozedUntil.IsZero() {
				t.Errorf("%s/%v: snoozed (timer %v→%v)", c.name, in.Kind, c.st.Timer, res.State.Timer)
			}
			view := phoneView(res)
			if in.Kind == dialogs.KindButton {
				seen[c.name] = view
				var texts []string
				for _, r := range res.Replies {
					texts = append(texts, r.Text)
					for _, b := range r.Buttons {
						if b.Data == "snooze" {
							t.Errorf("%s: a snooze button where nothing can be postponed", c.name)
						}
					}
				}
				if c.want != nil && !slices.Equal(texts, c.want) {
					t.Errorf("%s: replies %q, want %q", c.name, texts, c.want)
				}
			}
			if c.like != "" && in.Kind == dialogs.KindButton && view != seen[c.like] {
				t.Errorf("%s: the phone sees what %s does not\n%s", c.name, c.like, diff(seen[c.like], view))
			}
		}
	}
}
