// The check-in schedule and the missed check-in ladder (DESIGN §2 flow 6):
// when the next check-in is due, and what each timer does until the
// citizen answers. It declares no steps: the ladder asks the question of
// checkin.go (StepDue) through prompt.

package dialogs

import (
	"strconv"
	"strings"
	"time"
)

// Missed check-in ladder stages (DESIGN §2 flow 6). Stages at or above
// ladderMissed count escalations: ladderMissed+n is the (n+1)th.
//
// The ladder runs from what was sent, never from the clock alone:
//
//   - At the due time the prompt ("Are you safe?") goes out and the ladder
//     waits for its delivery: State.PromptPending until the runner reports,
//     as a KindPromptDelivered input, that the platform accepted it (or a
//     KindUnreachable input proves it never can be). Only then does the
//     wait for the reminder start (State.PromptedAt).
//   - Reminders and the final reminder are prompts too, and the ladder
//     waits for their delivery the same way: the final reminder warns "we
//     will tell your embassy", so the embassy is never told before that
//     warning reached the platform, and never sooner than escalate_after
//     after the first prompt did.
//   - A prompt whose delivery is not confirmed within its stage's wait
//     (the channel was down, or the send queue dropped it as stale) is sent
//     again after that wait — remind_after for the first prompt — and the
//     ladder does not move: an unconfirmed prompt never escalates.
//   - Each rung is armed one stage's wait after the previous rung actually
//     happened, so escalations are counted from what was sent: the first
//     checkin.missed of a due says escalation 1, the next 2, and so on.
//   - A rung whose timer fires more than lateAfter late (downtime, a
//     forward clock step) is not taken: the stage's wait starts again from
//     now. The gap never counts as time the citizen had to answer, so a
//     restart or a clock step raises no alarm; a citizen not yet prompted
//     simply gets the prompt and a fresh ladder.
//   - A covertly stopped, paused or deleted registration (State.Shown set,
//     or State.Hidden) is monitored silently: nothing is sent to the phone,
//     so there is no delivery to wait for. Its ladder starts when its due
//     timer fires and follows the same waits, which puts the first
//     escalation escalate_after after the due time, as before.
//   - A snooze ("Remind me in 30 minutes", snooze below) takes the ladder
//     back to ladderWaiting with its timer at State.SnoozedUntil; then the
//     question is asked again and the ladder runs afresh from that moment,
//     without waiting for the delivery (the citizen's own answer proved
//     the first prompt arrived). Every snooze of one due ends by
//     PromptedAt + Policy.SnoozeCap, so the escalation comes at most
//     SnoozeCap later than without snoozing, and never earlier.
const (
	ladderWaiting  = 0 // before the due time
	ladderPrompted = 1 // "Are you safe?" sent
	ladderReminded = 2 // reminder sent
	ladderFinal    = 3 // final reminder sent
	ladderMissed   = 4 // checkin.missed sent
)

// interval is the citizen's check-in interval, or the policy default.
func (t *turn) interval() time.Duration {
	if t.st.Interval > 0 {
		return t.st.Interval
	}
	return t.e.Policy.Intervals[0]
}

// zone is the time zone of the country the citizen is in.
func (t *turn) zone() *time.Location { return t.zoneOf(t.st.Profile.Country) }

func (t *turn) zoneOf(country string) *time.Location {
	if c, ok := t.e.Directory.country(country); ok && c.Location != nil {
		return c.Location
	}
	return time.UTC
}

// schedule sets the next due time from now and arms the timer.
func (t *turn) schedule() {
	t.st.NextDue = nextDue(t.now, t.interval(), t.st.CheckinTime, t.zone())
	t.st.Ladder = ladderWaiting
	t.st.PromptPending, t.st.PromptedAt, t.st.SnoozedUntil = false, time.Time{}, time.Time{}
	t.st.Timer = t.st.NextDue
}

