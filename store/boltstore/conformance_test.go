package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/storetest"
	"github.com/checkinbot/checkinbot/webhook"
)

// The bbolt engine implements every port it is used through: the runner's
// and scheduler's (bot.Store), the deliverer's (webhook.Outbox) and the
// whole surface the conformance suite pins (storetest.Store).
var (
	_ bot.Store       = (*boltstore.Store)(nil)
	_ webhook.Outbox  = (*boltstore.Store)(nil)
	_ storetest.Store = (*boltstore.Store)(nil)
)

// TestConformance runs the storage conformance suite against bbolt in a
// temp dir.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := boltstore.OpenWith(filepath.Join(t.TempDir(), "checkinbot.db"), boltstore.Options{AuditKey: storetest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
