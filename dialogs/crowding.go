// Crowding (issue 15 item 5): a platform sends only so many messages a
// second (Telegram about 30 for a bot), and most people pick 08:00 or
// 09:00, so a prompt chosen for a crowded time may leave long after it. The
// time question therefore suggests the freest times near the usual
// choices, and a time chosen where prompts already exceed what the channel
// can send says, in one line, how late its prompts may come and offers the
// nearest free time as a button — never refusing the choice.
//
// The engine stays pure: how many prompts fall in each slot of the day and
// how fast the channel sends come in Input.Crowding, plain data the runner
// reads from the store's counters (at most a minute old). Nothing here
// touches the duress rule (§3), and the missed check-in ladder still runs
// from the delivery of each prompt, not from the chosen time (schedule.go),
// so a late prompt never shortens the time a citizen has to answer.

package dialogs

import (
	"math"
	"strings"
	"time"
)

// SlotLength is the width of one crowding slot; SlotsPerDay slots cover a
// UTC day. Slot i starts i·SlotLength after 00:00 UTC.
const (
	SlotLength  = 15 * time.Minute
	SlotsPerDay = int(24 * time.Hour / SlotLength)
)

// SlotOf is the UTC slot of the day that t falls in.
func SlotOf(t time.Time) int {
	t = t.UTC()
	return (t.Hour()*60 + t.Minute()) / int(SlotLength/time.Minute)
}

// Crowding is what the engine knows about one channel's send capacity:
// how many check-in prompts are already due in each UTC slot of the day,
// and how many messages a second the channel sustains. The runner hands
// one shared value to every input of that channel; the engine only reads
// it.
type Crowding struct {
	// Rate is the channel's sustainable send rate in messages a second;
	// zero, negative or infinite means no platform limit (no crowding).
	Rate float64
	// Load counts registrants whose prompts fall in each UTC slot.
	Load [SlotsPerDay]int
}

// limited reports whether c describes a channel with a finite rate.
func (c *Crowding) limited() bool {
	return c != nil && c.Rate > 0 && !math.IsInf(c.Rate, 1) && !math.IsNaN(c.Rate)
}

// capacity is how many prompts the channel sends in one slot.
func (c *Crowding) capacity() float64 { return c.Rate * SlotLength.Seconds() }

// Lateness is how late a prompt due at the start of slot may leave, at
// worst: the prompts still queued from earlier slots plus those of this
// slot, sent at Rate (a prompt joins the queue behind every prompt of its
// slot, since people choose round times). It is zero while that queue fits
// in one slot, so light loads never move anyone. The queue carried over
// from earlier slots is found by running the day twice around (the
// backlog of 23:45 spills into 00:00).
func (c *Crowding) Lateness(slot int) time.Duration {
	if slot < 0 || slot >= SlotsPerDay {
		return 0
	}
	return c.lateness()[slot]
}

// lateness is Lateness of every slot, in two passes over the day.
func (c *Crowding) lateness() *[SlotsPerDay]time.Duration {
	var out [SlotsPerDay]time.Duration
	if !c.limited() {
		return &out
	}
	capacity := c.capacity()
	backlog := 0.0
	for _, n := range c.Load { // a day to settle what spills past midnight
		backlog = math.Max(0, backlog+float64(n)-capacity)
	}
	for s, n := range c.Load {
		if queue := backlog + float64(n) + 1; queue > capacity { // +1: the citizen asking
			out[s] = time.Duration(queue / c.Rate * float64(time.Second))
		}
		backlog = math.Max(0, backlog+float64(n)-capacity)
	}
	return &out
}

// usualTimes are the times the question has always offered; crowding
// moves each to the freest slot within usualReach of it.
var usualTimes = []string{"08:00", "12:00", "20:00"}

// usualReach is how far a suggestion may move from a usual time.
const usualReach = time.Hour

// crowdButton is the data prefix of the button that moves a crowded time
// to a free one (retime); it is answered whatever question is open.
const crowdButton = "retime:"

// timeOptions are the choices of the time question: the usual times, each
// moved to the freest slot near it when the citizen's channel is crowded
// there. Without crowding data they are exactly the usual times.
func (t *turn) timeOptions() []option {
	var opts []option
	seen := map[string]bool{}
	late := t.in.Crowding.lateness()
	for _, u := range usualTimes {
		hhmm := t.freestNear(u, late)
		if seen[hhmm] {
			hhmm = u
		}
		if seen[hhmm] {
			continue
		}
		seen[hhmm] = true
		opts = append(opts, option{label: hhmm, data: hhmm})
	}
	return opts
}

