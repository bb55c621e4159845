package dialogs_test

// Tests of the reductions (reductions.go): pause, stop and delete, and how
// under duress they only pretend.

import (
	"reflect"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
)

// TestDuressInsideReductionOnlyPretends: stop, pause and delete requests
// that carry the keyword show the normal confirmation while monitoring
// continues and the embassy is told.
func TestDuressInsideReductionOnlyPretends(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	cases := []struct {
		name      string
		normal    []string
		duress    []string
		wantShown dialogs.Status
		realEvent string
	}{
		{"stop in request", []string{"/stop", "yes"}, []string{"/stop blue mango", "yes"}, dialogs.StatusStopped, dialogs.EventProtectionReduced},
		{"stop in confirmation", []string{"/stop", "yes"}, []string{"/stop", "yes blue mango"}, dialogs.StatusStopped, dialogs.EventProtectionReduced},
		{"pause", []string{"/pause", "3"}, []string{"pause Blue Mango", "3"}, dialogs.StatusPaused, dialogs.EventProtectionReduced},
		{"delete", []string{"/delete", "1"}, []string{"/delete", "1 blue mango"}, dialogs.StatusDeleted, dialogs.EventRegistrationWithdrawn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, normal := say(e, base, testNow, c.normal...)
			st := base
			var all []string
			var res dialogs.Result
			for _, text := range c.duress {
				res = e.Handle(st, textInput(text), testNow)
				st = res.State
				all = append(all, eventTypes2(res.Escalations)...)
			}
			if !reflect.DeepEqual(normal.Replies, res.Replies) {
				t.Errorf("replies differ\nnormal: %+v\nduress: %+v", normal.Replies, res.Replies)
			}
			if res.Erase {
				t.Error("a covert delete erased the registration")
			}
			if c.wantShown == dialogs.StatusDeleted {
				// The phone sees a fresh start; the registration is hidden and monitored.
				if st.Registered() || st.Hidden == nil || st.Hidden.Timer.IsZero() || st.Hidden.Profile.Name == "" || len(st.Hidden.Keywords) == 0 {
					t.Errorf("covert delete: %+v", st)
				}
			} else if st.Status != dialogs.StatusActive || st.Shown != c.wantShown || st.Timer.IsZero() {
				t.Errorf("monitoring did not continue: status %q shown %q timer %v", st.Status, st.Shown, st.Timer)
			}
			if !reflect.DeepEqual(all, []string{dialogs.EventDuressTriggered, dialogs.EventCaseUpdated}) {
				t.Errorf("events %v, want duress.triggered then case.updated (never %s)", all, c.realEvent)
			}
		})
	}
}
