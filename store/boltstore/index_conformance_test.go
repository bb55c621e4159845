package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/storetest"
)

var (
	_ storetest.IndexStore = (*boltstore.Store)(nil)
	_ bot.RollCallStore    = (*boltstore.Store)(nil)
)

// TestIndexConformance runs the registrant-index and roll-call suite
// against bbolt in a temp dir.
func TestIndexConformance(t *testing.T) {
	storetest.RunIndex(t, func(t *testing.T) storetest.IndexStore {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "checkinbot.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestIndexConformanceSealed runs the index and roll-call suite on an
// encrypted store.
func TestIndexConformanceSealed(t *testing.T) {
	storetest.RunIndex(t, func(t *testing.T) storetest.IndexStore { return openSealed(t) })
}