// freestNear is the local time within usualReach of hhmm, in whole slots,
// whose prompts would leave the soonest; ties go to the nearer, then the
// earlier, so hhmm itself wins whenever it is not late.
func (t *turn) freestNear(hhmm string, late *[SlotsPerDay]time.Duration) string {
	if !t.in.Crowding.limited() {
		return hhmm
	}
	base, ok := t.localClock(hhmm)
	if !ok {
		return hhmm
	}
	best, bestLate := base, late[SlotOf(base)]
	steps := int(usualReach / SlotLength)
	for d := 1; d <= steps; d++ {
		for _, sign := range []int{-1, 1} {
			cand := base.Add(time.Duration(sign*d) * SlotLength)
			if l := late[SlotOf(cand)]; l < bestLate {
				best, bestLate = cand, l
			}
		}
	}
	return best.In(t.zone()).Format("15:04")
}

// localClock is hhmm in the citizen's zone on today's local date, as an
// instant: it maps a chosen local time to the UTC slot its prompts fall in
// now (the store counts them the same way, from the next due time).
func (t *turn) localClock(hhmm string) (time.Time, bool) {
	v, ok := parseClock(hhmm)
	if !ok {
		return time.Time{}, false
	}
	h := int(v[0]-'0')*10 + int(v[1]-'0')
	m := int(v[3]-'0')*10 + int(v[4]-'0')
	loc := t.zone()
	local := t.now.In(loc)
	return time.Date(local.Year(), local.Month(), local.Day(), h, m, 0, 0, loc), true
}

// warnCrowded adds, after a time was chosen, one line saying how late its
// prompts may come when the citizen's channel is over capacity then, with
// a button for the nearest free time. Nothing is refused: the choice is
// already saved.
func (t *turn) warnCrowded(hhmm string) {
	c := t.in.Crowding
	if !c.limited() {
		return
	}
	at, ok := t.localClock(hhmm)
	if !ok {
		return
	}
	lateness := c.lateness()
	late := lateness[SlotOf(at)]
	if late <= 0 {
		return
	}
	free, ok := nearestFree(at, lateness)
	if !ok {
		return // nowhere is free: a button could only promise what it cannot keep
	}
	// Rounded up to 5 minutes: a promise, not a measurement.
	minutes := int(math.Ceil(late.Minutes()/5)) * 5
	label := free.In(t.zone()).Format("15:04")
	t.res.Replies = append(t.res.Replies, Reply{
		Text:    t.text("TimeCrowded", map[string]any{"Time": hhmm, "Minutes": minutes, "Free": label}),
		Buttons: []Button{{Label: t.text("ButtonUseTime", map[string]any{"Time": label}), Data: crowdButton + label}},
	})
}

// nearestFree is the slot-aligned local time nearest to at (earlier first
// on a tie) whose prompts would not be late, searching the whole day.
func nearestFree(at time.Time, late *[SlotsPerDay]time.Duration) (time.Time, bool) {
	start := at.Truncate(SlotLength) // quarter hours: a slot boundary in every real zone
	for d := 0; d <= SlotsPerDay/2; d++ {
		for _, sign := range []int{-1, 1} {
			cand := start.Add(time.Duration(sign*d) * SlotLength)
			if late[SlotOf(cand)] == 0 {
				return cand, true
			}
		}
	}
	return time.Time{}, false
}

// retime answers the button warnCrowded offered, whatever question is
// open: the check-in time becomes the free one. A registered citizen's
// schedule changes as from the settings (the same reply and event); during
// registration the time is simply stored and the open question asked
// again. A stale or forged button is treated as unrecognised.
func (t *turn) retime(data string) {
	hhmm, ok := parseClock(strings.TrimPrefix(data, crowdButton))
	if !ok || (!t.st.Registered() && t.st.ConsentAt.IsZero()) {
		t.hint()
		return
	}
	open := t.st.Step
	t.st.CheckinTime = hhmm
	if !t.st.Registered() {
		t.reply("TimeMoved", map[string]any{"Time": hhmm})
		t.reprompt()
		return
	}
	t.rescheduled("checkin_time")
	if open != StepNone && open != StepSettingsTime {
		t.ask(open) // the question the citizen was in stays open
	}
}
