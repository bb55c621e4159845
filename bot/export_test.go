package bot

import "github.com/checkinbot/checkinbot/dialogs"

// SetAfterInput lets tests see every input the runner committed.
func SetAfterInput(r *Runner, f func(dialogs.Input)) { r.afterInput = f }

// SetVolatile makes replies bypass the send queue: the benchmarks'
// baseline of what the queue costs.
func SetVolatile(r *Runner, on bool) { r.volatile = on }
