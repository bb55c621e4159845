package bot

// SetBeforeMiss sets the hook FireRollCalls runs before each member's
// turn at a deadline (nil to clear).
func SetBeforeMiss(f func(key string)) { beforeMiss = f }
