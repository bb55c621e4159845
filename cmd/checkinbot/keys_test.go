package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
)

// The tests run serve with testMasterKey (audit_test.go): serve refuses to
// start without a master key.

// serve without a master key refuses to start, saying how to make one
// and how to run without; a malformed key is named without being echoed;
// the flag and a key together are a usage error.
func TestServeNeedsAMasterKey(t *testing.T) {
	t.Setenv("CHECKIN_PEPPER", strings.Repeat("p", 40))
	prev := slog.Default() // --insecure-no-encryption marks the default logger
	t.Cleanup(func() { slog.SetDefault(prev) })
	for _, tc := range []struct {
		name, key string
		args      []string
		code      int
		want      []string
	}{
		{"no key", "", nil, 1, []string{"no master key", "CHECKIN_MASTER_KEY", "--insecure-no-encryption"}},
		{"malformed key", "tooshort", nil, 1, []string{"CHECKIN_MASTER_KEY", "base64 or hex"}},
		{"flag and key", testMasterKey, []string{"--insecure-no-encryption"}, 2, []string{"drop one of the two"}},
		{"flag alone", "", []string{"--insecure-no-encryption"}, 1, []string{"no channel is configured"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CHECKIN_MASTER_KEY", tc.key)
			code, _, errOut := runMain(t, "", append([]string{"serve", "--data-dir", t.TempDir()}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("%q lacks %q", errOut, w)
				}
			}
			if tc.key != "" && tc.key != testMasterKey && strings.Contains(errOut, tc.key) {
				t.Errorf("the key is echoed: %s", errOut)
			}
		})
	}
}

// keys rotate --data-dir re-wraps a stopped serve's file: afterwards the
// new key alone opens it and the old one does not.
func TestKeysRotateOffline(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := testMasterKey, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	ring := func(s string) *seal.Keyring {
		m, err := seal.ParseMasterKey(s)
		if err != nil {
			t.Fatal(err)
		}
		return &seal.Keyring{Current: m}
	}
	path := filepath.Join(dir, "checkinbot.db")
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring(oldKey)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Process("someone", "", time.Now(), func(prev dialogs.State, _ bool) dialogs.Result { return dialogs.Result{State: prev} }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	t.Setenv("CHECKIN_MASTER_KEY", newKey)
	t.Setenv("CHECKIN_MASTER_KEY_OLD", oldKey)
	code, out, errOut := runMain(t, "", "keys", "rotate", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "re-wrapped 2 data keys") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring(newKey)}); err != nil {
		t.Fatalf("the new key alone: %v", err)
	} else {
		s.Close()
	}
	if _, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring(oldKey)}); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("the old key alone: %v", err)
	}
	t.Setenv("CHECKIN_MASTER_KEY_OLD", "")
	if code, _, errOut := runMain(t, "", "keys", "rotate"); code != 1 || !strings.Contains(errOut, "CHECKIN_ADMIN_TOKEN") {
		t.Fatalf("online without a token: exit %d %s", code, errOut)
	}
}
