// Package dialogs is the conversation engine: a pure, deterministic state
// machine that takes a registrant's stored State, one Input and the current
// time, and returns the new State, the replies to send and the escalations to
// record (see DESIGN §2).
//
// It performs no I/O, reads no clock and starts no goroutines, so every
// conversation can be replayed exactly in tests, and the runner can run it
// inside a store transaction (even twice, as bbolt's Batch may) without side
// effects. Text comes from a Catalog and the deployment's embassies and
// schedule from a Directory and Policy; all three are plain values handed in.
package dialogs

import (
	"time"

	"github.com/checkinbot/checkinbot/escalation"
)

// Status is where a registration stands.
type Status string

const (
	// StatusNew: first contact or registration in progress; nothing is monitored.
	StatusNew Status = ""
	// StatusActive: registered and checking in on schedule.
	StatusActive Status = "active"
	// StatusPaused: check-ins paused until State.PausedUntil.
	StatusPaused Status = "paused"
	// StatusStopped: the citizen said they are home; no check-ins are expected.
	StatusStopped Status = "stopped"
	// StatusDeleted is only ever a Shown status: after a covert delete the
	// phone sees a fresh start while monitoring continues.
	StatusDeleted Status = "deleted"
)

// Step is the question the conversation is waiting for an answer to.
// The empty Step means no question is open.
type Step string

// Every step the engine can wait in. Registration steps start with "reg.".
const (
	StepNone                  Step = ""
	StepLanguage              Step = "reg.language"
	StepConsent               Step = "reg.consent"
	StepNationality           Step = "reg.nationality"
	StepCountry               Step = "reg.country"
	StepCity                  Step = "reg.city"
	StepName                  Step = "reg.name"
	StepPassport              Step = "reg.passport"
	StepEmployer              Step = "reg.employer"
	StepContact               Step = "reg.contact"
	StepInterval              Step = "reg.interval"
	StepTime                  Step = "reg.time"
	StepKeyword               Step = "reg.keyword"
	StepKeywordRepeat         Step = "reg.keyword_repeat"
	StepSummary               Step = "reg.summary"
	StepDue                   Step = "checkin.due"
	StepSOSLocation           Step = "sos.location"
	StepSOSCall               Step = "sos.call"
	StepSOSNote               Step = "sos.note"
	StepUpdateMenu            Step = "update.menu"
	StepUpdateCountry         Step = "update.country"
	StepUpdateCity            Step = "update.city"
	StepUpdateEmployer        Step = "update.employer"
	StepUpdatePhone           Step = "update.phone"
	StepUpdateLocation        Step = "update.location"
	StepSettingsMenu          Step = "settings.menu"
	StepSettingsLanguage      Step = "settings.language"
	StepSettingsInterval      Step = "settings.interval"
	StepSettingsTime          Step = "settings.time"
	StepSettingsContact       Step = "settings.contact"
	StepSettingsKeywordOld    Step = "settings.keyword_old"
	StepSettingsKeywordNew    Step = "settings.keyword_new"
	StepSettingsKeywordRepeat Step = "settings.keyword_repeat"
	StepPauseLength           Step = "pause.length"
	StepStopConfirm           Step = "stop.confirm"
	StepDeleteConfirm         Step = "delete.confirm"
	// StepIdentityOffer: the optional "verify my identity" offer (identity.go).
	StepIdentityOffer Step = "identity.offer"
)

// AllSteps lists every Step, for tests that must cover each dialog state.
var AllSteps = []Step{
	StepNone, StepLanguage, StepConsent, StepNationality, StepCountry, StepCity, StepName,
	StepPassport, StepEmployer, StepContact, StepInterval, StepTime, StepKeyword,
	StepKeywordRepeat, StepSummary, StepDue, StepSOSLocation, StepSOSCall, StepSOSNote, StepUpdateMenu,
	StepUpdateCountry, StepUpdateCity, StepUpdateEmployer, StepUpdatePhone, StepUpdateLocation,
	StepSettingsMenu, StepSettingsLanguage, StepSettingsInterval, StepSettingsTime,
	StepSettingsContact, StepSettingsKeywordOld, StepSettingsKeywordNew,
	StepSettingsKeywordRepeat, StepPauseLength, StepStopConfirm, StepDeleteConfirm, StepIdentityOffer,
}

