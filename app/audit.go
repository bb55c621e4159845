package app

import (
	"context"
	"time"
)

// The audit trail's operational side: its head is logged at every start
// (and exported as metrics by ops) so it is anchored outside the data
// file, and entries past audit.retention are compacted hourly.

// AuditCompactEvery is how often Run compacts the audit trail.
const AuditCompactEvery = time.Hour

// logAuditHead writes the trail's head to the log: `checkinbot audit
// verify --expect-head SEQ:HASH` takes it to detect a trail cut short or a
// file rolled back to an older copy. It names no person.
func (a *App) logAuditHead() {
	h, err := a.Store.AuditHead()
	if err != nil {
		a.log.Error("audit head unreadable", "err", err)
		return
	}
	a.log.Info("audit head", "seq", h.Seq, "hash", h.Hash, "expect_head", h.String())
}

// compactAudit compacts the audit trail at start and then every
// AuditCompactEvery until ctx ends. Each batch is its own short
// transaction; a failure is logged and retried at the next round.
func (a *App) compactAudit(ctx context.Context) {
	keep := a.opt.Config.AuditRetention()
	t := time.NewTicker(AuditCompactEvery)
	defer t.Stop()
	for {
		if n, err := a.Store.CompactAudit(a.Runner.Now().Add(-keep)); err != nil {
			a.log.Error("audit trail not compacted", "err", err)
		} else if n > 0 {
			a.log.Info("audit trail compacted", "entries", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
