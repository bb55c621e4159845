package store

import "github.com/checkinbot/checkinbot/escalation"

// The delivery bookkeeping types are the escalation domain's (shared with
// the deliverer and any other storage engine); these aliases keep their
// store names working for callers.
type (
	// Delivery is one event owed to one endpoint.
	Delivery = escalation.Delivery
	// Target is an endpoint an event must reach.
	Target = escalation.Target
	// DueDelivery is a delivery to attempt now, with the exact body to send.
	DueDelivery = escalation.DueDelivery
	// Attempt is the outcome of one delivery in one round, to record.
	Attempt = escalation.Attempt
	// Chain is a run of one endpoint's deliveries that may go out one after
	// the other (see escalation.Chain).
	Chain = escalation.Chain
	// DueBatch is what DueChains found.
	DueBatch = escalation.DueBatch
)
