package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// The audit key across master-key rotations and the upgrade from the
// legacy, master-key-derived audit key (audit.go).

func masterKey(t testing.TB, b byte) *seal.MasterKey {
	t.Helper()
	m, err := seal.NewMasterKey(bytes.Repeat([]byte{b}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// appendChecked opens path with ring and writes n audited events from at;
// with legacy, the store signs as the binaries before v2 did (the audit
// key derived from the master key, untagged MACs).
func appendChecked(t testing.TB, path string, ring *seal.Keyring, legacy bool, at time.Time, n int) {
	t.Helper()
	s, err := OpenWith(path, Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if legacy {
		s.audit = legacyAuditKeys(&seal.Keyring{Current: ring.Current})[0]
	}
	for i := range n {
		k := fmt.Sprintf("k%d", i%3)
		if _, err := s.Process(k, "", at.Add(time.Duration(i)*time.Minute), result(func(st *dialogs.State, r *dialogs.Result) {
			st.Key, st.Status = k, dialogs.StatusActive
			r.Audit = []string{"checkin"}
		})); err != nil {
			t.Fatal(err)
		}
	}
}

func rotate(t testing.TB, path string, from, to *seal.MasterKey) {
	t.Helper()
	s, err := OpenWith(path, Options{Keyring: &seal.Keyring{Current: to, Old: []*seal.MasterKey{from}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.RotateMasterKey(); err != nil {
		t.Fatal(err)
	}
}

func copyToTemp(t *testing.T, from string) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

// TestAuditKeySurvivesRotations: entries written under three master keys
// in turn (two rotations) verify with the last key alone, every MAC
// checked, and every reason opens; with only an earlier key the file is
// refused naming the key it expects.
func TestAuditKeySurvivesRotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	keys := []*seal.MasterKey{masterKey(t, 1), masterKey(t, 2), masterKey(t, 3)}
	for i, m := range keys {
		if i > 0 {
			rotate(t, path, keys[i-1], m)
		}
		appendChecked(t, path, &seal.Keyring{Current: m}, false, t0.Add(time.Duration(i)*time.Hour), 3)
	}
	last := &seal.Keyring{Current: keys[2]}
	rep, err := VerifyAuditFile(path, Options{Keyring: last}, nil)
	if err != nil || rep.Entries != 9 || rep.Signed != 9 || rep.Legacy+rep.LegacyUnchecked+rep.Unsigned != 0 {
		t.Fatalf("the last key alone: %+v, %v", rep, err)
	}
	s, err := OpenWith(path, Options{Keyring: last})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := s.Audit()
	s.Close()
	if err != nil || len(entries) != 9 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	for _, e := range entries {
		if e.Reason != "checkin" || !strings.HasPrefix(e.MAC, macV2) {
			t.Errorf("entry %d: reason %q, MAC %.5s…", e.Seq, e.Reason, e.MAC)
		}
	}
	for _, m := range keys[:2] {
		_, err := VerifyAuditFile(path, Options{Keyring: &seal.Keyring{Current: m}}, nil)
		var fe *store.FileError
		if !errors.As(err, &fe) || fe.Kind != store.ErrWrongKey || !strings.Contains(err.Error(), "expects master key "+keys[2].ID()) {
			t.Errorf("verify with the earlier key %s: %v", m.ID(), err)
		}
	}
}

// TestAuditLegacyMACs: a file written before v2 (MACs from the master
// key) is re-signed at its first open with the v2 key; after a rotation
// the new key alone verifies it (legacy entries through the chain), both
// keys check every MAC, and any tampering is still caught — named where
// the key that can name it is given.
func TestAuditLegacyMACs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	oldM, newM := masterKey(t, 1), masterKey(t, 2)
	oldRing, newRing := &seal.Keyring{Current: oldM}, &seal.Keyring{Current: newM}
	both := &seal.Keyring{Current: newM, Old: []*seal.MasterKey{oldM}}
	appendChecked(t, path, oldRing, true, t0, 4)

	if rep, err := VerifyAuditFile(path, Options{Keyring: oldRing}, nil); err != nil || rep.Signed != 4 || rep.Legacy != 4 {
		t.Fatalf("a legacy file with its key: %+v, %v", rep, err)
	}
	appendChecked(t, path, oldRing, false, t0, 0) // the upgraded binary's first start
	rotate(t, path, oldM, newM)
	if rep, err := VerifyAuditFile(path, Options{Keyring: newRing}, nil); err != nil || rep.LegacyUnchecked != 4 || rep.Signed != 0 {
		t.Fatalf("rotated right after the upgrade, the new key alone: %+v, %v", rep, err)
	}
	appendChecked(t, path, newRing, false, t0.Add(time.Hour), 3)
	if rep, err := VerifyAuditFile(path, Options{Keyring: newRing}, nil); err != nil || rep.Entries != 7 || rep.Signed != 3 || rep.LegacyUnchecked != 4 {
		t.Fatalf("the new key alone: %+v, %v", rep, err)
	}
	if rep, err := VerifyAuditFile(path, Options{Keyring: both}, nil); err != nil || rep.Signed != 7 || rep.Legacy != 4 || rep.LegacyUnchecked != 0 {
		t.Fatalf("both keys: %+v, %v", rep, err)
	}
	s, err := OpenWith(path, Options{Keyring: both})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := s.Audit()
	s.Close()
	if err != nil || len(entries) != 7 || entries[0].Reason != "checkin" || entries[6].Reason != "checkin" {
		t.Fatalf("reasons with both keys: %v %v", entries, err)
	}

	stripTag := func(seq uint64) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			e := getEntry(tx, seq)
			if !e.compact {
				e.MAC = strings.TrimPrefix(e.MAC, macV2)
				return putEntry(tx, seq, e)
			}
			// A compact entry's MAC has no tag to strip: the editor
			// rewrites it as a JSON entry with an untagged MAC, and
			// re-chains the rest.
			return rechain(seq, func(e *auditRec) {
				if e.Seq == seq {
					e.compact, e.MAC = false, strings.TrimPrefix(e.MAC, macV2)
				}
			})(tx)
		}
	}
	stripHeadTag := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		hm := meta.Get(keyAuditHeadMAC)
		return meta.Put(keyAuditHeadMAC, append(bytes.Clone(hm[:16]), strings.TrimPrefix(string(hm[16:]), macV2)...))
	}
	for _, tc := range []struct {
		name    string
		tamper  func(tx *bolt.Tx) error
		ring    *seal.Keyring
		seq     uint64
		problem store.AuditProblem
	}{
		{"legacy entry edited", edit(2), newRing, 2, store.AuditEdited},
		{"legacy entry edited and re-chained, new key", editRechain(2), newRing, 5, store.AuditEdited},
		{"legacy entry edited and re-chained, both keys", editRechain(2), both, 2, store.AuditEdited},
		{"v2 entry edited and re-chained", editRechain(6), newRing, 6, store.AuditEdited},
		{"v2 tag stripped", stripTag(6), newRing, 6, store.AuditEdited},
		{"v2 tags stripped everywhere", func(tx *bolt.Tx) error {
			for seq := uint64(5); seq <= 7; seq++ {
				if err := stripTag(seq)(tx); err != nil {
					return err
				}
			}
			return stripHeadTag(tx)
		}, newRing, 8, store.AuditTruncated},
		{"head tag stripped", stripHeadTag, both, 8, store.AuditTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := copyToTemp(t, path)
			boltFile(t, p, tc.tamper)
			_, err := VerifyAuditFile(p, Options{Keyring: tc.ring}, nil)
			var ae *store.AuditError
			if !errors.As(err, &ae) || ae.Seq != tc.seq || ae.Problem != tc.problem {
				t.Fatalf("got %v, want entry %d %s", err, tc.seq, tc.problem)
			}
		})
	}
}

// BenchmarkVerifyAuditFile verifies one 500-entry trail, same binary and
// run, with the key each way can have: the v2 key from the keyring (the
// service key unwrapped, then one HMAC per entry); a legacy trail with its
// master key given (an HMAC per entry, the v2 one tried first); and the
// same without it (hash chain only, the head's MAC checked).
func BenchmarkVerifyAuditFile(b *testing.B) {
	oldM, newM := masterKey(b, 1), masterKey(b, 2)
	dir := b.TempDir()
	v2, legacy := filepath.Join(dir, "v2.db"), filepath.Join(dir, "legacy.db")
	appendChecked(b, v2, &seal.Keyring{Current: newM}, false, t0, 500)
	appendChecked(b, legacy, &seal.Keyring{Current: oldM}, true, t0, 500)
	rotate(b, legacy, oldM, newM) // its first open re-signs the head with v2
	for _, bc := range []struct {
		name, path string
		ring       *seal.Keyring
	}{
		{"v2", v2, &seal.Keyring{Current: newM}},
		{"legacy-key-given", legacy, &seal.Keyring{Current: newM, Old: []*seal.MasterKey{oldM}}},
		{"legacy-key-not-given", legacy, &seal.Keyring{Current: newM}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if rep, err := VerifyAuditFile(bc.path, Options{Keyring: bc.ring}, nil); err != nil || rep.Entries != 500 {
					b.Fatal(rep, err)
				}
			}
		})
	}
}
