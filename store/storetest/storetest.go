// Package storetest is the conformance suite every storage engine runs:
// Run(t, open) pins the behaviour the runner (bot) and the deliverer
// (webhook) rely on — one transaction per event, duplicate inbound ids,
// the due-time index, case numbering, outbox routing with per-case order,
// attempt outcomes, the send queue and the audit chain — so a second
// engine (a replicated one, say) is tested by the same tests as the bbolt
// store, as testing/fstest.TestFS tests any fs.FS.
//
// An engine's own test calls it:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Store { return mustOpen(t) })
//	}
package storetest

import (
	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/webhook"
)

// Store is what a storage engine implements: the union of the methods the
// runner and the scheduler call (bot), those the deliverer calls
// (webhook.Outbox), and the reads tests and operators inspect it with.
// *boltstore.Store (store/boltstore) is the bbolt implementation; its
// tests assert that it implements Store and run this suite.
//
// Errors: ProcessSend and Process fail with an error wrapping
// store.ErrBadEvent when the handler panics or the registrant's record
// cannot be read (the event will fail again), with any other error when
// the engine cannot write now; either way nothing of the event is kept.
type Store interface {
	// The runner's, the scheduler's and the outbox's port (bot/port.go):
	// one event with all its effects in one transaction, the due-time
	// index and service gaps, the send queue and the purge list.
	bot.Store

	// The deliverer's port.
	webhook.Outbox

	// Reads for tests, checks and the coming embassy API.
	Outbox() ([]escalation.Event, error)
	CaseByID(id string) (escalation.Case, bool, error)
	Pending() ([]escalation.Delivery, error)
	Delivered() ([]escalation.Delivery, error)
	Audit() ([]store.AuditEntry, error)
	VerifyAudit() (int, error)
}
