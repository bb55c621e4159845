package boltstore

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The compact audit entry (audit_compact.go).

// fixtureHead is the head of testdata/audit-json-v2.db.gz, a file written
// by the binary before the compact form (every entry JSON): 12 audited
// events keyed with testAuditKey, the first 4 compacted into a
// checkpoint, then 3 more.
var fixtureHead = store.AuditHead{Seq: 15, Hash: "ba0838bfe43d4ac5a2da571d563d5fb5ebb2afddedcb2f3dd13184c3757b1d27"}

// oldFile unpacks the fixture into a temporary file.
func oldFile(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "audit-json-v2.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// formsOf counts the trail's stored forms.
func formsOf(t *testing.T, path string) (compact, json int) {
	t.Helper()
	boltFile(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			if v[0] == auditCompactV1 {
				compact++
			} else {
				json++
			}
			return nil
		})
	})
	return compact, json
}

// TestAuditOldFileVerifies: a file the previous binary wrote (JSON entries
// and a JSON checkpoint, committed as a fixture) verifies against the head
// that binary reported, opens, has its reasons read, takes compact entries
// after its JSON ones — the mixed chain verifies, through `check` too —
// compacts across the boundary, and a tamper on either side of it is named.
func TestAuditOldFileVerifies(t *testing.T) {
	path := oldFile(t)
	if c, j := formsOf(t, path); c != 0 || j != 12 {
		t.Fatalf("the fixture has %d compact and %d JSON entries, want 0 and 12", c, j)
	}
	rep, err := VerifyAuditFile(path, Options{AuditKey: testAuditKey}, &fixtureHead)
	if err != nil || rep.Signed != 12 || rep.Checkpoint != 4 {
		t.Fatalf("the old file: %+v, %v", rep, err)
	}
	head := writeTrail(t, path, testAuditKey, 6, t0.Add(20*time.Hour), rand.New(rand.NewPCG(5, 5)))
	if c, j := formsOf(t, path); c != 6 || j != 12 {
		t.Fatalf("after 6 more events: %d compact and %d JSON entries, want 6 and 12", c, j)
	}
	rep, err = VerifyAuditFile(path, Options{AuditKey: testAuditKey}, &head)
	if err != nil || rep.Signed != 18 || rep.Head != head {
		t.Fatalf("the mixed trail: %+v, %v", rep, err)
	}
	// The old head is still on the chain: --expect-head from before the
	// upgrade passes.
	if _, err := VerifyAuditFile(path, Options{AuditKey: testAuditKey}, &fixtureHead); err != nil {
		t.Fatalf("the old head on the mixed trail: %v", err)
	}
	s, err := OpenWith(path, Options{AuditKey: testAuditKey})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := s.Audit()
	if err != nil || len(entries) != 18 {
		t.Fatalf("Audit: %d entries, %v", len(entries), err)
	}
	for i, e := range entries[1:] { // the checkpoint has no reason
		if e.Reason == "" || e.Hash == "" || e.Prev != entries[i].Hash {
			t.Errorf("entry %d: reason %q, prev %.8s, hash %.8s (previous hash %.8s)", e.Seq, e.Reason, e.Prev, e.Hash, entries[i].Hash)
		}
	}
	if entries[len(entries)-1].Hash != head.Hash {
		t.Errorf("the last entry's hash %s is not the head %s", entries[len(entries)-1].Hash, head.Hash)
	}
	s.Close()
	// (The fixture's registrants have test keys, which check lists;
	// the audit chain and head must pass.)
	if rep, err := Check(path); err != nil || rep.Counts["audit"] != 18 || strings.Contains(fmt.Sprint(rep.Problems), "audit") {
		t.Fatalf("check of the mixed file: %+v, %v", rep, err)
	}
	for _, tc := range []struct {
		name   string
		tamper func(tx *bolt.Tx) error
		seq    uint64
	}{
		{"JSON entry edited", edit(14), 14},
		{"compact entry edited", edit(17), 17},
		{"compact entry edited and re-chained", editRechain(16), 16},
		{"JSON entry edited and re-chained", editRechain(15), 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := copyToTemp(t, path)
			boltFile(t, p, tc.tamper)
			_, err := VerifyAuditFile(p, Options{AuditKey: testAuditKey}, nil)
			var ae *store.AuditError
			if !errors.As(err, &ae) || ae.Seq != tc.seq || ae.Problem != store.AuditEdited {
				t.Fatalf("verify = %v, want entry %d edited", err, tc.seq)
			}
		})
	}
	// Compaction past the last JSON entry: the checkpoint carries a
	// compact entry's computed hash and short MAC.
	if n := compactFile(t, path, testAuditKey, t0.Add(22*time.Hour)); n != 13 {
		t.Fatalf("compacted %d entries, want 13 (11 JSON, 2 compact)", n)
	}
	rep, err = VerifyAuditFile(path, Options{AuditKey: testAuditKey}, &head)
	if err != nil || rep.Checkpoint != 17 || rep.Entries != 5 {
		t.Fatalf("after compaction into a compact entry: %+v, %v", rep, err)
	}
	boltFile(t, path, edit(18))
	var ae *store.AuditError
	if _, err := VerifyAuditFile(path, Options{AuditKey: testAuditKey}, nil); !errors.As(err, &ae) || ae.Seq != 18 {
		t.Fatalf("an edit after the new checkpoint: %v", err)
	}
}

