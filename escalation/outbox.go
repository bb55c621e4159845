package escalation

import (
	"fmt"
	"time"
)

// Delivery bookkeeping (DESIGN §4). Every outbox event is routed once to
// the endpoints that must receive it; each (endpoint, event) pair is a
// pending Delivery until it is delivered or given up, then an archived one
// kept for audit until pruned. These types are shared by every storage
// engine, which keeps them, and the deliverer, which decides them.

// Delivery is one event owed to one endpoint. Its JSON form is stored in
// data files: never rename a field.
type Delivery struct {
	Endpoint     string    `json:"endpoint"`
	Seq          uint64    `json:"seq"` // outbox sequence: the order of recording
	EventID      string    `json:"event_id"`
	Type         Type      `json:"type"`
	CaseID       string    `json:"case_id,omitempty"`
	Critical     bool      `json:"critical"`
	Attempts     int       `json:"attempts"`
	NextAt       time.Time `json:"next_at"`
	FirstFailure time.Time `json:"first_failure,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	DoneAt       time.Time `json:"done_at,omitzero"`
	GaveUp       bool      `json:"gave_up,omitempty"`
	// SecondaryQueued: the embassy's secondary URL has its own row for this
	// event already.
	SecondaryQueued bool `json:"secondary_queued,omitempty"`
}

// Target is an endpoint an event must reach, as the deliverer's routing
// decides it.
type Target struct {
	Endpoint string
	Critical bool // never given up on
}

// DueDelivery is a delivery to attempt now, with the exact body to send.
type DueDelivery struct {
	Delivery
	Body []byte
}

// Chain is a run of one endpoint's deliveries that may go out one after the
// other, each as soon as the one before it is delivered: the due events of
// one case in recording order from the case's head, or a single event
// without a case. Handing out whole runs is what lets a backlog drain in
// one pass instead of one event per case per poll.
type Chain struct {
	Endpoint string
	Items    []DueDelivery
}

// DueBatch is what a due-chains scan found.
type DueBatch struct {
	// Chains in recording order of their heads, grouped by endpoint.
	Chains []Chain
	// Next is when the earliest row found not yet due falls due (zero if
	// none).
	Next time.Time
	// More: the limit was reached before the end; ask again at once.
	More bool
	// Endpoints lists every endpoint that has pending rows, skipped or
	// not, in key order, so the caller can tell which wait for an endpoint
	// it does not have.
	Endpoints []string
}

// AttemptOutcome is what became of one pending delivery in one round: the
// deliverer decides it, the store records it. The zero value is no
// outcome, and a store refuses to record it.
type AttemptOutcome int

const (
	// AttemptNone is the zero value: nothing decided. Never recorded.
	AttemptNone AttemptOutcome = iota
	// AttemptDelivered: sent and accepted (2xx). The row is archived.
	AttemptDelivered
	// AttemptFailed: sent and not accepted; tried again at Attempt.NextAt
	// (and, if Attempt.Secondary is set, queued for the secondary URL).
	AttemptFailed
	// AttemptGaveUp: sent, not accepted, and failing too long for an event
	// that is not critical. The row is archived as given up.
	AttemptGaveUp
	// AttemptHeld: not sent (the endpoint is backing off, or the event
	// waits behind its case); only Attempt.Secondary applies.
	AttemptHeld
	// AttemptAbandoned: not sent, and given up: a non-critical event that
	// waited behind a failing endpoint too long. Archived as given up.
	AttemptAbandoned
)

var outcomeNames = [...]string{"none", "delivered", "failed", "gave up", "held", "abandoned"}

// String names the outcome, for test failures.
func (o AttemptOutcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return fmt.Sprintf("AttemptOutcome(%d)", int(o))
	}
	return outcomeNames[o]
}

// Sent reports whether a request went out (it counts in Delivery.Attempts).
func (o AttemptOutcome) Sent() bool {
	return o == AttemptDelivered || o == AttemptFailed || o == AttemptGaveUp
}

// Done reports whether the row leaves the pending set (archived).
func (o AttemptOutcome) Done() bool {
	return o == AttemptDelivered || o == AttemptGaveUp || o == AttemptAbandoned
}

// Attempt is the outcome of one delivery in one round, to record.
type Attempt struct {
	Endpoint string
	Seq      uint64
	Outcome  AttemptOutcome
	// Err is the failure as stored in Delivery.LastError (no URL: it may
	// carry a token). Stored, never decided on.
	Err string
	// NextAt is when to try again (AttemptFailed).
	NextAt time.Time
	// Secondary, if set, is the endpoint to queue this event for as well
	// (AttemptFailed, AttemptHeld).
	Secondary string
}