// Location is a point a citizen shared, or typed as text (the escalation
// payload carries it too, so it is defined there).
type Location = escalation.Location

// Profile is what a citizen told us about themselves. Every field is
// personal data.
type Profile struct {
	Nationality    string    `json:"nationality,omitempty"` // ISO 3166 alpha-2 of the passport
	Country        string    `json:"country,omitempty"`     // ISO 3166 alpha-2 of where they are now
	City           string    `json:"city,omitempty"`
	Name           string    `json:"name,omitempty"` // as in passport
	Passport       string    `json:"passport,omitempty"`
	Employer       string    `json:"employer,omitempty"`
	TrustedContact string    `json:"trusted_contact,omitempty"`
	Phone          string    `json:"phone,omitempty"`
	LastLocation   *Location `json:"last_location,omitempty"`
}

// Keyword is a duress keyword as stored: never the word itself, only
// HMAC-SHA256(pepper, user key ‖ 0x00 ‖ Normalize(word)) and the length
// needed to slide a matching window over incoming text (DESIGN §3).
type Keyword struct {
	Hash []byte `json:"hash,omitempty"`
	// Len is the keyword's length in runes after normalisation (spaces
	// removed when Chars is set).
	Len int `json:"len,omitempty"`
	// Chars marks a keyword in a script written without spaces (Thai, Lao,
	// Khmer, Burmese, Chinese): it is matched by character windows rather
	// than by word n-grams.
	Chars bool `json:"chars,omitempty"`
}

// Set reports whether a keyword is stored.
func (k Keyword) Set() bool { return len(k.Hash) > 0 }

// KeywordChange records, invisibly, how the current keyword change is
// going and how often the current keyword was asked for and missed: the
// phone is shown the same whether the typed word was right or wrong.
type KeywordChange struct {
	// OldMatched: the word typed as the current one was right (and the
	// attempt was within the limit).
	OldMatched bool `json:"old_matched,omitempty"`
	// Attempts and Misses count answers to "type your current word" since
	// WindowStart; past maxKeywordAttempts every answer counts as a miss.
	Attempts    int       `json:"attempts,omitempty"`
	Misses      int       `json:"misses,omitempty"`
	WindowStart time.Time `json:"window_start,omitzero"`
	// AskedAt is when the exchange last asked its question; an exchange
	// left open longer than keywordStepTimeout is closed before the next
	// message is read.
	AskedAt time.Time `json:"asked_at,omitzero"`
}

// Keywords lists every keyword of the registration in force: the current
// one and those it replaced.
func (s State) Keywords() []Keyword {
	if !s.Keyword.Set() {
		return s.FormerKeywords
	}
	return append([]Keyword{s.Keyword}, s.FormerKeywords...)
}