// auditReasons are reasons of every shape: none, the engine's actions,
// escalations with real ids and cases, case transitions, labels, non-ASCII
// text, and ones too long for the fixed size.
func auditReasons(rng *rand.Rand) []string {
	evt := func() string { return newEventID() }
	out := []string{"", "checkin", "ladder.1", "registration.updated",
		processReason([]string{"checkin"}, []store.Event{{Type: escalation.TypeDuressTriggered, ID: evt(), CaseID: "case_000001"}}),
		processReason([]string{"sos.raised"}, []store.Event{{Type: escalation.TypeSOSRaised, ID: evt(), CaseID: "case_123456"}}),
		processReason([]string{"ladder.4"}, []store.Event{{Type: escalation.TypeCheckinMissed, ID: evt(), CaseID: "case_000042"}}),
		processReason([]string{"delete"}, []store.Event{{Type: escalation.TypeRegistrationWithdrawn, ID: evt()}}),
		processReason([]string{"checkin", "registration.updated"}, []store.Event{
			{Type: escalation.TypeDuressTriggered, ID: evt(), CaseID: "case_000001"}, {Type: escalation.TypeRegistrationUpdated, ID: evt()}}),
		"case.resolve case_000042 by CHECKIN_API_TOKEN_MY_MEKONG: acked -> resolved",
		"event.ack " + evt() + " by CHECKIN_API_TOKEN_MY_MEKONG_2",
		"service.resumed downtime",
		"ลงทะเบียน กัมพูชา 注册 — ünïcödé",
		strings.Repeat("x", 500),
		strings.Repeat("é", 200),
	}
	for range 30 {
		b := make([]rune, rng.IntN(120))
		for i := range b {
			b[i] = rune(0x20 + rng.IntN(0x3000))
		}
		out = append(out, string(b))
	}
	// Word soup: words, ids (valid, upper-case, cut short), the bytes
	// squeeze uses as codes, invalid UTF-8.
	for range 60 {
		var b strings.Builder
		for range rng.IntN(12) {
			switch rng.IntN(6) {
			case 0:
				b.WriteString(reasonWords[rng.IntN(len(reasonWords))])
			case 1:
				b.WriteString(evt())
			case 2:
				b.WriteString(strings.ToUpper(evt())[:4+rng.IntN(27)])
			case 3:
				b.WriteByte(byte(rng.IntN(0x20)))
			case 4:
				b.WriteByte(byte(0x80 + rng.IntN(0x80)))
			default:
				b.WriteString(" case_00004")
			}
		}
		out = append(out, b.String())
	}
	return out
}

