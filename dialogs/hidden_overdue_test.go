package dialogs_test

import (
	"slices"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
)

// TestHiddenOverdue: a covertly deleted registration is overdue
// (Hidden.Overdue) exactly while a checkin.missed went out for it — before
// the covert delete or from its hidden ladder — and no sign of life (the
// secret word, all its phone can still give) came since. Every timer is
// fired at its time, from a registration on time and from one already
// overdue, through two rounds of silence and sign of life.
func TestHiddenOverdue(t *testing.T) {
	e := newEngine(t)
	// step fires the registrant's next timer at its time and reports a
	// prompt delivered at once, as the runner would.
	step := func(st dialogs.State) (dialogs.State, []string) {
		at := st.DueAt()
		res := e.Handle(st, dialogs.Input{Kind: dialogs.KindTimer, Key: st.Key}, at)
		evs := eventTypes2(res.Escalations)
		if res.Prompt {
			res = e.Handle(res.State, dialogs.Input{Kind: dialogs.KindPromptDelivered, Key: st.Key}, at)
			evs = append(evs, eventTypes2(res.Escalations)...)
		}
		return res.State, evs
	}
	for _, tc := range []struct {
		name         string
		overdueFirst bool // the visible ladder escalates before the covert delete
		// pausedFirst: then a covert pause runs out, which starts a fresh
		// schedule (ladder back to its start) while still overdue.
		pausedFirst bool
	}{{"on time", false, false}, {"already overdue", true, false}, {"overdue, then a covert pause ended", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			st := registered(t, e)
			for i := 0; tc.overdueFirst && !st.Overdue; i++ {
				if i > 10 {
					t.Fatal("the visible ladder never escalated")
				}
				st, _ = step(st)
			}
			if tc.pausedFirst {
				st, _ = say(e, st, st.DueAt(), "/pause blue mango", "1")
				for i := 0; st.Shown != ""; i++ {
					if i > 10 {
						t.Fatal("the covert pause never ended")
					}
					st, _ = step(st)
				}
				if !st.Overdue || st.Ladder != 0 {
					t.Fatalf("after the covert pause: overdue %v, stage %d; want overdue on a fresh ladder", st.Overdue, st.Ladder)
				}
			}
			st, _ = say(e, st, st.DueAt(), "/delete", "1 blue mango")
			if st.Registered() || st.Hidden == nil {
				t.Fatalf("no covert delete: %+v", st)
			}
			missed := tc.overdueFirst // a checkin.missed went out since the last sign of life
			if got := st.Hidden.Overdue(); got != missed {
				t.Fatalf("right after the covert delete: Overdue %v, want %v", got, missed)
			}
			for round := range 2 {
				for i := 0; i < 6; i++ {
					var evs []string
					st, evs = step(st)
					if slices.Contains(evs, dialogs.EventCheckinMissed) {
						missed = true
					}
					if got := st.Hidden.Overdue(); got != missed {
						t.Fatalf("round %d, timer %d (stage %d, events %v): Overdue %v, want %v", round, i, st.Hidden.Ladder, evs, got, missed)
					}
				}
				if !missed {
					t.Fatalf("round %d: six timers and no checkin.missed", round)
				}
				// The secret word is a sign of life: no longer overdue.
				st, _ = say(e, st, st.DueAt(), "hello blue mango")
				missed = false
				if st.Hidden == nil || st.Hidden.Overdue() {
					t.Fatalf("round %d: still overdue after the secret word: %+v", round, st.Hidden)
				}
			}
		})
	}
	if (*dialogs.Hidden)(nil).Overdue() {
		t.Error("no hidden registration is overdue")
	}
}
