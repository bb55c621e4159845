package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// testMasterKey is a CHECKIN_MASTER_KEY as an operator would set it.
var testMasterKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x42}, 32))

// auditFile writes a data file with 6 audited events through the store,
// keyed as serve keys it from masterKey ("" for no key), and returns its
// audit head.
func auditFile(t *testing.T, path, masterKey string) store.AuditHead {
	t.Helper()
	return writeAudited(t, path, masterKey, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), 6)
}

// writeAudited opens the data file at path as serve does with masterKey as
// CHECKIN_MASTER_KEY ("" for none), writes n audited events from start and
// returns the audit head.
func writeAudited(t *testing.T, path, masterKey string, start time.Time, n int) store.AuditHead {
	t.Helper()
	ring, err := config.LoadKeyring(nil, func(name string) string {
		if name == config.EnvMasterKey {
			return masterKey
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		key := store.UserKey([]byte("pepper"), "telegram", string(rune('a'+i%2)))
		if _, err := s.Process(key, "", start.Add(time.Duration(i)*time.Minute), func(prev dialogs.State, _ bool) dialogs.Result {
			r := dialogs.Result{State: prev, Audit: []string{"checkin"}}
			r.State.Key, r.State.Status = key, dialogs.StatusActive
			return r
		}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.AuditHead()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// rechainFrom edits entry seq's action and recomputes its hash and every
// later entry's link and hash, and the recorded head: what someone holding
// the file but not the key can do. Only the MACs can tell. It reads the
// entries by the layouts docs/storage.md gives (JSON, and the compact
// form), not through boltstore: an independent reading of the format.
func rechainFrom(t *testing.T, path string, seq uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b, prev := tx.Bucket([]byte("audit")), ""
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			n := binary.BigEndian.Uint64(k)
			if v[0] == 0x01 { // compact
				v = bytes.Clone(v)
				if n == seq {
					v[1] = 4 // service.resumed
				}
				h := compactHeaderLen(v)
				sealed := v[h+16:]
				if v[2]&4 != 0 { // keyed: a MAC, then the sealed reason
					sealed = v[h+32:]
				}
				sum := sha256.New()
				sum.Write([]byte("checkinbot audit compact\x00"))
				sum.Write(k)
				sum.Write([]byte{byte(len(prev))})
				sum.Write([]byte(prev))
				sum.Write(v[:h])
				sum.Write(sealed)
				full := sum.Sum(nil)
				if n >= seq {
					copy(v[h:h+16], full)
					if err := b.Put(k, v); err != nil {
						return err
					}
				}
				prev = hex.EncodeToString(full)
				continue
			}
			var e store.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if e.Seq >= seq {
				if e.Seq == seq {
					e.Action = store.AuditServiceResumed
				}
				e.Prev = prev
				mac := e.MAC
				e.Hash, e.MAC, e.Checkpoint = "", "", ""
				raw, _ := json.Marshal(e)
				sum := sha256.Sum256(raw)
				e.Hash, e.MAC = hex.EncodeToString(sum[:]), mac
				nv, _ := json.Marshal(e)
				if err := b.Put(k, nv); err != nil {
					return err
				}
			}
			prev = e.Hash
		}
		return tx.Bucket([]byte("meta")).Put([]byte("audit_head"), []byte(prev))
	}); err != nil {
		t.Fatal(err)
	}
}

// compactHeaderLen is the length of a compact entry's clear part (version
// to subject): 13 bytes and the subject (none, 10 packed bytes, or a
// length byte and the bytes).
func compactHeaderLen(v []byte) int {
	switch v[2] & 3 {
	case 1:
		return 13 + 10
	case 2:
		return 13 + 1 + int(v[13])
	}
	return 13
}

// TestAuditVerifyAfterRotation: a trail written before and after `keys
// rotate` (the real offline rotation) verifies with the new master key
// alone, MACs of every entry checked; an entry from before the rotation,
// edited and re-chained, is still named; a wrong key is refused naming the
// key the file expects.
func TestAuditVerifyAfterRotation(t *testing.T) {
	oldKey, newKey := testMasterKey, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	wrongKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	oldM, _ := seal.ParseMasterKey(oldKey)
	newM, _ := seal.ParseMasterKey(newKey)
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		tamper uint64 // entry to edit and re-chain (0: none)
		key    string // CHECKIN_MASTER_KEY of the verification
		code   int
		want   string
	}{
		{name: "new key alone", key: newKey, want: "audit trail ok: 10 entries, head 10:"},
		{name: "every MAC checked", key: newKey, want: "MACs checked on 10 entries"},
		{name: "edited before the rotation", key: newKey, tamper: 2, code: 1, want: "audit entry 2: edited"},
		{name: "edited after the rotation", key: newKey, tamper: 8, code: 1, want: "audit entry 8: edited"},
		{name: "old key", key: oldKey, code: 1, want: "the file expects master key " + newM.ID() + "; the key given is " + oldM.ID()},
		{name: "wrong key", key: wrongKey, code: 1, want: "the file expects master key " + newM.ID()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "checkinbot.db")
			writeAudited(t, path, oldKey, start, 6)
			t.Setenv(config.EnvMasterKey, newKey)
			t.Setenv(config.EnvMasterKeyOld, oldKey)
			if code, out, errOut := runMain(t, "", "keys", "rotate", "--data-dir", dir); code != 0 {
				t.Fatalf("keys rotate: exit %d: %s %s", code, out, errOut)
			}
			t.Setenv(config.EnvMasterKeyOld, "")
			writeAudited(t, path, newKey, start.Add(time.Hour), 4)
			if tc.tamper > 0 {
				rechainFrom(t, path, tc.tamper)
			}
			t.Setenv(config.EnvMasterKey, tc.key)
			var stdout, stderr bytes.Buffer
			code := run([]string{"audit", "verify", path}, nil, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d; output does not say %q:\n%s", code, tc.code, tc.want, out)
			}
			if strings.Contains(out, "goroutine") || strings.Contains(out, tc.key) {
				t.Errorf("output has a stack trace or repeats the key:\n%s", out)
			}
		})
	}
}

