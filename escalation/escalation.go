// Package escalation is the domain of what embassies receive (DESIGN §4):
// the event types and severities, the webhook payload and its schema
// version, the cases events are grouped into, and the bookkeeping of
// delivering each event to each endpoint.
//
// It imports nothing of this module, so the conversation engine
// (dialogs), every storage engine (store, and any that stands beside it),
// the deliverer (webhook) and the coming embassy API can all share it
// without depending on each other.
package escalation

import "time"

// Version is the schema version of the webhook payload (Event.Version).
// Receivers check it; a change a receiver could misread raises it.
const Version = 1

// Type names what happened, as the "type" of a webhook payload.
//
// It is an alias of string, not a defined type, for one reason: callers in
// bot/, cmd/ and the dialogs tests compare event types with plain string
// values, and this step changes none of them. Once they use Type, making it
// `type Type string` is a one-line change here.
type Type = string

// Every event type an embassy can receive (DESIGN §4).
const (
	// TypeRegistrationCreated: a citizen completed registration.
	TypeRegistrationCreated Type = "registration.created"
	// TypeRegistrationUpdated: a citizen changed profile fields.
	TypeRegistrationUpdated Type = "registration.updated"
	// TypeRegistrationWithdrawn: a citizen deleted their registration.
	TypeRegistrationWithdrawn Type = "registration.withdrawn"
	// TypeCheckinMissed: the missed check-in ladder reached the embassy.
	TypeCheckinMissed Type = "checkin.missed"
	// TypeCheckinResumed: a citizen reported for checkin.missed checked in.
	TypeCheckinResumed Type = "checkin.resumed"
	// TypeDuressTriggered: the covert duress keyword was used.
	TypeDuressTriggered Type = "duress.triggered"
	// TypeSOSRaised: the citizen asked for help.
	TypeSOSRaised Type = "sos.raised"
	// TypeCaseUpdated: more about an open case (location, note, covert action).
	TypeCaseUpdated Type = "case.updated"
	// TypeProtectionReduced: a citizen paused or stopped check-ins.
	TypeProtectionReduced Type = "protection.reduced"
	// TypeRollcallMissed: a citizen did not answer a roll call.
	TypeRollcallMissed Type = "rollcall.missed"
	// TypeEndpointHeartbeat: a signed test delivery, so a broken endpoint
	// is found before a real alert. It has no registrant.
	TypeEndpointHeartbeat Type = "endpoint.heartbeat"
	// TypeServiceResumed: one per embassy after downtime or a wall-clock
	// step, stating the gap, instead of escalating citizens who were never
	// prompted meanwhile. It has no registrant.
	TypeServiceResumed Type = "service.resumed"
	// TypeRegistrationUnreachable: the channel reports the citizen cannot be
	// reached (on Telegram: they blocked the bot). Not in DESIGN §4's list;
	// added so the embassy knows check-in prompts no longer arrive.
	TypeRegistrationUnreachable Type = "registration.unreachable"
	// TypeKeywordChangeFailed: the current secret word was answered wrongly
	// several times in a day. Severity info; not in DESIGN §4's list.
	TypeKeywordChangeFailed Type = "keyword.change_failed"
)

// AllTypes lists every event type, for validation and for tests that must
// cover each one.
var AllTypes = []Type{
	TypeRegistrationCreated, TypeRegistrationUpdated, TypeRegistrationWithdrawn,
	TypeCheckinMissed, TypeCheckinResumed, TypeDuressTriggered, TypeSOSRaised,
	TypeCaseUpdated, TypeProtectionReduced, TypeRollcallMissed, TypeEndpointHeartbeat,
	TypeServiceResumed, TypeRegistrationUnreachable, TypeKeywordChangeFailed,
}

// PartnerTypes lists the event types a partner endpoint may choose to
// receive: every type about a citizen that a partner can act on. Not among
// them: endpoint.heartbeat (each endpoint gets its own), service.resumed
// (addressed to the embassy) and keyword.change_failed (which says nothing
// a partner could act on and hints that someone probes the secret word).
var PartnerTypes = []Type{
	TypeRegistrationCreated, TypeRegistrationUpdated, TypeRegistrationWithdrawn,
	TypeCheckinMissed, TypeCheckinResumed, TypeDuressTriggered, TypeSOSRaised,
	TypeCaseUpdated, TypeProtectionReduced, TypeRollcallMissed, TypeRegistrationUnreachable,
}

// Severity says how urgently an embassy must act. Anything above
// SeverityInfo is critical for delivery: never given up on, and sent to
// the secondary URL when the primary fails.
type Severity string

// Severities, lowest first.
const (
	// SeverityInfo: for the record; delivery may give up on it.
	SeverityInfo Severity = "info"
	// SeverityHigh: the embassy should act (a citizen unreachable).
	SeverityHigh Severity = "high"
	// SeverityCritical: a citizen may be in danger (duress, SOS, missed
	// check-ins past the ladder).
	SeverityCritical Severity = "critical"
)

