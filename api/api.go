// Package api is the embassy API (DESIGN §5) under /v1: an embassy's duty
// officers list and work their cases (acknowledge, resolve with an
// outcome, add notes), see who is overdue, run roll calls and pull the
// events their webhook endpoint may have missed, with nothing but a
// bearer token and curl.
//
// Every request is authenticated first (a token names exactly one
// embassy; tokens are compared in constant time), then rate-limited per
// token, then routed. An embassy sees only its own cases and events:
// another embassy's id answers 404, exactly like an id that does not
// exist. Every error is JSON with a stable code (errs codes, plus
// too_large, rate_limited and method_not_allowed). The contract is
// docs/api.yaml; the tests validate every response against it.
package api

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// Store is what the API needs of storage, defined here where it is used.
// *boltstore.Store implements it. Case, ChangeCase and AckEvent fail with
// errs.ENOTFOUND for an id that does not exist or is another embassy's;
// ChangeCase fails with errs.ECONFLICT (and returns the case as it stands)
// when the change lost a race.
type Store interface {
	Cases(q store.CaseQuery) (store.CasePage, error)
	Case(embassy, id string) (escalation.Case, []escalation.Event, error)
	ChangeCase(ch store.CaseChange, now time.Time) (escalation.Case, error)
	Events(q store.EventQuery) (store.EventPage, error)
	AckEvent(embassy, eventID, by string, now time.Time) error
	// RollCallCounts reads a roll call and its counts from counters kept
	// in the transactions that move its members (not its memberships).
	RollCallCounts(id string) (store.RollCall, store.RollCallCounts, bool, error)
	// RollCallPage pages one of a roll call's lists (pending, responded,
	// missed, unprompted) by pseudonymous id, ascending; cursor is the
	// store's own (the API seals it), "" when no page follows.
	RollCallPage(id, list, cursor string, limit int) (ids []string, next string, err error)
	// CursorKey is a 32-byte key kept with the data, made on first use:
	// it seals the event pull's cursors, which must outlive a restart.
	CursorKey() ([]byte, error)
	// Registrants lists one page of an embassy's registrants of a status
	// from the store's index; cursor is the store's own (the API seals it).
	Registrants(embassy string, status store.RegistrantStatus, cursor string, limit int) (store.RegistrantPage, error)
}

// Resolver records a resolution (a CaseChange with ActionResolve) and, in
// the same transaction, the conversation engine's step that clears the
// registrant's open case and do_not_contact; *bot.Runner implements it.
// It must never message the citizen. Like Store.ChangeCase it fails with
// errs.ECONFLICT, returning the case as it stands, when it lost a race.
type Resolver interface {
	ResolveCase(ctx context.Context, ch store.CaseChange) (escalation.Case, error)
}

// Token is one bearer token: the embassy it acts for, its label for the
// audit trail, and the secret.
type Token struct {
	Embassy string
	Label   string
	Secret  []byte
}

// Options configure the API. Store, Resolver and Tokens are required.
type Options struct {
	Store    Store
	Resolver Resolver
	Tokens   []Token
	// RollCalls runs and reports roll calls (nil: /v1/rollcalls answers
	// 404).
	RollCalls RollCaller
	// Covers reports whether embassy covers country, the only countries
	// it may run a roll call in (nil: every country).
	Covers func(embassy, country string) bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rate and Burst are each token's request budget: Burst requests at
	// once, refilled at Rate a second (defaults 10 and 40).
	Rate  float64
	Burst int
	// Log is the operational log (default slog.Default()). It never gets
	// a note, a token or anything about a registrant.
	Log *slog.Logger
	// Observe, if set, hears of every request once answered: its route
	// label (see Routes), status code and duration — for the operator's
	// metrics (metrics.go says what it leaves out, and why).
	Observe func(route string, code int, took time.Duration)
}

// MaxBody is the largest request body accepted (413 beyond).
const MaxBody = 64 << 10

// Page sizes of the list endpoints.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// MaxNote is the longest note, in characters.
const MaxNote = 4000

// API serves /v1. Build it with New.
type API struct {
	opt     Options
	auth    *authenticator
	limiter *limiter
	cursors *cursorSealer
	// eventCursors seals the event pull's cursors under the store's
	// lasting key (events.go), made on the first pull.
	eventCursorsMu sync.Mutex
	eventCursors   *cursorSealer
	// background counts the roll calls still prompting (Wait).
	background sync.WaitGroup
}

// New builds the API handler (an http.Handler for Prefix).
func New(opt Options) *API {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Rate <= 0 {
		opt.Rate = 10
	}
	if opt.Burst <= 0 {
		opt.Burst = 40
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &API{opt: opt, auth: newAuthenticator(opt.Tokens), limiter: newLimiter(opt.Rate, opt.Burst, opt.Now),
		cursors: newCursorSealer()}
}

// Prefix is where the API is mounted.
const Prefix = "/v1/"
