package store_test

import (
	"path/filepath"
	"testing"

	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/storetest"
)

// TestConformance runs the storage conformance suite against bbolt in a
// temp dir.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := store.Open(filepath.Join(t.TempDir(), "checkinbot.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
