package bot

import (
	"context"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
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

// Pass runs one pass of the scheduler loop and returns how long the loop
// would sleep after it.
func (s *SchedulerStepper) Pass(ctx context.Context) time.Duration {
	return s.r.schedulerPass(ctx, s.sc)
}

// SetAfterInput lets tests see every input the runner committed.
func SetAfterInput(r *Runner, f func(dialogs.Input)) { r.afterInput = f }

// SetVolatile makes replies bypass the send queue: the benchmarks'
// baseline of what the queue costs.
func SetVolatile(r *Runner, on bool) { r.volatile = on }

// SetMaxRetentionActions lowers the per-sweep cap of retention actions
// until the test ends.
func SetMaxRetentionActions(tb interface{ Cleanup(func()) }, n int) {
	old := maxRetentionActions
	maxRetentionActions = n
	tb.Cleanup(func() { maxRetentionActions = old })
}

// SetFireInFlight sets how many timers FireDue runs at once (0: the
// default).
func SetFireInFlight(r *Runner, n int) { r.fireInFlight = n }

// SetFireBatch overrides FireBatch for r.
func SetFireBatch(r *Runner, n int) { r.fireBatch = n }