// State is everything stored for one registrant. The store keeps it keyed by
// an HMAC of the channel identity; the engine never sees that raw identity
// except as Input.Address.
type State struct {
	Key     string `json:"key"`               // pseudonymous user key (hex HMAC of channel identity)
	Channel string `json:"channel,omitempty"` // "telegram", "whatsapp", "terminal"
	Address string `json:"address,omitempty"` // chat id or phone; stored only after consent
	Handle  string `json:"handle,omitempty"`  // @username or phone, for the embassy
	Lang    string `json:"lang,omitempty"`

	Status Status `json:"status,omitempty"`
	Step   Step   `json:"step,omitempty"`
	// Editing: the current registration step was opened from the summary,
	// so the answer returns there.
	Editing bool `json:"editing,omitempty"`
	// Resume is the registration step to return to after changing the
	// language half-way through.
	Resume Step `json:"resume,omitempty"`

	Profile       Profile   `json:"profile"`
	NoticeVersion string    `json:"notice_version,omitempty"`
	ConsentAt     time.Time `json:"consent_at,omitempty"`
	RegisteredAt  time.Time `json:"registered_at,omitempty"`

	Keyword        Keyword `json:"keyword"`
	PendingKeyword Keyword `json:"pending_keyword"` // typed once, awaiting the repeat
	// FormerKeywords keep working after a change (at most
	// maxFormerKeywords, oldest dropped): a change never leaves a citizen
	// who mistyped, or who forgot, without a working keyword (DESIGN §3).
	FormerKeywords []Keyword `json:"former_keywords,omitempty"`
	// KeywordChange is the keyword change in progress; never shown.
	KeywordChange KeywordChange `json:"keyword_change,omitzero"`

	Interval    time.Duration `json:"interval,omitempty"`
	CheckinTime string        `json:"checkin_time,omitempty"` // "HH:MM" local to Profile.Country

	LastCheckin time.Time `json:"last_checkin,omitempty"`
	NextDue     time.Time `json:"next_due,omitempty"`
	// Ladder is the missed check-in stage reached for NextDue (see schedule.go).
	Ladder int `json:"ladder,omitempty"`
	// Overdue: checkin.missed went out and no check-in came since; the next
	// one sends checkin.resumed, however the schedule moved meanwhile.
	Overdue bool `json:"overdue,omitempty"`
	// Timer is when the visible schedule next wants a timer event; zero
	// means never. The store indexes DueAt (due-time index).
	Timer       time.Time `json:"timer,omitempty"`
	PausedUntil time.Time `json:"paused_until,omitempty"`

	// OpenCase is the embassy case escalations are appended to; the store
	// assigns it when an escalation asks for a case.
	OpenCase string `json:"open_case,omitempty"`
	// DoNotContact is set by a duress keyword and cleared only when the
	// embassy resolves the case: every event carries it meanwhile.
	DoNotContact bool `json:"do_not_contact,omitempty"`
	// Shown is the status the phone is shown after a covert stop, pause or
	// delete; the real Status keeps monitoring. Empty when nothing is faked.
	Shown Status `json:"shown,omitempty"`
	// ShownNextDue is the next check-in the phone is shown while Shown is
	// set: what the real request would have left, however the monitoring
	// schedule moves.
	ShownNextDue time.Time `json:"shown_next_due,omitzero"`
	// CovertFlow: a duress keyword arrived inside the stop, pause or delete
	// request now being confirmed, so its completion must only pretend.
	CovertFlow bool `json:"covert_flow,omitempty"`

	// Unreachable: the channel reported it cannot deliver to this citizen;
	// cleared by their next message.
	Unreachable bool `json:"unreachable,omitempty"`

	// PendingCountry is a new country chosen in a status update, applied
	// with the city that must follow it.
	PendingCountry string `json:"pending_country,omitempty"`

	// Hidden is a registration covertly "deleted" under duress.
	Hidden *Hidden `json:"hidden,omitempty"`

	// PromptPending: the prompt of the current ladder stage (the due
	// prompt, a reminder, the final reminder) went out and the platform has
	// not yet accepted it (no KindPromptDelivered). The ladder waits; it
	// never escalates on an unconfirmed prompt (see schedule.go).
	PromptPending bool `json:"prompt_pending,omitempty"`
	// PromptedAt is when the first prompt of the current due was delivered
	// (or proven undeliverable, or, when monitoring silently, when it was
	// due): the moment the missed check-in ladder started. Zero before.
	PromptedAt time.Time `json:"prompted_at,omitempty"`
	// SnoozedUntil is when the question the citizen snoozed ("Remind me
	// in 30 minutes") is asked again: the ladder waits until then, and
	// every snooze of one due ends by PromptedAt + Policy.SnoozeCap, so the
	// embassy's alert moves by at most that (schedule.go). Zero when the
	// current due was never snoozed.
	SnoozedUntil time.Time `json:"snoozed_until,omitzero"`

	// Identity is what a provider proved about the citizen (identity.go);
	// nil until verified.
	Identity *Identity `json:"identity,omitempty"`
	// IdentityLinkOpen: a link message was sent and not yet cleaned up.
	IdentityLinkOpen bool `json:"identity_link_open,omitempty"`
	// Retention: when the citizen last wrote, and the removal date a
	// retention notice announced (retention.go).
	Retention RetentionMarks `json:"retention,omitzero"`
}