// editEntry changes entry seq's action in the raw file, as someone holding
// only the file would.
func editEntry(t *testing.T, path string, seq uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k := make([]byte, 8)
	k[7] = byte(seq)
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		if v := bytes.Clone(b.Get(k)); v[0] == 0x01 { // compact: its action code
			v[1] = 4
			return b.Put(k, v)
		}
		var e map[string]any
		if err := json.Unmarshal(b.Get(k), &e); err != nil {
			return err
		}
		e["action"] = "nothing.happened"
		v, _ := json.Marshal(e)
		return b.Put(k, v)
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyCommand runs `checkinbot audit verify` as an operator
// would, on real data files, and checks the exit status and the line.
func TestAuditVerifyCommand(t *testing.T) {
	for _, tc := range []struct {
		name      string
		writeKey  string // CHECKIN_MASTER_KEY of the serve that wrote the file
		verifyKey string // of the verification
		edit      uint64 // entry to edit (0: none)
		args      func(path string, h store.AuditHead) []string
		code      int
		want      string
	}{
		{name: "ok with key", writeKey: testMasterKey, verifyKey: testMasterKey, code: 0, want: "audit trail ok: 6 entries, head 6:"},
		{name: "ok with key says MACs", writeKey: testMasterKey, verifyKey: testMasterKey, code: 0, want: "MACs checked on 6 entries"},
		{name: "ok without key says so", writeKey: testMasterKey, code: 0, want: "hash chain only, MACs not checked"},
		{name: "expected head reached", writeKey: testMasterKey, verifyKey: testMasterKey, code: 0, want: "reaches the expected head 6:",
			args: func(p string, h store.AuditHead) []string { return []string{"--expect-head", h.String(), p} }},
		{name: "edited", writeKey: testMasterKey, verifyKey: testMasterKey, edit: 3, code: 1, want: "audit entry 3: edited"},
		{name: "edited, no key", writeKey: testMasterKey, edit: 3, code: 1, want: "audit entry 3: edited"},
		{name: "wrong key", writeKey: testMasterKey, verifyKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)), code: 1,
			want: "the file expects master key 64df3e26830edb24"},
		{name: "written without key, verified with one", verifyKey: testMasterKey, code: 1, want: "audit entry 1: unsigned"},
		{name: "expected head beyond the trail", writeKey: testMasterKey, verifyKey: testMasterKey, code: 1, want: "audit entry 7: truncated or rolled back",
			args: func(p string, h store.AuditHead) []string {
				return []string{"--expect-head", "9:" + strings.Repeat("ab", 32), p}
			}},
		{name: "malformed expected head", writeKey: testMasterKey, code: 2, want: "want SEQ:HASH",
			args: func(p string, _ store.AuditHead) []string { return []string{"--expect-head", "six", p} }},
		{name: "malformed master key", writeKey: testMasterKey, verifyKey: "not-a-key", code: 1, want: "CHECKIN_MASTER_KEY: not 32 bytes"},
		{name: "no file", code: 1, want: "no-such.db",
			args: func(p string, _ store.AuditHead) []string {
				return []string{filepath.Join(filepath.Dir(p), "no-such.db")}
			}},
		{name: "no arguments", code: 2, want: "usage: checkinbot audit verify",
			args: func(string, store.AuditHead) []string { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "checkinbot.db")
			head := auditFile(t, path, tc.writeKey)
			if tc.edit > 0 {
				editEntry(t, path, tc.edit)
			}
			args := []string{path}
			if tc.args != nil {
				args = tc.args(path, head)
			}
			t.Setenv(config.EnvMasterKey, tc.verifyKey)
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"audit", "verify"}, args...), nil, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want %d; output does not say %q:\n%s", code, tc.code, tc.want, out)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine") || strings.Contains(out, tc.verifyKey+"\n") && tc.verifyKey != "" {
				t.Errorf("output has a stack trace or repeats the key:\n%s", out)
			}
		})
	}
}

