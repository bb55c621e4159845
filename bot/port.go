package bot

import (
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// Store is what the runner, the scheduler and the outbox need of storage —
// defined here, where it is used (DESIGN §8). *boltstore.Store (bbolt, store/boltstore)
// implements it; a second storage engine implements it too and passes the
// conformance suite in store/storetest, which pins every method's
// behaviour (one transaction per event, ordered due scans, send-queue
// acknowledgements …).
type Store interface {
	// Process and ProcessSend apply one event in one transaction: state,
	// escalations, (ProcessSend) the replies to send, inbound id, audit.
	Process(key, inboundID string, now time.Time, h store.Handler) (store.Outcome, error)
	ProcessSend(key, inboundID string, now time.Time, to *store.Envelope, h store.Handler) (store.Outcome, error)
	Registrant(key string) (dialogs.State, bool, error)

	// The due-time index and service gaps, for the scheduler.
	// DueFirst is the keys of the first n timers due at now, in due
	// order (n <= 0: all of them).
	DueFirst(now time.Time, n int) ([]string, error)
	NextTimer() (time.Time, bool, error)
	LastAlive() (time.Time, bool, error)
	MarkAlive(now time.Time) error
	RecordGap(g store.Gap, embassies []string, now time.Time) ([]escalation.Event, error)

	// The send queue and the purge list, drained after each commit.
	PendingSends(userKey string) ([]store.SendItem, error)
	// UnsentSends pages through the whole queue, skipping (by sequence,
	// before opening the row) what skip names: the periodic resend.
	UnsentSends(cursor []byte, skip func(seq uint64) bool, limit int) ([]store.SendItem, []byte, error)
	StillQueued(userKey string, seq uint64) (bool, error)
	AckSends(acks []store.SendAck) error
	DuePurges(now time.Time) ([]store.PurgeRow, time.Time, error)
	SettlePurges(done, retry []store.PurgeRow) error
}