// nextDue is the first check-in slot more than half an interval after now.
// Slots fall at the chosen local time of day, and every interval after it
// when the interval divides a day (12 h: 09:00 and 21:00). So an early
// check-in at 08:55 is due again tomorrow at 09:00, not five minutes later,
// and no gap is shorter than half an interval. Intervals under an hour (the
// demo's --fast mode) are not aligned to the clock.
func nextDue(now time.Time, interval time.Duration, hhmm string, loc *time.Location) time.Time {
	if interval < time.Hour {
		return now.Add(interval).UTC()
	}
	h, m := 9, 0
	if hs, ms, ok := strings.Cut(hhmm, ":"); ok {
		h, _ = strconv.Atoi(hs)
		m, _ = strconv.Atoi(ms)
	}
	step := 24 * time.Hour
	if interval < step && step%interval == 0 {
		step = interval
	}
	threshold := now.Add(interval / 2)
	local := now.In(loc)
	slot := time.Date(local.Year(), local.Month(), local.Day()-1, h, m, 0, 0, loc)
	for !slot.After(threshold) {
		if step == 24*time.Hour {
			slot = slot.AddDate(0, 0, 1)
		} else {
			slot = slot.Add(step)
		}
	}
	return slot.UTC()
}

// when formats a time for the citizen in their local time zone:
// "09:00, 27/11" (seconds appear only in the demo's --fast mode).
func (t *turn) when(tm time.Time) string {
	if tm.IsZero() {
		return t.text("ValueNone", nil)
	}
	local := tm.In(t.zone())
	if local.Second() != 0 {
		return local.Format("15:04:05, 02/01")
	}
	return local.Format("15:04, 02/01")
}

// lateAfter is how late a ladder timer may fire and still be taken as on
// time. The scheduler fires timers within milliseconds, or seconds under a
// burst of thousands; anything later means the service was not running, or
// the wall clock stepped forward.
const lateAfter = 5 * time.Minute

// wait is how long the ladder stays at stage before the next rung: the
// gaps between remind_after, final_reminder_after and escalate_after, then
// reescalate_every between escalations.
func (p Policy) wait(stage int) time.Duration {
	switch stage {
	case ladderWaiting, ladderPrompted:
		return p.RemindAfter
	case ladderReminded:
		return p.FinalReminderAfter - p.RemindAfter
	case ladderFinal:
		return p.EscalateAfter - p.FinalReminderAfter
	}
	return p.ReescalateEvery
}

// ladderPrompt is the message of the rung that reaches the ladder's current
// stage, if it sends one: the question asked again after a snooze says so.
func (t *turn) ladderPrompt() string {
	switch t.st.Ladder {
	case ladderPrompted:
		if !t.st.SnoozedUntil.IsZero() {
			return "SnoozeOver"
		}
		return "DuePrompt"
	case ladderReminded:
		return "Reminder"
	case ladderFinal:
		return "FinalReminder"
	}
	return ""
}

