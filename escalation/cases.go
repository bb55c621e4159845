package escalation

import (
	"fmt"
	"time"
)

// How an embassy works a case (DESIGN §5): it acknowledges it (open →
// acked), adds notes at any time, and resolves it with an outcome (open or
// acked → resolved). Resolved is final: the next escalation about the
// registrant opens a new case. These rules live here, in the domain, so
// every storage engine applies the same ones inside its transaction.

// Outcome says how a resolved case ended. The values are stored in data
// files and sent to embassies: never rename one, only add.
type Outcome string

const (
	// OutcomeSafe: the citizen was reached and is safe.
	OutcomeSafe Outcome = "safe"
	// OutcomeAssisted: the embassy or a partner helped the citizen.
	OutcomeAssisted Outcome = "assisted"
	// OutcomeFalseAlarm: nothing was wrong (a mistyped keyword, a lost phone).
	OutcomeFalseAlarm Outcome = "false_alarm"
	// OutcomeNoContact: the embassy could not reach the citizen and closes
	// the case anyway (a new escalation opens a new case).
	OutcomeNoContact Outcome = "no_contact"
	// OutcomeOther: none of the above; the note says what.
	OutcomeOther Outcome = "other"
)

// AllOutcomes lists every Outcome, for validation and documentation.
var AllOutcomes = []Outcome{OutcomeSafe, OutcomeAssisted, OutcomeFalseAlarm, OutcomeNoContact, OutcomeOther}

// Valid reports whether o is one of AllOutcomes.
func (o Outcome) Valid() bool {
	for _, v := range AllOutcomes {
		if o == v {
			return true
		}
	}
	return false
}

// CaseNote is one note an embassy officer added to a case. Text is the
// officer's words: stored and returned, never logged or audited.
type CaseNote struct {
	At   time.Time `json:"at"`
	By   string    `json:"by"` // the API token's label
	Text string    `json:"text"`
}

// CaseAction is one change an embassy makes to a case.
type CaseAction string

const (
	// ActionAck acknowledges an open case.
	ActionAck CaseAction = "ack"
	// ActionResolve resolves an open or acknowledged case.
	ActionResolve CaseAction = "resolve"
	// ActionNote adds a note to a case in any status.
	ActionNote CaseAction = "note"
)

// TransitionError says a case change lost: the case is no longer in a
// status the action applies to (another officer acted first). Current is
// the case as it stands, for the caller to show.
type TransitionError struct {
	Action  CaseAction
	Current Case
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("case %s is %s: it cannot be %s", e.Current.ID, e.Current.Status, map[CaseAction]string{
		ActionAck: "acknowledged", ActionResolve: "resolved", ActionNote: "noted"}[e.Action])
}

// Apply makes one change to c at now by the token labelled by: ack needs
// an open case, resolve an open or acknowledged one, a note any case. On a
// change that does not apply it returns a *TransitionError and leaves c
// unchanged. outcome (resolve) and text (note, optional for resolve) must
// have been validated by the caller.
func (c *Case) Apply(action CaseAction, by string, outcome Outcome, text string, now time.Time) error {
	now = now.UTC()
	switch action {
	case ActionAck:
		if c.Status != CaseStatusOpen {
			return &TransitionError{Action: action, Current: *c}
		}
		c.Status, c.AckedAt, c.AckedBy = CaseStatusAcknowledged, now, by
	case ActionResolve:
		if c.Status == CaseStatusResolved {
			return &TransitionError{Action: action, Current: *c}
		}
		c.Status, c.ResolvedAt, c.ResolvedBy, c.Outcome = CaseStatusResolved, now, by, outcome
		if text != "" {
			c.Notes = append(c.Notes, CaseNote{At: now, By: by, Text: text})
		}
	case ActionNote:
		c.Notes = append(c.Notes, CaseNote{At: now, By: by, Text: text})
	default:
		return fmt.Errorf("unknown case action %q", action)
	}
	c.UpdatedAt = now
	return nil
}

// Rank orders severities, lowest first (0 for an unknown one).
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityHigh:
		return 2
	case SeverityCritical:
		return 3
	}
	return 0
}
