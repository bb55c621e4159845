package store

import "time"

// Stats is what an operator's dashboard shows of the stored data: counts
// and ages only, never a person, a chat or an event's content. Engines
// compute it in one read transaction (see boltstore.Store.Stats).
type Stats struct {
	// Registrants counts registrants by their real status ("active",
	// "paused", "stopped"; "new" for registrations in progress).
	Registrants map[string]int
	// Overdue counts active registrants a checkin.missed went out for and
	// who have not checked in since.
	Overdue int
	// LastCheckin is the latest check-in of any registrant (zero: none):
	// a service nobody checks in with for long is broken somewhere.
	LastCheckin time.Time
	// Endpoints is the delivery backlog of each endpoint id that has one.
	Endpoints map[string]EndpointBacklog
	// Unrouted counts recorded events not yet given to any endpoint, and
	// UnroutedOldest is when the oldest of them was recorded.
	Unrouted       int
	UnroutedOldest time.Time
	// OldestCritical is when the oldest critical event that some endpoint
	// still owes was recorded (zero: none owed).
	OldestCritical time.Time
	// AuditHead is the audit trail's end, exported so the head is kept
	// outside the data file (a rollback to an older copy shows).
	AuditHead AuditHead
}

// EndpointBacklog is one endpoint's undelivered rows.
type EndpointBacklog struct {
	Depth  int       // pending rows
	Oldest time.Time // when the oldest of them was recorded
}
