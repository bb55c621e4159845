package bot

import (
	"context"
	"time"

	"github.com/checkinbot/checkinbot/store"
)

// maxSleep bounds one sleep of the scheduler, so a clock jump or a missed
// wake-up costs at most this much delay. It is also the cadence of the
// last-alive mark.
const maxSleep = time.Minute

// minSleep keeps the loop from spinning if a due entry cannot be cleared.
const minSleep = 50 * time.Millisecond

// DowntimeThreshold: a last-alive mark older than this when the scheduler
// starts means the service was down, and every embassy is sent one
// service.resumed stating the gap. The mark is refreshed every maxSleep,
// so a plain restart stays well below it.
const DowntimeThreshold = 5 * time.Minute

// ClockStepThreshold: when the wall clock and the monotonic clock disagree
// by more than this between two passes of the scheduler, the wall clock
// stepped; the step is logged and every embassy is sent one
// service.resumed. NTP slews far more gently than this.
const ClockStepThreshold = time.Minute

// aliveEvery is how often the last-alive mark is written.
const aliveEvery = maxSleep

// RunScheduler feeds timer events through the runner: one loop that sleeps
// until the earliest armed timer or until a commit may have changed the
// due index. It returns when ctx ends.
//
// On start it compares the last-alive mark in the store with now: after
// downtime (or with a wall clock now behind the mark) every embassy gets
// one service.resumed stating the gap, before any timer fires. While it
// runs, it compares the wall clock's progress with the monotonic clock's
// on every pass and reports a step the same way. The timers that fall due
// in such a gap fire late; the engine sends the prompts of citizens not
// yet prompted and restarts the wait of those already prompted, so the
// gap itself escalates nobody (dialogs/schedule.go).
//
// The monotonic clock is the one carried by r.Now's times; a clock that
// carries none (a test's fake) never reports a step.
func (r *Runner) RunScheduler(ctx context.Context) error {
	start := r.Now()
	return r.runScheduler(ctx, func() time.Duration { return r.Now().Sub(start) })
}

// runScheduler is RunScheduler with the monotonic clock given: mono
// returns the time elapsed since some fixed origin.
func (r *Runner) runScheduler(ctx context.Context, mono func() time.Duration) error {
	sc := r.startScheduler(mono)
	if err := r.ResumeRollCalls(ctx); err != nil {
		r.Log.Error("roll call prompts not resumed", "err", err)
	}
	for {
		sleep := r.schedulerPass(ctx, sc)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// schedulerClock is what the scheduler remembers between passes.
type schedulerClock struct {
	mono   func() time.Duration
	wall   time.Time     // r.Now at the previous pass
	at     time.Duration // mono at the previous pass
	marked time.Time     // when the last-alive mark was last written
}

// startScheduler checks the last-alive mark against now and reports the
// gap if there is one.
func (r *Runner) startScheduler(mono func() time.Duration) *schedulerClock {
	now := r.Now()
	sc := &schedulerClock{mono: mono, wall: now, at: mono(), marked: now}
	last, found, err := r.Store.LastAlive()
	if err != nil {
		r.Log.Error("last-alive mark unreadable", "err", err)
		return sc
	}
	switch {
	case found && now.Sub(last) > DowntimeThreshold:
		r.recordGap(store.Gap{Kind: store.GapDowntime, From: last, To: now})
	case found && last.Sub(now) > ClockStepThreshold:
		// Behind a mark written before the restart: the clock went back.
		r.recordGap(store.Gap{Kind: store.GapClockStep, From: last, To: now})
	default:
		r.markAlive(now)
	}
	return sc
}

// schedulerPass looks for a clock step, refreshes the last-alive mark,
// fires due timers and returns how long to sleep.
func (r *Runner) schedulerPass(ctx context.Context, sc *schedulerClock) time.Duration {
	now, at := r.Now(), sc.mono()
	expected := sc.wall.Add(at - sc.at)
	if d := now.Sub(expected); d > ClockStepThreshold || d < -ClockStepThreshold {
		r.recordGap(store.Gap{Kind: store.GapClockStep, From: expected, To: now})
		sc.marked = now
	} else if d := now.Sub(sc.marked); d >= aliveEvery || d < 0 {
		r.markAlive(now)
		sc.marked = now
	}
	sc.wall, sc.at = now, at

	sleep := maxSleep
	if _, err := r.FireRollCalls(ctx); err != nil {
		r.Log.Error("roll call deadline failed", "err", err)
		sleep = 5 * time.Second
	}
	fired, err := r.FireDue(ctx)
	if err != nil {
		// A timer that cannot be processed stays due; retry calmly.
		r.Log.Error("timer failed", "err", err)
		sleep = 5 * time.Second
	} else if fired >= r.batchOfTimers() {
		return 0 // a whole batch: more may be due, take the next earliest at once
	}
	if next, ok, err := r.Store.NextTimer(); err == nil && ok {
		sleep = min(max(next.Sub(r.Now()), minSleep), sleep)
	}
	return sleep
}

// recordGap logs a gap and records one service.resumed per embassy.
func (r *Runner) recordGap(g store.Gap) {
	r.Log.Warn("service resumed after a gap: timers in it fire now, escalating nobody who was not prompted",
		"kind", g.Kind, "from", g.From, "to", g.To, "seconds", g.Seconds())
	ids := make([]string, 0, len(r.Engine.Directory.Embassies))
	for _, e := range r.Engine.Directory.Embassies {
		ids = append(ids, e.ID)
	}
	events, err := r.Store.RecordGap(g, ids, r.Now())
	if err != nil {
		r.Log.Error("service.resumed not recorded", "kind", g.Kind, "err", err)
		return
	}
	if r.OnEvents != nil {
		r.OnEvents(events)
	}
}

func (r *Runner) markAlive(now time.Time) {
	if err := r.Store.MarkAlive(now); err != nil {
		r.Log.Error("last-alive mark not written", "err", err)
	}
}