// TestAuditVerifyDocCommands runs every `checkinbot audit verify` line of
// docs/operations.md's "Verifying the audit trail" on a real file, with
// the documented flags, the file's path and head in place of the
// example's: the documented syntax works and a clean file passes.
func TestAuditVerifyDocCommands(t *testing.T) {
	md := readFile(t, filepath.Join(repoRoot, "docs", "operations.md"))
	_, section, ok := strings.Cut(md, "## Verifying the audit trail")
	if !ok {
		t.Fatal(`docs/operations.md has no section "Verifying the audit trail"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	head := auditFile(t, path, testMasterKey)
	t.Setenv(config.EnvMasterKey, testMasterKey)
	headArg := regexp.MustCompile(`^\d+:[0-9a-f]{64}$`)
	ran := 0
	for _, block := range shellBlocks(section) {
		for _, line := range strings.Split(block, "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "checkinbot" || f[1] != "audit" || f[2] != "verify" {
				continue
			}
			args := f[1:]
			for i, a := range args {
				if headArg.MatchString(a) {
					args[i] = head.String()
				}
			}
			args[len(args)-1] = path
			var stdout, stderr bytes.Buffer
			if code := run(args, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "audit trail ok") {
				t.Errorf("%s: exit %d\n%s%s", line, code, stdout.String(), stderr.String())
			}
			ran++
		}
	}
	if ran < 2 {
		t.Errorf("ran %d documented commands, want both (plain and --expect-head)", ran)
	}
	// The log line the section shows is the one serve writes.
	if !strings.Contains(section, `msg="audit head" seq=`) || !strings.Contains(section, "expect_head=") {
		t.Error("the section does not show the start log line serve writes")
	}
}