// TestPackReasonRoundTrip: every reason comes back exactly when it fits
// the fixed size squeezed; one that does not fit comes back cut
// at a rune boundary, ending in "…", as valid UTF-8. A check-in with one
// escalation fits.
func TestPackReasonRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for i, reason := range auditReasons(rng) {
		plain := packReason(reason)
		if len(plain) != auditReasonSize {
			t.Fatalf("reason %d packs into %d bytes, not %d", i, len(plain), auditReasonSize)
		}
		got, err := unpackReason(plain)
		if err != nil {
			t.Fatalf("reason %d: %v", i, err)
		}
		if len(squeeze(reason)) <= auditReasonSize-1 {
			if got != reason {
				t.Errorf("reason %d %q came back as %q", i, reason, got)
			}
			continue
		}
		cut, ok := strings.CutSuffix(got, "…")
		if !ok || !strings.HasPrefix(reason, cut) || (utf8.ValidString(reason) && (!utf8.ValidString(got) || len(cut) < 20)) {
			t.Errorf("reason %d (%d bytes) cut to %q", i, len(reason), got)
		}
	}
	for _, r := range auditReasons(rng)[:12] {
		b := squeeze(r)
		if len(b) > auditReasonSize-1 {
			t.Errorf("%q (%d bytes) does not fit: %d bytes encoded", r, len(r), len(b))
		}
		t.Logf("%3d bytes → %2d: %q", len(r), len(b), r)
	}
}

// TestAuditEntrySameSizeWhateverTheReason: every reason above — none, a
// plain check-in, a duress escalation, ones cut — gives entries of one
// stored size, with and without a key, and each reads back; and through
// Process, a duress check-in's entry has the stored size of a plain one.
func TestAuditEntrySameSizeWhateverTheReason(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	reasons := auditReasons(rng)
	for _, key := range [][]byte{testAuditKey, nil} {
		s, err := OpenWith(filepath.Join(t.TempDir(), "checkinbot.db"), Options{AuditKey: key})
		if err != nil {
			t.Fatal(err)
		}
		subject := dialogs.Pseudonym(store.UserKey([]byte("pepper"), "telegram", "7712345678"))
		if err := s.update(func(tx *bolt.Tx) error {
			for _, r := range reasons {
				if err := s.appendAudit(tx, t0, subject, store.AuditRegistrantUpdated, r); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		sizes := map[int]int{}
		s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
				if v[0] != auditCompactV1 {
					t.Errorf("an entry of a real pseudonym was not written compact")
				}
				sizes[len(v)]++
				return nil
			})
		})
		if len(sizes) != 1 {
			t.Errorf("key %v: stored sizes %v: the size tells reasons apart", key != nil, sizes)
		}
		entries, err := s.Audit()
		if err != nil || len(entries) != len(reasons) {
			t.Fatalf("Audit: %d, %v", len(entries), err)
		}
		for i, e := range entries {
			if e.Subject != subject {
				t.Errorf("entry %d: subject %q, want %q", e.Seq, e.Subject, subject)
			}
			if key != nil && e.Reason != reasons[i] && !strings.HasSuffix(e.Reason, "…") {
				t.Errorf("entry %d: reason %q, want %q", e.Seq, e.Reason, reasons[i])
			}
			if key == nil && (e.Reason != "" || len(e.Sealed) != 0 || e.MAC != "") {
				t.Errorf("entry %d without a key keeps a reason or MAC", e.Seq)
			}
		}
		s.Close()
	}
	// Through Process: a duress check-in and a plain one.
	s, err := OpenWith(filepath.Join(t.TempDir(), "checkinbot.db"), Options{AuditKey: testAuditKey})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stored []int
	for i, duress := range []bool{false, true} {
		k := store.UserKey([]byte("pepper"), "telegram", fmt.Sprint(i))
		if _, err := s.Process(k, "", t0, result(func(st *dialogs.State, r *dialogs.Result) {
			st.Key, st.Status, r.Audit = k, dialogs.StatusActive, []string{"checkin"}
			if duress {
				r.Escalations = []dialogs.Escalation{{Type: dialogs.EventDuressTriggered, Severity: dialogs.SeverityCritical,
					EmbassyID: "my-mekong", Case: dialogs.CaseOpen, DoNotContact: true}}
			}
		})); err != nil {
			t.Fatal(err)
		}
	}
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error { stored = append(stored, len(v)); return nil })
	})
	if len(stored) != 2 || stored[0] != stored[1] {
		t.Errorf("stored sizes plain, duress: %v", stored)
	}
}

