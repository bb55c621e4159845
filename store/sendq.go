package store

import (
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// The send queue and the purge list (DESIGN §3, §4): the rows an engine
// writes in the same transaction as the state change they belong to, and
// the acknowledgements that settle them once the platform accepted a
// message.

// Envelope is what ProcessSend needs, beyond the engine's result, to queue
// the result's replies and clean-up: where they go and how they rank.
type Envelope struct {
	Channel string
	// Address is the chat id or phone number; empty means the result's
	// State.Address.
	Address string
	// Scheduled: the event is a timer or a roll call, not an answer to
	// something the citizen sent (its replies may go stale).
	Scheduled bool
	// DeleteID is the platform id of the citizen's message being handled,
	// for a result that asks to delete it (Result.DeleteInbound); empty
	// where the channel cannot delete it.
	DeleteID string
	// DeleteBy is the last moment the platform allows deleting it.
	DeleteBy time.Time
}

// SendItem is one response owed to a citizen: every reply of one event,
// sent as one unit, and what to do once the platform accepted it.
type SendItem struct {
	Seq     uint64          `json:"seq"`
	UserKey string          `json:"user"`
	Channel string          `json:"channel"`
	Address string          `json:"address"`
	Created time.Time       `json:"created"`
	Replies []dialogs.Reply `json:"replies,omitempty"`
	// PurgeSensitive: once accepted, delete the Sensitive messages sent
	// to this citizen so far (this one included).
	PurgeSensitive bool `json:"purge_sensitive,omitempty"`
	// Prompt: the replies carry a check-in prompt whose delivery the engine
	// must hear of (dialogs.KindPromptDelivered).
	Prompt bool `json:"prompt,omitempty"`
	// Urgent: the SOS flow; sent first and never dropped as stale.
	Urgent bool `json:"urgent,omitempty"`
	// Scheduled: produced by a timer or a roll call.
	Scheduled bool `json:"scheduled,omitempty"`
}

// Sensitive reports whether any reply reveals the duress feature.
func (it SendItem) Sensitive() bool {
	for _, r := range it.Replies {
		if r.Sensitive {
			return true
		}
	}
	return false
}

// SendAck settles one SendItem: it was accepted by the platform (or can
// never be), so it is removed from the queue.
type SendAck struct {
	Seq     uint64
	UserKey string
	// Remember are purge rows to add: the ids of Sensitive messages just
	// sent, to delete later.
	Remember []PurgeRow
	// Purge: the item asked for PurgeSensitive; every purge row of the
	// citizen becomes due at PurgeAt.
	Purge   bool
	PurgeAt time.Time
	// Accepted: the platform took the item (not: it can never be sent).
	// A roll call counts its prompt as reaching the member only then.
	Accepted bool
}

// PurgeRow is one message to delete.
type PurgeRow struct {
	// Key is the row's key in the purge list, set by DuePurges.
	Key     []byte    `json:"-"`
	UserKey string    `json:"user"`
	Channel string    `json:"channel"`
	Address string    `json:"address"`
	MsgID   string    `json:"msg_id"`
	Due     time.Time `json:"due"`
	// Deadline is the last moment the platform allows the delete; a row
	// past it is dropped undone.
	Deadline time.Time `json:"deadline"`
	// Inbound: the citizen's own message (not one the bot sent).
	Inbound bool `json:"inbound,omitempty"`
	Tries   int  `json:"tries,omitempty"`
}
