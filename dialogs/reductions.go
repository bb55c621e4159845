// Reductions (DESIGN §2 flow 7, §3): pause, stop and delete, each asked
// for and then confirmed. Under duress — a keyword with the request, or a
// duress case still open — each only pretends: the phone sees it done while
// monitoring goes on and the embassy is told. The confirming steps live
// here, beside pause, stop and erase, which they end with.

package dialogs

import (
	"time"
)

// reductionSteps are the questions before a pause, stop or delete.
func reductionSteps() map[Step]stepSpec {
	return map[Step]stepSpec{
		StepPauseLength: {
			prompt: "AskPause",
			options: func(t *turn) []option {
				var opts []option
				for _, days := range []int{1, 3, 7, 14} {
					d := time.Duration(days) * 24 * time.Hour
					if d > t.e.Policy.MaxPause {
						break
					}
					opts = append(opts, option{label: t.e.Catalog.Count(t.st.Lang, "Days", days, nil), data: shortDuration(d)})
				}
				return opts
			},
			choose: func(t *turn, o option) {
				d, _ := time.ParseDuration(o.data)
				t.pause(d)
			},
		},
		StepStopConfirm: {
			prompt:  "AskStop",
			options: (*turn).yesNo,
			choose: func(t *turn, o option) {
				if o.data == "yes" {
					t.stop()
					return
				}
				t.cancelReduction()
			},
		},
		StepDeleteConfirm: {
			prompt:  "AskDelete",
			options: (*turn).yesNo,
			choose: func(t *turn, o option) {
				if o.data == "yes" {
					t.erase()
					return
				}
				t.cancelReduction()
			},
		},
	}
}

// startReduction opens the question before a pause, stop or delete. If a
// duress keyword came with the request, its completion will only pretend.
func (t *turn) startReduction(step Step) {
	t.st.CovertFlow = t.covert
	t.ask(step)
}

func (t *turn) cancelReduction() {
	t.st.Step, t.st.CovertFlow = StepNone, false
	t.reply("Cancelled", nil)
}

// monitorCovertly makes sure a registration under duress is monitored,
// whatever it showed before: a real pause or stop ends (silently; the phone
// keeps seeing what it is shown) and a fresh schedule starts if none runs.
func (t *turn) monitorCovertly() {
	if t.st.Status != StatusActive || t.st.Timer.IsZero() {
		t.st.Status, t.st.PausedUntil = StatusActive, time.Time{}
		t.schedule()
	}
}

// pretending reports whether this stop, pause or delete must only appear
// to happen (DESIGN §3).
// Only a registration can pretend: the phone of a covertly deleted one,
// which looks new, is monitored through State.Hidden whatever it does.
// While a duress case is open (do-not-contact, until the embassy resolves
// it) every stop, pause or delete only pretends, keyword or not: whoever
// forced one may force the next without it.
func (t *turn) pretending() bool {
	return (t.covert || t.st.CovertFlow || t.st.DoNotContact) && t.st.Registered()
}

func (t *turn) pause(d time.Duration) {
	until := t.now.Add(d)
	t.st.Step = StepNone
	if t.pretending() {
		shown := t.shownNextDue()
		t.monitorCovertly()
		t.st.Shown, t.st.ShownNextDue, t.st.PausedUntil, t.st.CovertFlow = StatusPaused, shown, until, false
		if t.st.Timer.IsZero() || until.Before(t.st.Timer) {
			t.st.Timer = until // the shown pause must end visibly, as a real one does
		}
		t.escalate(EventCaseUpdated, SeverityCritical, CaseOpen, map[string]any{"covert_action": "pause", "shown_until": until})
	} else {
		t.st.Status, t.st.Shown, t.st.PausedUntil, t.st.Ladder, t.st.Timer = StatusPaused, "", until, ladderWaiting, until
		t.escalate(EventProtectionReduced, SeverityInfo, CaseNone, map[string]any{"action": "pause", "until": until})
	}
	t.audit("pause")
	t.reply("Paused", map[string]any{"Until": t.when(until)})
}

func (t *turn) stop() {
	t.st.Step = StepNone
	if t.pretending() {
		shown := t.shownNextDue()
		t.monitorCovertly()
		t.st.Shown, t.st.ShownNextDue, t.st.CovertFlow = StatusStopped, shown, false
		t.escalate(EventCaseUpdated, SeverityCritical, CaseOpen, map[string]any{"covert_action": "stop"})
	} else {
		t.st.Status, t.st.Shown, t.st.Timer, t.st.Ladder = StatusStopped, "", time.Time{}, ladderWaiting
		t.escalate(EventProtectionReduced, SeverityInfo, CaseNone, map[string]any{"action": "stop"})
	}
	t.audit("stop")
	t.reply("Stopped", nil)
}

// erase deletes everything personal, or — under duress — pretends to: the
// phone sees a fresh start while the registration, its schedule and the
// keyword stay, and the embassy is told.
func (t *turn) erase() {
	t.st.Step = StepNone
	t.audit("delete")
	t.reply("Deleted", nil)
	if t.pretending() {
		t.monitorCovertly()
		t.escalate(EventCaseUpdated, SeverityCritical, CaseOpen, map[string]any{"covert_action": "delete"})
		st := t.st
		keywords := st.Keywords()
		if st.Hidden != nil {
			keywords = append(keywords, st.Hidden.Keywords...)
		}
		t.st = State{Key: st.Key, OpenCase: st.OpenCase, DoNotContact: true, Overdue: st.Overdue, Hidden: &Hidden{
			Profile: st.Profile, Channel: st.Channel, Address: st.Address, Handle: st.Handle, Lang: st.Lang,
			Keywords: keywords, Interval: t.interval(), CheckinTime: st.CheckinTime,
			LastCheckin: st.LastCheckin, NextDue: st.NextDue, Ladder: st.Ladder, Timer: st.Timer,
			Missed: st.Overdue || st.Hidden.Overdue(),
		}}
		return
	}
	t.escalate(EventRegistrationWithdrawn, SeverityInfo, CaseNone, nil)
	// Withdrawal carries only the pseudonymous id: the data is erased.
	last := &t.res.Escalations[len(t.res.Escalations)-1]
	last.Registrant = RegistrantView{ID: last.Registrant.ID, Channel: last.Registrant.Channel}
	t.st = t.fresh()
}
