package bot

import (
	"context"
	"time"
)

// maxSleep bounds one sleep of the scheduler, so a clock jump or a missed
// wake-up costs at most this much delay.
const maxSleep = time.Minute

// minSleep keeps the loop from spinning if a due entry cannot be cleared.
const minSleep = 50 * time.Millisecond

// RunScheduler feeds timer events through the runner: one loop that sleeps
// until the earliest armed timer or until a commit may have changed the
// due index. It returns when ctx ends.
func (r *Runner) RunScheduler(ctx context.Context) error {
	for {
		sleep := maxSleep
		if _, err := r.FireDue(ctx); err != nil {
			// A timer that cannot be processed stays due; retry calmly.
			r.Log.Error("timer failed", "err", err)
			sleep = 5 * time.Second
		}
		if at, ok, err := r.Store.NextTimer(); err == nil && ok {
			sleep = min(max(at.Sub(r.Now()), minSleep), sleep)
		}
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