// timer handles State.Timer: the end of a pause, or the next rung of the
// missed check-in ladder (see the stages above). One timer moves the
// ladder at most one rung, so a restart never bursts.
func (t *turn) timer() {
	if h := t.st.Hidden; h != nil && !h.Timer.IsZero() && !t.now.Before(h.Timer) {
		t.hiddenTimer(h)
	}
	st := &t.st
	if st.Timer.IsZero() || t.now.Before(st.Timer) {
		return // stale: the timer moved since this event was scheduled
	}
	if st.Status == StatusPaused || (st.Shown == StatusPaused && !t.now.Before(st.PausedUntil)) {
		// A pause ends — a covert one visibly too, exactly like a real one.
		st.Status, st.Shown, st.PausedUntil = StatusActive, "", time.Time{}
		t.schedule()
		t.audit("pause.ended")
		t.reply("PauseOver", map[string]any{"When": t.when(st.NextDue)})
		return
	}
	if st.Status != StatusActive {
		st.Timer = time.Time{}
		return
	}
	// A covert stop, pause or delete keeps monitoring, silently: the phone
	// must not receive reminders it would not get had the request been real.
	quiet := st.Shown != ""
	late := t.now.Sub(st.Timer) > lateAfter
	switch {
	case st.PromptPending:
		// Not confirmed within the stage's wait: send it again, and keep
		// waiting for a delivery. A registration that turned covert
		// meanwhile, or whose channel is known not to deliver, has nothing
		// to wait for.
		if quiet || st.Unreachable {
			t.promptSettled()
			return
		}
		if t.in.PromptQueued {
			// Still queued behind the platform's send rate (a crowded
			// hour at 1M registrants): a second copy would double the
			// backlog, and the citizen would get the question twice.
			break
		}
		t.prompt(t.ladderPrompt(), nil)
	case st.Ladder != ladderWaiting && late:
		// The gap (downtime, clock step) does not count: wait again.
		t.audit("ladder.late")
	default:
		st.Ladder++
		t.audit("ladder." + strconv.Itoa(st.Ladder))
		if st.Ladder >= ladderMissed {
			t.missed()
			break
		}
		if !quiet {
			t.prompt(t.ladderPrompt(), nil)
		}
		if quiet || st.Unreachable || (st.Ladder == ladderPrompted && !st.SnoozedUntil.IsZero()) {
			// Nothing will be confirmed: silent, or proven undeliverable.
			// Or the question asked again after a snooze, whose ladder
			// runs from now: the citizen's snooze proved the first prompt
			// arrived, and waiting for this one's delivery could postpone
			// the alert past the cap.
			t.promptSettled()
			return
		}
		st.PromptPending = true
	}
	t.arm(t.now.Add(t.e.Policy.wait(st.Ladder)))
}

// missed records the escalation of the ladder's current stage: the
// first checkin.missed of a due is escalation 1 (high), every later one the
// next number (critical).
func (t *turn) missed() {
	st := &t.st
	n := st.Ladder - ladderMissed + 1
	details := map[string]any{"due_at": st.NextDue, "escalation": n}
	if !st.PromptedAt.IsZero() && st.Shown == "" {
		// When the prompt reached the platform (or was proven never to);
		// a silent ladder sent none.
		details["prompted_at"] = st.PromptedAt
	}
	sev := SeverityHigh
	if n > 1 || st.DoNotContact {
		sev = SeverityCritical
	}
	t.escalate(EventCheckinMissed, sev, CaseOpen, details)
	st.Overdue = true
}

// arm sets the ladder timer, never past the end of a covert pause (which
// must end visibly, like a real one).
func (t *turn) arm(at time.Time) {
	t.st.Timer = at
	if t.st.Shown == StatusPaused && t.st.PausedUntil.Before(t.st.Timer) {
		t.st.Timer = t.st.PausedUntil
	}
}

// promptSettled starts the current stage's wait now: its prompt was
// delivered, or can never be (KindUnreachable), or nothing was sent
// (silent monitoring).
func (t *turn) promptSettled() {
	st := &t.st
	st.PromptPending = false
	if st.Ladder == ladderPrompted && st.PromptedAt.IsZero() {
		st.PromptedAt = t.now
	}
	t.arm(t.now.Add(t.e.Policy.wait(st.Ladder)))
}

// promptDelivered handles KindPromptDelivered: the platform accepted a
// prompt. It moves the ladder only while a ladder prompt awaits delivery;
// the delivery of a reminder already confirmed, of a roll call, or of a
// prompt overtaken by a check-in changes nothing.
func (t *turn) promptDelivered() {
	st := &t.st
	if !st.PromptPending || st.Ladder == ladderWaiting || st.Status != StatusActive {
		return
	}
	t.promptSettled()
}

// promptUndeliverable handles KindUnreachable for the ladder: a prompt
// awaiting delivery never will be delivered, so its wait runs from now.
func (t *turn) promptUndeliverable() {
	if t.st.PromptPending && t.st.Ladder != ladderWaiting && t.st.Status == StatusActive {
		t.promptSettled()
	}
}

