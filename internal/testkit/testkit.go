// Package testkit builds the real parts tests run against — the locale
// bundle, the engine on the built-in configuration, a bbolt store in a
// temporary directory, the runner — so every package's tests set them up
// the same way. Only tests import it.
package testkit

import (
	"path/filepath"
	"testing"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// Pepper is the fixed pepper of tests, so keys and hashes are reproducible.
var Pepper = []byte("testkit-pepper-0123456789abcdef0123456789")

// Engine is the engine on the real locales and the built-in configuration.
func Engine(tb testing.TB) *dialogs.Engine {
	tb.Helper()
	cat, err := locales.Load()
	if err != nil {
		tb.Fatal(err)
	}
	cfg := config.Default()
	return &dialogs.Engine{Catalog: cat, Directory: cfg.Directory(), Policy: cfg.Policy(), Pepper: Pepper}
}

// AuditKey is the fixed audit key of tests (boltstore.Options.AuditKey), so
// tests can read the sealed reasons of the audit trail.
var AuditKey = []byte("testkit-audit-key-0123456789abcd")

// Store opens a store in a new temporary directory, closed after the test.
func Store(tb testing.TB) *boltstore.Store {
	tb.Helper()
	s, err := boltstore.OpenWith(filepath.Join(tb.TempDir(), "checkinbot.db"), boltstore.Options{AuditKey: AuditKey})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// Runner is a runner over Engine and Store with no reply floor: tests of
// behaviour, not of timing.
func Runner(tb testing.TB) *bot.Runner {
	tb.Helper()
	r := bot.NewRunner(Engine(tb), Store(tb), Pepper)
	r.ReplyFloor = 0
	return r
}

// StoreAt opens the store file at path (a restart of the same data file),
// closed after the test; closing it earlier is harmless.
func StoreAt(tb testing.TB, path string) *boltstore.Store {
	tb.Helper()
	s, err := boltstore.OpenWith(path, boltstore.Options{AuditKey: AuditKey})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// RunnerOn is a runner over Engine and the given store, with no reply
// floor: what a restarted process builds on its old data file.
func RunnerOn(tb testing.TB, s *boltstore.Store) *bot.Runner {
	tb.Helper()
	r := bot.NewRunner(Engine(tb), s, Pepper)
	r.ReplyFloor = 0
	return r
}