// Critical reports whether delivery must never give up on an event of this
// severity and must also use the secondary URL.
func (s Severity) Critical() bool { return s != SeverityInfo }

// Event is one escalation as written to the outbox and delivered, byte for
// byte, as a webhook body (DESIGN §4). Its ID is the same on every
// delivery attempt, so receivers drop redeliveries by it.
type Event struct {
	ID           string          `json:"id"`
	Type         Type            `json:"type"`
	Version      int             `json:"version"`
	CreatedAt    time.Time       `json:"created_at"`
	EmbassyID    string          `json:"embassy_id"`
	CaseID       string          `json:"case_id,omitempty"`
	CaseSeq      int             `json:"case_seq,omitempty"`
	Severity     Severity        `json:"severity"`
	DoNotContact bool            `json:"do_not_contact"`
	Registrant   *RegistrantView `json:"registrant,omitempty"` // none on endpoint.heartbeat, service.resumed
	Details      map[string]any  `json:"details"`
}

// CaseStatus is where an embassy case stands. The values are stored in
// data files: never rename one.
type CaseStatus string

const (
	// CaseStatusOpen: the case takes new escalations about its registrant
	// and nobody at the embassy has acknowledged it yet.
	CaseStatusOpen CaseStatus = "open"
	// CaseStatusAcknowledged: the embassy has taken the case on; it still
	// takes new escalations. Stored as "acked".
	CaseStatusAcknowledged CaseStatus = "acked"
	// CaseStatusResolved: the embassy closed the case; the next escalation
	// about the registrant opens a new one.
	CaseStatusResolved CaseStatus = "resolved"
)

// AllCaseStatuses lists every CaseStatus, for validation.
var AllCaseStatuses = []CaseStatus{CaseStatusOpen, CaseStatusAcknowledged, CaseStatusResolved}

// Valid reports whether s is one of AllCaseStatuses.
func (s CaseStatus) Valid() bool {
	switch s {
	case CaseStatusOpen, CaseStatusAcknowledged, CaseStatusResolved:
		return true
	}
	return false
}

// Case is an embassy case: the escalations about one registrant from the
// first alarm until the embassy resolves it. Events of a case are
// delivered in order (case_seq), so a receiver sees a case unfold as it
// did.
type Case struct {
	ID        string     `json:"id"`
	EmbassyID string     `json:"embassy_id"`
	UserKey   string     `json:"user_key"`
	Status    CaseStatus `json:"status"`
	OpenedAt  time.Time  `json:"opened_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	Seq       int        `json:"seq"` // case_seq of the latest event
	Types     []Type     `json:"types"`
	// Severity is the highest severity of the case's events, so an
	// embassy can list its critical cases first (empty in cases recorded
	// before it was kept).
	Severity Severity `json:"severity,omitempty"`
	// The embassy's work on the case (see cases.go): who acknowledged and
	// resolved it, when, with what outcome, and its notes.
	AckedAt    time.Time  `json:"acked_at,omitzero"`
	AckedBy    string     `json:"acked_by,omitempty"`
	ResolvedAt time.Time  `json:"resolved_at,omitzero"`
	ResolvedBy string     `json:"resolved_by,omitempty"`
	Outcome    Outcome    `json:"outcome,omitempty"`
	Notes      []CaseNote `json:"notes,omitempty"`
}

// RegistrantView is what an embassy needs to act on an escalation: the
// citizen's profile as the payload carries it.
type RegistrantView struct {
	ID             string     `json:"id"` // pseudonymous; stable per channel identity
	Channel        string     `json:"channel,omitempty"`
	Address        string     `json:"address,omitempty"`
	Handle         string     `json:"handle,omitempty"`
	Name           string     `json:"name,omitempty"`
	Passport       string     `json:"passport,omitempty"`
	Nationality    string     `json:"nationality,omitempty"`
	Country        string     `json:"country,omitempty"`
	City           string     `json:"city,omitempty"`
	Employer       string     `json:"employer,omitempty"`
	TrustedContact string     `json:"trusted_contact,omitempty"`
	Phone          string     `json:"phone,omitempty"`
	Language       string     `json:"language,omitempty"`
	LastCheckin    *time.Time `json:"last_checkin,omitempty"`
	LastLocation   *Location  `json:"last_location,omitempty"`
}

// Location is a point a citizen shared, or typed as text. It lives here
// because the payload carries it (RegistrantView.LastLocation); the
// conversation engine stores the same type in a citizen's profile.
type Location struct {
	Lat  float64   `json:"lat,omitempty"`
	Lon  float64   `json:"lon,omitempty"`
	Text string    `json:"text,omitempty"`
	At   time.Time `json:"at"`
}
