package store

import "time"

// Service gaps (DESIGN §4 service.resumed): a stretch in which no timer
// ran as scheduled, reported once to every embassy.

// Kinds of gap, as in the event's details.kind.
const (
	// GapDowntime: the service was not running from From to To.
	GapDowntime = "downtime"
	// GapClockStep: the wall clock jumped from From to To (To is earlier
	// for a backward step) while the monotonic clock did not.
	GapClockStep = "clock_step"
)

// Gap is a stretch of wall-clock time in which timers did not run as
// scheduled.
type Gap struct {
	Kind string
	From time.Time
	To   time.Time
}

// Seconds is the gap's length in whole seconds, negative for a backward
// clock step.
func (g Gap) Seconds() int64 { return int64(g.To.Sub(g.From) / time.Second) }