// TestAuditEntryBytesOnDisk: 20,000 entries of real pseudonyms with a
// key, written as Process writes them (one per transaction, appendBucket),
// take at most 200 bytes each in the audit bucket's pages — bbolt's
// element header and key, the value, and the page space the 0.95 split
// leaves — against ≈ 890 for the JSON form.
func TestAuditEntryBytesOnDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 entries")
	}
	for _, compact := range []bool{true, false} {
		auditCompactWrites = compact
		s, err := OpenWith(filepath.Join(t.TempDir(), "checkinbot.db"), Options{AuditKey: testAuditKey})
		if err != nil {
			t.Fatal(err)
		}
		s.db.NoSync = true
		const n = 20000
		for i := 0; i < n; i += 100 {
			if err := s.update(func(tx *bolt.Tx) error {
				for j := range 100 {
					k := store.UserKey([]byte("pepper"), "telegram", fmt.Sprint(i+j))
					if err := s.appendAudit(tx, t0.Add(time.Duration(i+j)*time.Second), dialogs.Pseudonym(k), store.AuditRegistrantUpdated, "checkin"); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		auditCompactWrites = true
		use, _ := bucketUsage(t, s.db)
		var b bucketUse
		for _, u := range use {
			if u.name == string(bucketAudit) {
				b = u
			}
		}
		per := float64(b.bytes) / n
		t.Logf("compact %v: %d entries in %d pages: %.0f B per entry on disk, leaf fill %.0f%%", compact, b.keys, b.pages, per, 100*b.fill)
		if compact && per > 200 {
			t.Errorf("a compact entry takes %.0f B on disk, want ≤ 200", per)
		}
		if !compact && per < 600 {
			t.Errorf("a JSON entry takes %.0f B on disk: the comparison is off", per)
		}
		s.Close()
	}
}

// TestAuditReasonNotInClear: the compact form squeezes a reason before
// sealing it, so a grep for "duress" would not find it even unsealed.
// This looks for each reason's squeezed bytes — what packReason seals —
// in every stored entry, and wants two entries of
// the same reason sealed to different bytes (a fresh nonce each).
func TestAuditReasonNotInClear(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := OpenWith(path, Options{AuditKey: testAuditKey})
	if err != nil {
		t.Fatal(err)
	}
	k := store.UserKey([]byte("pepper"), "telegram", "7712345678")
	for i := range 4 {
		if _, err := s.Process(k, "", t0.Add(time.Duration(i)*time.Minute), result(func(st *dialogs.State, r *dialogs.Result) {
			st.Key, st.Status, r.Audit = k, dialogs.StatusActive, []string{"checkin"}
			if i%2 == 1 {
				r.Escalations = []dialogs.Escalation{{Type: dialogs.EventDuressTriggered, Severity: dialogs.SeverityCritical,
					EmbassyID: "my-mekong", Case: dialogs.CaseOpen, DoNotContact: true}}
			}
		})); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := s.Audit()
	s.Close()
	if err != nil || len(entries) != 4 || !strings.Contains(entries[1].Reason, escalation.TypeDuressTriggered) {
		t.Fatalf("the test would prove nothing: %+v, %v", entries, err)
	}
	var raw []byte // every stored entry (the file also holds "checkinbot")
	boltFile(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error { raw = append(raw, v...); return nil })
	})
	for _, e := range entries {
		enc := squeeze(e.Reason)
		for _, clear := range [][]byte{[]byte(e.Reason), enc, packReason(e.Reason)[:1+len(enc)]} {
			if len(clear) >= 6 && bytes.Contains(raw, clear) {
				t.Errorf("entry %d: its reason %q is in the file in clear (%x)", e.Seq, e.Reason, clear)
			}
		}
	}
	if bytes.Equal(entries[0].Sealed, entries[2].Sealed) || bytes.Equal(entries[0].Sealed[12:], entries[2].Sealed[12:]) {
		t.Error("two plain check-ins sealed to the same bytes: no fresh nonce, or not sealed")
	}
}

// TestDecodeAuditRefusesDamage: every truncation of a compact entry is
// refused, and with any byte of its clear part or stored hash replaced by
// any value it is refused, or read as another seq (verify: reordered), or
// no longer matches its hash (verify: edited) — never a panic, never an
// entry that passes.
func TestDecodeAuditRefusesDamage(t *testing.T) {
	k, err := newAuditKeys(testAuditKey)
	if err != nil {
		t.Fatal(err)
	}
	e := store.AuditEntry{Seq: 7, At: t0, Subject: "reg_4df5a369cd6a6ed04909", Action: store.AuditCaseUpdated}
	header, ok := compactHeader(e, true)
	if !ok {
		t.Fatal("not compact")
	}
	e.Sealed = k.sealCompact(e.Seq, "case.ack case_000001 by CHECKIN_API_TOKEN_X: open -> acked")
	e.Hash = compactHash(e.Seq, "", header, e.Sealed)
	e.MAC = k.shortMAC(macEntry, e.Hash, e.Seq)
	v := compactValue(header, e.Hash, e.MAC, e.Sealed)
	r, err := decodeAuditAt(7, v)
	if err != nil || r.Subject != e.Subject || r.Action != e.Action || !r.At.Equal(e.At) || r.MAC != e.MAC || !r.chain("") {
		t.Fatalf("the intact entry: %+v, %v", r, err)
	}
	for n := range len(v) {
		if _, err := decodeAuditAt(7, v[:n]); err == nil {
			t.Errorf("the entry cut to %d of %d bytes decodes", n, len(v))
		}
	}
	for i := range len(header) + auditHashShort {
		for b := range 256 {
			w := bytes.Clone(v)
			if w[i] == byte(b) {
				continue
			}
			w[i] = byte(b)
			r, err := decodeAuditAt(7, w)
			if err == nil && r.chain("") && r.Seq == 7 {
				t.Errorf("byte %d set to %#x: the entry still matches its hash", i, b)
			}
		}
	}
}

// TestEveryAuditActionIsCompact: every clear action store/audit.go
// declares (an untyped Audit* string constant, the checkpoint aside) has a
// code in auditActions. An action added without one would still be
// written and verified — as a JSON entry, ≈ 5 times the size.
func TestEveryAuditActionIsCompact(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "audit.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if vs.Type != nil || !ok || lit.Kind != token.STRING || !strings.HasPrefix(name.Name, "Audit") {
					continue
				}
				action, _ := strconv.Unquote(lit.Value)
				found++
				if action != store.AuditCheckpoint && !slices.Contains(auditActions[1:], action) {
					t.Errorf("store.%s (%q) has no compact action code: add it to the end of auditActions", name.Name, action)
				}
			}
		}
	}
	if found < len(auditActions) {
		t.Errorf("found %d actions in store/audit.go, fewer than the %d codes: the parse went wrong", found, len(auditActions)-1)
	}
}
