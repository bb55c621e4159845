// Check-in (DESIGN §2 flow 2; roll calls, flow 9): the "are you safe?"
// question that the due prompt, the reminders and roll calls ask, and what
// a sign of life does. Its one step lives here, beside checkin and prompt,
// because answering it is checking in; the missed check-in ladder that
// sends the prompts is in schedule.go.

package dialogs

import (
	"time"
)

// checkinSteps is the question every prompt opens.
func checkinSteps() map[Step]stepSpec {
	return map[Step]stepSpec{
		StepDue: {
			// The question of the due prompt, reminders and roll calls, so
			// its buttons can be answered by number or label as well.
			prompt: "DuePrompt",
			// "Are you safe?" — "yes" means safe, "no" means help, and
			// while the due may still be postponed, "later" snoozes it.
			options: func(t *turn) []option { return t.dueOptions() },
			choose: func(t *turn, o option) {
				switch o.data {
				case "sos":
					t.sos()
				case "snooze":
					t.snooze()
				default:
					t.checkin()
				}
			},
		},
	}
}

// checkin records proof of life. Its visible outcome — reply, schedule,
// clean-up — depends only on the state and the time, never on the message,
// which is what lets a duress check-in look exactly like this one.
func (t *turn) checkin() {
	resumed := t.st.Overdue || t.st.Ladder >= ladderMissed
	wasOff := t.visible() != StatusActive
	t.st.Status, t.st.Shown, t.st.PausedUntil = StatusActive, "", time.Time{}
	t.st.Step, t.st.Editing, t.st.CovertFlow, t.st.PendingKeyword = StepNone, false, false, Keyword{}
	t.st.PendingCountry, t.st.ShownNextDue = "", time.Time{}
	t.st.LastCheckin, t.st.Overdue = t.now, false
	t.schedule()
	if resumed {
		t.escalate(EventCheckinResumed, SeverityInfo, CaseAppend, map[string]any{"overdue_since": t.st.LastCheckin})
	}
	t.audit("checkin")
	t.res.DeleteInbound = true
	id := "CheckinDone"
	if wasOff {
		id = "CheckinResumed"
	}
	t.reply(id, map[string]any{"When": t.when(t.st.NextDue)})
}

// start: for a stopped citizen /start turns monitoring back on.
func (t *turn) start() {
	if t.visible() == StatusStopped || t.visible() == StatusPaused {
		t.checkin()
		return
	}
	t.st.Step = StepNone
	t.reply("AlreadyRegistered", map[string]any{"When": t.when(t.shownNextDue())})
}

// rollCall asks for a check-in now on the embassy's behalf.
func (t *turn) rollCall() {
	if t.visible() != StatusActive || !t.st.Registered() {
		return
	}
	t.audit("rollcall.prompted")
	if t.in.Text != "" {
		// The embassy's own words, in the registrant's language.
		t.promptText(t.in.Text)
		return
	}
	t.prompt("RollCall", map[string]any{"Area": t.in.Area})
}

// rollCallMissed records that a member did not answer roll call
// in.RollCallID by its deadline: one event per person, on their case like
// a missed check-in (critical when a duress keyword is in force). Nothing
// is sent to the phone. A registration covertly deleted is still
// monitored, so it escalates too.
func (t *turn) rollCallMissed() {
	if !t.st.Registered() && t.st.Hidden == nil {
		return
	}
	sev := SeverityHigh
	if t.st.DoNotContact {
		sev = SeverityCritical
	}
	t.escalate(EventRollcallMissed, sev, CaseOpen, map[string]any{
		"rollcall_id": t.in.RollCallID, "deadline": t.in.Deadline.UTC()})
	t.audit("rollcall.missed")
}

// prompt asks "are you safe?" in the words of id, with its answers
// (dueOptions) as buttons. It opens StepDue unless another question is open, which keeps
// its place (the buttons still work there: their data is global). It marks
// the result as a prompt, so the runner reports its delivery
// (KindPromptDelivered), from which the missed check-in ladder runs.
func (t *turn) prompt(id string, data map[string]any) {
	t.promptText(t.text(id, data))
}

// promptText is prompt with the question's words given.
func (t *turn) promptText(text string) {
	t.res.Prompt = true
	if t.st.Step == StepNone || (t.st.Registered() && steps()[t.st.Step].sensitive) {
		// A secret-word change left open is abandoned by the prompt: the
		// next message is read as an answer to "are you safe?", never
		// swallowed as a new secret word.
		t.st.Step, t.st.PendingKeyword = StepDue, Keyword{}
	}
	t.res.Replies = append(t.res.Replies, Reply{Text: text, Buttons: t.dueButtons()})
}

// dueOptions are the answers to "are you safe?": I'm safe, I need help
// and — only while the due can still be postponed (snoozable) — "Remind me
// in 30 minutes". The buttons and the numbers a citizen types come from
// this one list, so "3" is the third button whenever there is one.
func (t *turn) dueOptions() []option {
	w := t.words()
	opts := []option{{label: t.text("ButtonSafe", nil), data: "checkin", aliases: w.Yes},
		{label: t.text("ButtonHelp", nil), data: "sos", aliases: w.No}}
	if t.snoozable() {
		minutes := int((t.e.Policy.Snooze + time.Minute - 1) / time.Minute)
		opts = append(opts, option{label: t.e.Catalog.Count(t.st.Lang, "ButtonSnooze", minutes, nil), data: "snooze", aliases: w.Snooze})
	}
	return opts
}

// dueButtons are the buttons of every prompt: the due prompt's options.
func (t *turn) dueButtons() []Button {
	var out []Button
	for _, o := range t.dueOptions() {
		out = append(out, Button{Label: o.label, Data: o.data})
	}
	return out
}
