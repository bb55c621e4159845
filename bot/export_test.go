package bot

import (
	"context"
	"time"
)

// SchedulerStepper drives the scheduler one pass at a time, on the
// runner's clock and a monotonic clock of the test's making, so clock steps
// and restarts can be staged exactly.
type SchedulerStepper struct {
	r  *Runner
	sc *schedulerClock
}

// StartScheduler does what RunScheduler does on start (the last-alive
// check), with mono as the monotonic clock.
func StartScheduler(r *Runner, mono func() time.Duration) *SchedulerStepper {
	return &SchedulerStepper{r: r, sc: r.startScheduler(mono)}
}

// Pass runs one pass of the scheduler loop.
func (s *SchedulerStepper) Pass(ctx context.Context) { s.r.schedulerPass(ctx, s.sc) }
