package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/storetest"
)

// The bbolt engine serves the embassy API.
var (
	_ api.Store           = (*boltstore.Store)(nil)
	_ storetest.CaseStore = (*boltstore.Store)(nil)
)

// TestCaseConformance runs the embassy API's storage conformance tests
// against bbolt in a temp dir.
func TestCaseConformance(t *testing.T) {
	storetest.RunCases(t, func(t *testing.T) storetest.CaseStore {
		s, err := boltstore.OpenWith(filepath.Join(t.TempDir(), "checkinbot.db"), boltstore.Options{AuditKey: storetest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestCaseConformanceSmallWindow runs the same suite with the type and
// severity filters looking at two cases per call, so their short pages
// and cursors are exercised on every filter of the model test.
func TestCaseConformanceSmallWindow(t *testing.T) {
	defer boltstore.SetCaseScanWindow(2)()
	TestCaseConformance(t)
}
