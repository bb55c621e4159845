// Package identity links a registration to a national digital ID
// (Singpass, MyDigital ID, any OpenID provider) through a single-use link
// sent from the chat (DESIGN §12).
//
// The chat side never sees a provider: the engine asks for a link, the
// store writes a Link record (hashed token, registrant, provider, language,
// expiry) in the same transaction as the reply that carries the URL, and
// the citizen's browser comes to this package's HTTP handlers on the App's
// listener. On success the package hands a Verified to its Recorder, which
// stores it (encrypted like other personal fields) and emits
// registration.updated with `identity`.
//
// This file is the contract between the two halves (provider protocol here,
// chat/store wiring elsewhere); it imports nothing of ours.
package identity

import (
	"context"
	"errors"
	"time"
)

// LinkTTL is how long a link from the chat stays usable (DESIGN §12: 10 min).
const LinkTTL = 10 * time.Minute

// Link is one single-use invitation sent from the chat. The token itself is
// never stored: only its SHA-256 (TokenHash), so a stolen data file cannot
// be used to verify as someone else.
type Link struct {
	TokenHash     string    // hex SHA-256 of the random token in the URL
	RegistrantKey string    // the store's key of the registrant (an HMAC, not a chat id)
	Provider      string    // provider id from the config
	Lang          string    // the citizen's language, for the pages
	Expires       time.Time // issue time + LinkTTL
}

// Flow is the server-side state of one browser round trip to a provider,
// kept from the redirect to the callback. It is found by the `state`
// parameter's hash and consumed once.
type Flow struct {
	StateHash     string // hex SHA-256 of the `state` sent to the provider
	LinkHash      string // the Link it came from (consumed when the flow starts)
	RegistrantKey string
	Provider      string
	Lang          string
	Nonce         string // expected `nonce` claim
	CodeVerifier  string // PKCE verifier (S256 challenge sent)
	DPoPKey       []byte // PKCS#8 of the flow's DPoP key when the provider uses DPoP
	Expires       time.Time
}

// Verified is what a provider proved about the citizen. It is kept with
// the registration and shown to the embassy; a mismatch between the typed
// and the verified name is kept, not refused.
type Verified struct {
	Provider    string `json:"provider"`
	Subject     string `json:"subject"`               // the provider's stable subject identifier
	Name        string `json:"name,omitempty"`        // verified name, as the provider spells it
	Nationality string `json:"nationality,omitempty"` // ISO 3166-1 alpha-2 when the provider says
	// NationalIDHash is HMAC-SHA256 of the national id number under a key
	// from the environment; the number itself only when the config says the
	// embassy needs it (NationalID).
	NationalIDHash string    `json:"national_id_hash,omitempty"`
	NationalID     string    `json:"national_id,omitempty"`
	Assurance      string    `json:"assurance,omitempty"` // acr / level of assurance when given
	VerifiedAt     time.Time `json:"verified_at"`
}

// Links is the storage port: the store implements it (one short
// transaction each; never network I/O inside).
type Links interface {
	// TakeLink consumes the link with this token hash: it returns it once
	// and never again. Expired, used and unknown links are ErrLinkInvalid
	// (one error, so the page says the same thing for each).
	TakeLink(ctx context.Context, tokenHash string, now time.Time) (Link, error)
	// PutFlow stores a flow until its callback.
	PutFlow(ctx context.Context, f Flow) error
	// TakeFlow consumes the flow with this state hash (ErrFlowInvalid when
	// unknown, used or expired).
	TakeFlow(ctx context.Context, stateHash string, now time.Time) (Flow, error)
}

// Recorder receives a verified identity for a registrant. The store
// implements it: the state change and the registration.updated event in
// one transaction.
type Recorder interface {
	RecordIdentity(ctx context.Context, registrantKey string, v Verified) error
}

// Errors of the ports.
var (
	ErrLinkInvalid = errors.New("identity: link unknown, used or expired")
	ErrFlowInvalid = errors.New("identity: state unknown, used or expired")
)