// Hidden is what a covert delete keeps out of the phone's sight: the phone
// sees a fresh start exactly as after a real delete, while this copy stays
// monitored — silently — and its keyword keeps working, until the embassy
// resolves the case.
type Hidden struct {
	Profile Profile `json:"profile"`
	Channel string  `json:"channel,omitempty"`
	Address string  `json:"address,omitempty"`
	Handle  string  `json:"handle,omitempty"`
	Lang    string  `json:"lang,omitempty"`
	// Keywords: the hidden registration's keyword, and those of any
	// registration covertly deleted before it — each keeps working.
	Keywords    []Keyword     `json:"keywords"`
	Interval    time.Duration `json:"interval,omitempty"`
	CheckinTime string        `json:"checkin_time,omitempty"`
	LastCheckin time.Time     `json:"last_checkin,omitempty"`
	NextDue     time.Time     `json:"next_due,omitempty"`
	Ladder      int           `json:"ladder,omitempty"`
	Timer       time.Time     `json:"timer,omitempty"`
	// Missed: a checkin.missed went out for this registration (before the
	// covert delete, or from the hidden ladder) and no sign of life came
	// since — the hidden twin of State.Overdue, which the phone's fresh
	// state cannot carry for it.
	Missed bool `json:"missed,omitempty"`
}

// Overdue reports whether the hidden ladder has passed the point where a
// visible one would be overdue: a covertly deleted citizen who goes
// silent must be on the embassy's overdue list like any other (the store's
// registrant index and counters use it), however quietly the phone is
// monitored. Ladder at or past ladderMissed covers records written before
// Missed existed.
func (h *Hidden) Overdue() bool {
	return h != nil && (h.Missed || h.Ladder >= ladderMissed)
}

// DueAt is when the registrant next needs a timer event: the earlier of the
// visible and the hidden timer. The store indexes it; zero means never.
func (s State) DueAt() time.Time {
	if s.Hidden == nil || s.Hidden.Timer.IsZero() {
		return s.Timer
	}
	if s.Timer.IsZero() || s.Hidden.Timer.Before(s.Timer) {
		return s.Hidden.Timer
	}
	return s.Timer
}

// Registered reports whether the citizen completed registration.
func (s State) Registered() bool { return s.Status != StatusNew }

// InputKind says what arrived.
type InputKind int

// The inputs a channel or the scheduler can deliver.
const (
	KindText         InputKind = iota // a typed message (commands included)
	KindButton                        // a button press; Text holds the button's Data
	KindLocation                      // a shared location
	KindMedia                         // a sticker, voice note, photo … anything unsupported
	KindTimer                         // the State.Timer time was reached
	KindRollCall                      // the embassy asks for a check-in now
	KindCaseResolved                  // the embassy resolved CaseID
	KindUnreachable                   // the channel cannot deliver to this citizen (blocked the bot)
	// KindPromptDelivered: the platform accepted a reply of a Result that
	// had Prompt set; the engine's now is when. The missed check-in ladder
	// runs from this moment, not from the due time (DESIGN §2 flow 6).
	KindPromptDelivered
	// KindRollCallMissed: the deadline of roll call RollCallID passed and
	// this member had not answered; the engine records rollcall.missed.
	KindRollCallMissed
	// KindIdentityVerified: a provider proved who the citizen is
	// (Input.Identity); recorded with registration.updated (identity.go).
	KindIdentityVerified
	// KindRetention: the retention sweep found this registrant due for its
	// notice or its purge; the engine decides again on the stored state
	// (retention.go).
	KindRetention
)

// Input is one event for one registrant.
type Input struct {
	Kind     InputKind
	Key      string // pseudonymous user key
	Channel  string
	Address  string // chat id / phone number to reply to
	Handle   string // optional @username or phone shown to the embassy
	LangHint string // platform language ("th", "zh-hans") or a guess from a phone prefix
	Text     string
	Lat, Lon float64
	CaseID   string    // KindCaseResolved
	Deadline time.Time // KindRollCall
	Area     string    // KindRollCall: human-readable area for the prompt
	// RollCallID names the roll call (KindRollCall, KindRollCallMissed).
	RollCallID string
	// Random is fresh randomness the runner draws for every event, for
	// whatever the engine must make unguessable (an identity link's token):
	// the engine stays pure, and a handler run twice makes the same link.
	Random []byte
	// Identity is what a provider proved (KindIdentityVerified).
	Identity *Identity
	// Flood says whether the sender is flooding (the runner counts, per
	// citizen, in arrival order; flood.go says what a flooded message does).
	Flood Flood
	// Crowding is the send capacity and prompt load of the input's channel
	// (crowding.go), shared read-only between inputs; nil offers the usual
	// times and warns of nothing.
	Crowding *Crowding
	// PromptQueued, with KindTimer, says a scheduled prompt or reminder to
	// this citizen still waits unsent in the durable send queue (the
	// platform's rate holds it back, or the channel is retrying): asking
	// again would only queue a second copy of the same question, so the
	// ladder keeps waiting for the delivery of the one queued.
	PromptQueued bool
}

