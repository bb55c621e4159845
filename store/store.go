// Package store is the storage contract every storage engine shares: the
// types the runner (bot.Store) and the deliverer (webhook.Outbox) exchange
// with an engine — Handler, Outcome, Envelope, SendItem, SendAck, PurgeRow,
// Gap, AuditEntry — the errors an engine reports (ErrClosed, ErrBadEvent,
// FileError and its kinds) and the aliases of the escalation types
// (DESIGN §8).
//
// It holds no engine and imports no storage library (a test keeps bbolt
// out), so a second engine — a replicated one, say — imports it without
// pulling in bbolt. The bbolt engine is store/boltstore; the conformance
// suite every engine must pass is store/storetest.
package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
)

// EventVersion is the version of the webhook payload written to the outbox
// (escalation.Version; kept for callers of store).
const EventVersion = escalation.Version

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store is closed")

// UserKey derives the key a registrant is stored under from their channel
// identity: HMAC-SHA256(pepper, channel ‖ 0x00 ‖ id), hex. The raw chat id or
// phone number is never a key, so the file alone does not list who is
// registered.
func UserKey(pepper []byte, channel, id string) string {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(channel))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// Event is one escalation as written to the outbox and later delivered as a
// webhook body (DESIGN §4). The type is the escalation domain's; the alias
// keeps store.Event working for callers in bot/ and cmd/.
type Event = escalation.Event

// Case is an embassy case (escalation.Case; the alias keeps store.Case
// working for callers).
type Case = escalation.Case

// AuditEntry is one link of the append-only audit chain, as read back
// whatever its stored form: each entry's Hash covers the previous entry's
// hash, so an edit, a removal or a reordering breaks the chain. How each
// form is hashed and stored — the compact binary entry, or the JSON one of
// older files (Hash over the entry with Hash, MAC and Checkpoint empty,
// Prev the previous Hash) — is boltstore's (audit.go, audit_compact.go).
// Action is neutral (AuditRegistrantUpdated …); the reason is only in
// Sealed.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
	Subject string    `json:"subject,omitempty"` // pseudonymous registrant id
	Action  string    `json:"action"`
	// Sealed is the reason, padded and sealed (AES-256-GCM) under the
	// audit key; absent when the store has no audit key.
	Sealed []byte `json:"sealed,omitempty"`
	Prev   string `json:"prev"`
	Hash   string `json:"hash,omitempty"`
	// MAC is an HMAC-SHA256 of Hash under the audit key, so a trail edited
	// and re-chained by someone without the key fails verification.
	MAC string `json:"mac,omitempty"`
	// Checkpoint is a checkpoint entry's own MAC over its seq and hash.
	Checkpoint string `json:"checkpoint,omitempty"`
	// Reason is Sealed opened, filled by readers holding the key; never
	// stored.
	Reason string `json:"-"`
}

// Outcome is what Process committed.
type Outcome struct {
	// Duplicate: the inbound id was processed before; nothing was changed
	// and nothing must be sent (but what is still unsent may go again).
	Duplicate bool
	Result    dialogs.Result
	// Events are the outbox rows written, with ids and cases assigned.
	Events []Event
	// Sends are the send-queue rows written (ProcessSend), to send now.
	Sends []SendItem
	// Purges counts purge rows written due at once (a message to delete).
	Purges int
}

// Handler computes the result of one event from the registrant's stored
// state. It must be pure: a group commit may call it more than once.
type Handler func(prev dialogs.State, found bool) dialogs.Result

// ErrBadEvent marks a failure of one event that will fail again however
// often it is retried — the engine panicked on it, or the registrant's
// record cannot be read — as opposed to a store that cannot write now (a
// full disk, a closed file), which is worth waiting for. Callers tell the
// two apart with errors.Is.
var ErrBadEvent = errors.New("store: this event cannot be processed")
