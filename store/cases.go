package store

import (
	"github.com/checkinbot/checkinbot/escalation"
)

// The embassy API's storage contract (DESIGN §5): listing and working an
// embassy's cases and pulling its events for reconciliation. Every query
// is scoped to one embassy: an engine never returns another embassy's
// case or event, and reports it as not found.

// CaseQuery selects one page of an embassy's cases, newest first.
type CaseQuery struct {
	Embassy string
	// Status, Type and Severity filter when set.
	Status   escalation.CaseStatus
	Type     escalation.Type
	Severity escalation.Severity
	// Before is the cursor: only cases opened before this one (its
	// number, from CasePage.Next); 0 starts at the newest.
	Before uint64
	// Limit is the page size (at least 1).
	Limit int
}

// CasePage is one page of cases; Next is the cursor of the following page
// (0: this was the last).
type CasePage struct {
	Cases []escalation.Case
	Next  uint64
}

// CaseChange is one change an embassy officer makes to a case.
type CaseChange struct {
	Embassy string
	CaseID  string
	Action  escalation.CaseAction
	By      string // the API token's label, for the audit trail
	Outcome escalation.Outcome
	Text    string
}

// EventQuery selects an embassy's events recorded after a cursor, oldest
// first (the order they were recorded), for reconciliation.
type EventQuery struct {
	Embassy string
	// After is a number of the embassy's own event sequence (from
	// EventPage.Next); 0 starts at the oldest event kept. It is per
	// embassy, so it says nothing of other embassies' volume.
	After   uint64
	Unacked bool // leave out events the embassy acknowledged
	Limit   int
}

// EventPage is one page of events, with each event's cursor.
type EventPage struct {
	Events []escalation.Event
	// Next is the cursor to ask with next: the embassy sequence of the
	// last event returned (equal to the query's After when none was).
	Next uint64
	// More: the limit was reached before the end.
	More bool
}