// Button is one choice under a reply. Data is what comes back when pressed.
type Button struct {
	Label string `json:"label"`
	Data  string `json:"data"`
}

// Reply is one message to the citizen, as plain text (no markup: user text
// needs no escaping because nothing is parsed as markup).
type Reply struct {
	Text    string   `json:"text"`
	Buttons []Button `json:"buttons,omitempty"`
	// Sensitive marks a prompt that reveals the duress feature; channels that
	// can delete messages remove it once setup is done (Result.PurgeSensitive).
	Sensitive bool `json:"sensitive,omitempty"`
}

// Severity of an escalation (defined in the escalation domain).
type Severity = escalation.Severity

// Severities, lowest first.
const (
	SeverityInfo     = escalation.SeverityInfo
	SeverityHigh     = escalation.SeverityHigh
	SeverityCritical = escalation.SeverityCritical
)

// Event types sent to embassies (DESIGN §4); see the escalation package for
// what each means.
const (
	EventRegistrationCreated     = escalation.TypeRegistrationCreated
	EventRegistrationUpdated     = escalation.TypeRegistrationUpdated
	EventRegistrationWithdrawn   = escalation.TypeRegistrationWithdrawn
	EventCheckinMissed           = escalation.TypeCheckinMissed
	EventCheckinResumed          = escalation.TypeCheckinResumed
	EventDuressTriggered         = escalation.TypeDuressTriggered
	EventSOSRaised               = escalation.TypeSOSRaised
	EventCaseUpdated             = escalation.TypeCaseUpdated
	EventProtectionReduced       = escalation.TypeProtectionReduced
	EventRollcallMissed          = escalation.TypeRollcallMissed
	EventEndpointHeartbeat       = escalation.TypeEndpointHeartbeat
	EventServiceResumed          = escalation.TypeServiceResumed
	EventRegistrationUnreachable = escalation.TypeRegistrationUnreachable
	EventKeywordChangeFailed     = escalation.TypeKeywordChangeFailed
)

// CaseMode says how an escalation relates to the registrant's open case.
type CaseMode int

const (
	// CaseNone: informational, not part of a case.
	CaseNone CaseMode = iota
	// CaseOpen: append to the open case, opening one if there is none.
	CaseOpen
	// CaseAppend: append to the open case if there is one.
	CaseAppend
)

// Escalation is an event for the embassy. The store gives it an id, a case
// and a sequence number, and writes it to the outbox in the same transaction
// as the state change.
type Escalation struct {
	Type         string         `json:"type"`
	Severity     Severity       `json:"severity"`
	DoNotContact bool           `json:"do_not_contact"`
	EmbassyID    string         `json:"embassy_id"`
	Case         CaseMode       `json:"-"`
	Registrant   RegistrantView `json:"registrant"`
	Details      map[string]any `json:"details,omitempty"`
}

// RegistrantView is what an embassy needs to act on an escalation
// (defined in the escalation domain, whose payload carries it).
type RegistrantView = escalation.RegistrantView

// Result is what handling one Input produced.
type Result struct {
	State       State
	Replies     []Reply
	Escalations []Escalation
	// Erase: delete the registrant and everything personal about them.
	Erase bool
	// DeleteInbound: remove the citizen's message from the chat where the
	// channel can. Set for every check-in (so a duress check-in is not
	// singled out) and for every typed keyword.
	DeleteInbound bool
	// PurgeSensitive: delete the Sensitive prompts and keyword messages
	// remembered since setup began.
	PurgeSensitive bool
	// Prompt: the replies include a check-in prompt ("Are you safe?",
	// a reminder, a roll call) whose delivery starts or advances the missed
	// check-in ladder. The runner reports its acceptance by the platform
	// as a KindPromptDelivered input.
	Prompt bool
	// Urgent marks replies of the SOS flow, which channels send before
	// anything else. Check-ins — duress or not — are never urgent.
	Urgent bool
	// IdentityLink: a verification link was sent; the store keeps its
	// hashed token in the same transaction as the reply (identity.go).
	IdentityLink *IdentityLink
	// Audit names what happened, for the append-only audit trail. It never
	// distinguishes a duress check-in from a normal one and holds no
	// personal data.
	Audit []string
}
