package store

import (
	"errors"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
)

// RegistrantStatus is what the embassy's registrant list filters on
// (DESIGN §5, issue 12 item 2). Overdue is an active registrant whose
// checkin.missed went out and who has not checked in since; the other
// three are the registration's real status (never the one a covert stop
// or pause shows the phone: monitoring goes on, so the embassy sees it).
type RegistrantStatus string

// The statuses an index lists.
const (
	StatusOverdue RegistrantStatus = "overdue"
	StatusActive  RegistrantStatus = "active"
	StatusPaused  RegistrantStatus = "paused"
	StatusStopped RegistrantStatus = "stopped"
)

// RegistrantStatuses lists every status, for validation and tests.
var RegistrantStatuses = []RegistrantStatus{StatusOverdue, StatusActive, StatusPaused, StatusStopped}

// Valid reports whether s is one of RegistrantStatuses.
func (s RegistrantStatus) Valid() bool {
	for _, v := range RegistrantStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Router names the embassy responsible for a citizen of nationality in
// country (dialogs.Directory.EmbassyFor): the store needs it to keep its
// per-embassy registrant index, and holds no directory of its own.
type Router func(nationality, country string) string

// RegistrantRow is one line of the embassy's registrant list: enough to
// act on, nothing the embassy does not already receive in webhooks. ID is
// the pseudonymous id of the webhook bodies; Key is the store key, for the
// runner (a roll call) and never shown by the API.
type RegistrantRow struct {
	ID           string               `json:"id"`
	Key          string               `json:"-"`
	Status       RegistrantStatus     `json:"status"`
	Country      string               `json:"country,omitempty"`
	City         string               `json:"city,omitempty"`
	LastCheckin  *time.Time           `json:"last_checkin,omitempty"`
	OverdueSince *time.Time           `json:"overdue_since,omitempty"`
	LastLocation *escalation.Location `json:"last_location,omitempty"`
	OpenCase     string               `json:"open_case,omitempty"`
	// IdentityProvider, IdentityVerifiedAt and IdentityNameMatches say
	// that the registration was linked to a digital ID (issue 14): by
	// which provider, when, and whether the verified name has the words of
	// the typed one. Empty until verified.
	IdentityProvider    string     `json:"identity_provider,omitempty"`
	IdentityVerifiedAt  *time.Time `json:"identity_verified_at,omitempty"`
	IdentityNameMatches *bool      `json:"identity_name_matches,omitempty"`
}

// RegistrantPage is one page of Registrants. Next, when not empty, is the
// cursor of the following page; it is opaque and must be handed back
// unchanged.
type RegistrantPage struct {
	Rows []RegistrantRow
	Next string
}

// MaxPage bounds a page of Registrants (and of a roll call's lists).
const MaxPage = 1000

// ErrBadCursor is returned for a cursor the engine did not hand out.
var ErrBadCursor = errors.New("store: the cursor is not one this list handed out")

// ErrNoRollCall is returned for a roll-call id the store does not hold.
var ErrNoRollCall = errors.New("store: no such roll call")

// RollCall is a request of an embassy that every active registrant of an
// area check in now (DESIGN §2 item 9). Members are the store keys of those
// asked, fixed when it starts.
type RollCall struct {
	ID        string    `json:"id"`
	EmbassyID string    `json:"embassy_id"`
	Country   string    `json:"country"`
	City      string    `json:"city,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Deadline  time.Time `json:"deadline"`
	// Texts is the question in the embassy's words by language (empty:
	// the locales' template naming Area).
	Texts map[string]string `json:"texts,omitempty"`
	Area  string            `json:"area,omitempty"`
	// Closed: the deadline passed and every non-responder was escalated.
	Closed  bool     `json:"closed,omitempty"`
	Members []string `json:"-"`
}

// MemberState is where one member of a roll call stands.
type MemberState byte

// Member states. Listed → Prompted when the prompt is committed;
// Responded on any check-in (or an SOS) after the roll call started;
// Missed when rollcall.missed was recorded for them; Unprompted when the
// deadline came before they could be prompted (they had stopped or paused
// meanwhile): they are not escalated.
const (
	MemberListed MemberState = iota + 1
	MemberPrompted
	MemberResponded
	MemberMissed
	MemberUnprompted
)

// String names a member state in reports.
func (m MemberState) String() string {
	switch m {
	case MemberListed:
		return "listed"
	case MemberPrompted:
		return "prompted"
	case MemberResponded:
		return "responded"
	case MemberMissed:
		return "missed"
	case MemberUnprompted:
		return "unprompted"
	}
	return "unknown"
}

// RollCallReport is a roll call with where its members stand, by
// pseudonymous id. Pending are those listed or prompted and not yet
// answered.
type RollCallReport struct {
	RollCall
	Responded  []string `json:"responded"`
	Pending    []string `json:"pending"`
	Missed     []string `json:"missed"`
	Unprompted []string `json:"unprompted"`
}

// AuditRollCallPrompted is the audit action of the engine's roll-call
// prompt; the store moves the registrant's listed memberships to Prompted
// when it sees it, in the same transaction as the prompt.
const AuditRollCallPrompted = "rollcall.prompted"

// DetailRollCallID is the details key of rollcall.missed naming the roll
// call; the store marks that membership Missed in the event's transaction.
const DetailRollCallID = "rollcall_id"
