package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	bolt "go.etcd.io/bbolt"
)

// testMasterKey is a CHECKIN_MASTER_KEY as an operator would set it.
var testMasterKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x42}, 32))

// auditFile writes a data file with 6 audited events through the store,
// keyed as serve keys it from masterKey ("" for no key), and returns its
// audit head.
func auditFile(t *testing.T, path, masterKey string) store.AuditHead {
	t.Helper()
	key, err := auditKey(func(string) string { return masterKey })
	if err != nil {
		t.Fatal(err)
	}
	s, err := boltstore.OpenWith(path, boltstore.Options{AuditKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := range 6 {
		key := store.UserKey([]byte("pepper"), "telegram", string(rune('a'+i%2)))
		if _, err := s.Process(key, "", now.Add(time.Duration(i)*time.Minute), func(prev dialogs.State, _ bool) dialogs.Result {
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
			want: "not the key it was written with"},
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
			t.Setenv(EnvMasterKey, tc.verifyKey)
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
	t.Setenv(EnvMasterKey, testMasterKey)
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
