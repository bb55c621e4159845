package boltstore_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
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

// TestConformanceSealed runs the same suite on an encrypted store: sealing
// changes nothing a caller sees.
func TestConformanceSealed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openSealed(t) })
}

// testKeyring is a fixed master key for tests (seal.GenerateMasterKey in
// production).
func testKeyring(t testing.TB, b byte) *seal.Keyring {
	t.Helper()
	m, err := seal.NewMasterKey(bytes.Repeat([]byte{b}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return &seal.Keyring{Current: m}
}

// openSealed opens a new encrypted store in a temp dir, closed after the test.
func openSealed(t testing.TB) *boltstore.Store {
	t.Helper()
	s, err := boltstore.OpenWith(filepath.Join(t.TempDir(), "checkinbot.db"),
		boltstore.Options{Keyring: testKeyring(t, 1), AuditKey: storetest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
