package dialogs

import (
	"strconv"
	"strings"
	"time"
)

// Missed check-in ladder stages (DESIGN §2 flow 6). Stages at or above
// ladderMissed count escalations: ladderMissed+n is the (n+1)th.
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

// ladderStage is the stage reached elapsed after the due time, and when,
// measured from the due time, the next stage begins.
func (p Policy) ladderStage(elapsed time.Duration) (int, time.Duration) {
	switch {
	case elapsed < p.RemindAfter:
		return ladderPrompted, p.RemindAfter
	case elapsed < p.FinalReminderAfter:
		return ladderReminded, p.FinalReminderAfter
	case elapsed < p.EscalateAfter:
		return ladderFinal, p.EscalateAfter
	}
	n := int((elapsed - p.EscalateAfter) / p.ReescalateEvery)
	return ladderMissed + n, p.EscalateAfter + time.Duration(n+1)*p.ReescalateEvery
}

// timer handles State.Timer: the end of a pause, or the next rung of the
// missed check-in ladder. After downtime it jumps straight to the stage the
// clock says, sending at most one message, so a restart never bursts.
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
	target, next := t.e.Policy.ladderStage(t.now.Sub(st.NextDue))
	if target > st.Ladder {
		if !quiet {
			switch {
			case st.Ladder == ladderWaiting:
				t.prompt("DuePrompt", nil)
			case target == ladderReminded:
				t.prompt("Reminder", nil)
			case target == ladderFinal:
				t.prompt("FinalReminder", nil)
			}
		}
		if target >= ladderMissed {
			details := map[string]any{"due_at": st.NextDue, "escalation": target - ladderMissed + 1}
			sev := SeverityHigh
			if st.Ladder >= ladderMissed || st.DoNotContact {
				sev = SeverityCritical
			}
			t.escalate(EventCheckinMissed, sev, CaseOpen, details)
			st.Overdue = true
		}
		t.audit("ladder." + strconv.Itoa(target))
		st.Ladder = target
	}
	st.Timer = st.NextDue.Add(next)
	if st.Shown == StatusPaused && st.PausedUntil.Before(st.Timer) {
		st.Timer = st.PausedUntil
	}
}

// hiddenTimer runs the missed check-in ladder of a covertly deleted
// registration: escalations only, never a message to the phone.
func (t *turn) hiddenTimer(h *Hidden) {
	target, next := t.e.Policy.ladderStage(t.now.Sub(h.NextDue))
	if target > h.Ladder && target >= ladderMissed {
		v := makeView(t.st.Key, h.Profile, h.Channel, h.Address, h.Handle, h.Lang, h.LastCheckin)
		t.res.Escalations = append(t.res.Escalations, Escalation{
			Type: EventCheckinMissed, Severity: SeverityCritical, DoNotContact: true,
			EmbassyID: t.e.Directory.EmbassyFor(v.Nationality, v.Country), Case: CaseOpen, Registrant: v,
			Details: map[string]any{"due_at": h.NextDue, "escalation": target - ladderMissed + 1, "covert_action": "delete"},
		})
		t.audit("ladder." + strconv.Itoa(target))
	}
	h.Ladder = max(h.Ladder, target)
	h.Timer = h.NextDue.Add(next)
}