// hiddenTimer runs the missed check-in ladder of a covertly deleted
// registration: escalations only, never a message to the phone, so it runs
// from when its due timer fires, one rung per timer, like a quiet ladder.
func (t *turn) hiddenTimer(h *Hidden) {
	if h.Ladder != ladderWaiting && t.now.Sub(h.Timer) > lateAfter {
		h.Timer = t.now.Add(t.e.Policy.wait(h.Ladder)) // the gap does not count
		return
	}
	h.Ladder++
	if h.Ladder >= ladderMissed {
		h.Missed = true
		v := makeView(t.st.Key, h.Profile, h.Channel, h.Address, h.Handle, h.Lang, h.LastCheckin)
		t.res.Escalations = append(t.res.Escalations, Escalation{
			Type: EventCheckinMissed, Severity: SeverityCritical, DoNotContact: true,
			EmbassyID: t.e.Directory.EmbassyFor(v.Nationality, v.Country), Case: CaseOpen, Registrant: v,
			Details: map[string]any{"due_at": h.NextDue, "escalation": h.Ladder - ladderMissed + 1, "covert_action": "delete"},
		})
		t.audit("ladder." + strconv.Itoa(h.Ladder))
	}
	h.Timer = t.now.Add(t.e.Policy.wait(h.Ladder))
}

// snoozeEnd is the latest moment a snooze of the current due may end:
// SnoozeCap after the due prompt was delivered (PromptedAt; when its
// delivery is not yet reported, the citizen's answer now proves it). With
// a snooze of a minute or more it is a whole minute, rounded down, so the
// time the citizen is told reads "09:30", never "09:30:17".
func (t *turn) snoozeEnd() time.Time {
	start := t.st.PromptedAt
	if start.IsZero() {
		start = t.now
	}
	end := start.Add(t.e.Policy.SnoozeCap)
	if t.e.Policy.Snooze >= time.Minute {
		end = end.Truncate(time.Minute)
	}
	return end
}

// snoozable reports whether the due the phone is being asked about can
// still be postponed: the phone shows an active registration (what it is
// shown, never the covert truth, so a covertly stopped phone is answered
// like a stopped one), a prompt of this due went out or a snooze is
// running, no escalation was sent, and the cap is not reached.
func (t *turn) snoozable() bool {
	st := &t.st
	if t.visible() != StatusActive || st.Status != StatusActive {
		return false
	}
	inLadder := st.Ladder >= ladderPrompted && st.Ladder < ladderMissed
	snoozed := st.Ladder == ladderWaiting && !st.SnoozedUntil.IsZero()
	return (inLadder || snoozed) && !st.Overdue && t.now.Before(t.snoozeEnd())
}

// snooze postpones the question of a due check-in by Policy.Snooze, at most
// to snoozeEnd, and says when it will be asked again. It is not a check-in:
// the ladder starts again from the end of the snooze, so a citizen who
// never answers is still escalated, at most SnoozeCap later. Past the cap,
// or with nothing to postpone, it says so and asks nothing new. Like every
// answer, what it shows depends on the state and the time only.
func (t *turn) snooze() {
	st := &t.st
	if !t.snoozable() {
		if t.visible() == StatusActive && st.Status == StatusActive && st.Ladder >= ladderPrompted {
			t.reply("SnoozeLimit", nil)
			t.ask(StepDue)
			return
		}
		t.reply("SnoozeNothing", nil)
		t.reprompt()
		return
	}
	end := t.snoozeEnd()
	if st.PromptedAt.IsZero() {
		st.PromptedAt = t.now
	}
	until := t.now.Add(t.e.Policy.Snooze)
	if t.e.Policy.Snooze >= time.Minute && !until.Equal(until.Truncate(time.Minute)) {
		until = until.Truncate(time.Minute).Add(time.Minute)
	}
	until = minTime(until, end)
	st.Ladder, st.PromptPending, st.SnoozedUntil = ladderWaiting, false, until
	t.arm(until)
	t.audit("checkin.snoozed")
	t.reply("Snoozed", map[string]any{"When": t.when(until)})
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
