package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// testAuditKey is the audit key of these tests.
var testAuditKey = bytes.Repeat([]byte{0x5a}, AuditKeySize)

// writeTrail appends n audited events to the file at path (created if
// missing), opened with key, one hour apart from start: events of three
// registrants, every third raising an escalation, the middle one a
// service gap. It returns the head.
func writeTrail(tb testing.TB, path string, key []byte, n int, start time.Time, rng *rand.Rand) store.AuditHead {
	tb.Helper()
	s, err := OpenWith(path, Options{AuditKey: key})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	defer func() { auditCompactWrites = true }()
	for i := range n {
		if trailForm != nil {
			auditCompactWrites = trailForm()
		}
		at := start.Add(time.Duration(i) * time.Hour)
		k := fmt.Sprintf("k%d", rng.IntN(3))
		if i == n/2 {
			if _, err := s.RecordGap(store.Gap{Kind: store.GapDowntime, From: at.Add(-time.Hour), To: at}, []string{"my-mekong"}, at); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		escalate := rng.IntN(3) == 0
		if _, err := s.Process(k, "", at, result(func(st *dialogs.State, r *dialogs.Result) {
			st.Key, st.Status = k, dialogs.StatusActive
			r.Audit = []string{"checkin"}
			if escalate {
				r.Escalations = []dialogs.Escalation{{Type: dialogs.EventSOSRaised, Severity: dialogs.SeverityCritical,
					EmbassyID: "my-mekong", Case: dialogs.CaseOpen}}
			}
		})); err != nil {
			tb.Fatal(err)
		}
	}
	h, err := s.AuditHead()
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// trailForm, when set, says before each event of writeTrail whether its
// entry is written compact (true) or in the JSON form of older versions.
var trailForm func() bool

// compactFile compacts the file's trail with the store's own code.
func compactFile(tb testing.TB, path string, key []byte, before time.Time) int {
	tb.Helper()
	s, err := OpenWith(path, Options{AuditKey: key})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	n, err := s.CompactAudit(before)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// Raw tampering, as someone holding the file but not the key would do it.
// The helpers work on either stored form (JSON or compact) and keep an
// entry in the form it has.

// getEntry reads entry seq as stored, with the hash verify computes for
// it (a compact entry stores only a prefix: its hash is computed along
// the chain from the first entry, right or wrong).
func getEntry(tx *bolt.Tx, seq uint64) auditRec {
	prev := ""
	c := tx.Bucket(bucketAudit).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, err := decodeAuditAt(binary.BigEndian.Uint64(k), v)
		if err != nil {
			panic(err)
		}
		r.chain(prev)
		if r.Seq == seq || binary.BigEndian.Uint64(k) == seq {
			return r
		}
		prev = r.Hash
	}
	panic(fmt.Sprintf("no audit entry %d", seq))
}

// putEntry stores r under seq in its form: a compact entry with the hash
// prefix r.sum (rehash sets it) and MAC it carries.
func putEntry(tx *bolt.Tx, seq uint64, r auditRec) error {
	if !r.compact {
		return putJSON(tx.Bucket(bucketAudit), u64(seq), r.AuditEntry)
	}
	header, ok := compactHeader(r.AuditEntry, r.MAC != "")
	if !ok {
		return fmt.Errorf("entry %d: the compact form cannot carry %+v", seq, r.AuditEntry)
	}
	return tx.Bucket(bucketAudit).Put(u64(seq), compactValue(header, hex.EncodeToString(r.sum), r.MAC, r.Sealed))
}

// rehash recomputes r's hash (and link) after prev, as an editor would.
func rehash(r *auditRec, prev string) {
	if !r.compact {
		r.Prev = prev
		r.Hash = auditHash(r.AuditEntry)
		return
	}
	header, _ := compactHeader(r.AuditEntry, r.MAC != "")
	r.header = header
	r.chain(prev)
	r.sum, _ = hex.DecodeString(r.Hash[:2*auditHashShort])
}

func lastSeq(tx *bolt.Tx) uint64 {
	k, _ := tx.Bucket(bucketAudit).Cursor().Last()
	return binary.BigEndian.Uint64(k)
}

// edit changes an entry's subject without fixing its hash.
func edit(seq uint64) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		e := getEntry(tx, seq)
		e.Subject = "reg_someone_else"
		return putEntry(tx, seq, e)
	}
}

// editRechain changes an entry, then recomputes every hash from it to the
// end and the head, keeping the MACs it cannot compute.
func editRechain(seq uint64) func(tx *bolt.Tx) error {
	return rechain(seq, func(e *auditRec) {
		if e.Seq == seq {
			e.Subject = "reg_someone_else"
		}
	})
}

// rechain applies change to entry seq and every later one, then recomputes
// every hash from seq to the end and the head.
func rechain(seq uint64, change func(e *auditRec)) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		e := getEntry(tx, seq)
		prev := e.Prev
		for s := seq; s <= lastSeq(tx); s++ {
			if s != seq {
				e = getEntry(tx, s)
			}
			change(&e)
			rehash(&e, prev)
			prev = e.Hash
			if err := putEntry(tx, s, e); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyAuditHead, []byte(prev))
	}
}

func remove(seq uint64) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(u64(seq)) }
}

// swap exchanges the stored entries seq and seq+1.
func swap(seq uint64) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		a, c := append([]byte(nil), b.Get(u64(seq))...), append([]byte(nil), b.Get(u64(seq+1))...)
		if err := b.Put(u64(seq), c); err != nil {
			return err
		}
		return b.Put(u64(seq+1), a)
	}
}

// truncate cuts the last n entries off and moves the head back to the new
// last entry, consistently except for the head's MAC.
func truncate(n int) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for range n {
			if err := tx.Bucket(bucketAudit).Delete(u64(lastSeq(tx))); err != nil {
				return err
			}
		}
		last := lastSeq(tx)
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyAuditHead, []byte(getEntry(tx, last).Hash)); err != nil {
			return err
		}
		rec := append([]byte(nil), meta.Get(keyAuditHeadMAC)...)
		binary.BigEndian.PutUint64(rec, last)
		return meta.Put(keyAuditHeadMAC, rec)
	}
}

// stripMACs removes every MAC, the head's included. A compact entry's
// keyed flag is under its hash, so there the whole trail is re-chained
// without MACs and sealed reasons: what only the key can then tell.
func stripMACs(tx *bolt.Tx) error {
	first, _ := tx.Bucket(bucketAudit).Cursor().First()
	if err := rechain(binary.BigEndian.Uint64(first), func(e *auditRec) {
		e.MAC = ""
		if e.compact {
			e.Sealed = nil
		}
	})(tx); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	return meta.Put(keyAuditHeadMAC, append([]byte(nil), meta.Get(keyAuditHeadMAC)[:16]...))
}

// forgeCheckpoint drops entries 1..seq and puts a checkpoint carrying
// entry seq's hash and MAC, as compaction would without the key.
func forgeCheckpoint(seq uint64) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		end := getEntry(tx, seq)
		for s := uint64(1); s <= seq; s++ {
			if err := tx.Bucket(bucketAudit).Delete(u64(s)); err != nil {
				return err
			}
		}
		return putJSON(tx.Bucket(bucketAudit), u64(seq), store.AuditEntry{Seq: seq, At: end.At, Action: store.AuditCheckpoint, Hash: end.Hash, MAC: end.MAC})
	}
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	src, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		tb.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		tb.Fatal(err)
	}
}

// TestAuditVerifyCatchesTampering: on a real data file of 12 entries,
// each row tampers with the raw bbolt file (or compacts it, or rolls it
// back to an older copy) and VerifyAuditFile must name the first bad
// entry and the problem — or, for a clean or compacted file, pass. Rows
// marked limit show what only the key (or --expect-head) can catch: without
// it they pass, which is why the key and the logged head exist.
func TestAuditVerifyCatchesTampering(t *testing.T) {
	const n = 12
	start := t0
	type row struct {
		name    string
		tamper  func(t *testing.T, path string)
		key     []byte
		expect  bool // pass the head from before the tampering as --expect-head
		seq     uint64
		problem store.AuditProblem // "": must verify
	}
	raw := func(fn func(tx *bolt.Tx) error) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { boltFile(t, path, fn) }
	}
	compact := func(t *testing.T, path string) {
		if got := compactFile(t, path, testAuditKey, start.Add(5*time.Hour)); got != 5 {
			t.Fatalf("compacted %d entries, want 5", got)
		}
	}
	rows := []row{
		{name: "clean", key: testAuditKey},
		{name: "clean, no key", key: nil},
		{name: "clean, expected head", key: testAuditKey, expect: true},
		{name: "compacted", tamper: compact, key: testAuditKey, expect: true},
		{name: "compacted twice", tamper: func(t *testing.T, path string) {
			compact(t, path)
			compactFile(t, path, testAuditKey, start.Add(9*time.Hour))
		}, key: testAuditKey, expect: true},
		{name: "edited", tamper: raw(edit(5)), key: testAuditKey, seq: 5, problem: store.AuditEdited},
		{name: "edited, no key", tamper: raw(edit(5)), seq: 5, problem: store.AuditEdited},
		{name: "edited last", tamper: raw(edit(n)), key: testAuditKey, seq: n, problem: store.AuditEdited},
		{name: "edited and rehashed, not re-chained", tamper: raw(func(tx *bolt.Tx) error {
			e := getEntry(tx, 5)
			e.Subject = "reg_someone_else"
			rehash(&e, e.Prev)
			return putEntry(tx, 5, e)
		}), key: testAuditKey, seq: 5, problem: store.AuditEdited},
		// Without the key, a compact entry edited and rehashed shows at
		// the next one, which stores no link to tell which of the two
		// changed (a JSON entry's stored link names the one before).
		{name: "edited and rehashed, not re-chained, no key", tamper: raw(func(tx *bolt.Tx) error {
			e := getEntry(tx, 5)
			e.Subject = "reg_someone_else"
			rehash(&e, e.Prev)
			return putEntry(tx, 5, e)
		}), seq: 6, problem: store.AuditEdited},
		{name: "edited and re-chained", tamper: raw(editRechain(5)), key: testAuditKey, seq: 5, problem: store.AuditEdited},
		{name: "edited and re-chained, no key (limit)", tamper: raw(editRechain(5))},
		{name: "edited and re-chained, no key, expected head", tamper: raw(editRechain(5)), expect: true, seq: n, problem: store.AuditEdited},
		{name: "edited after compaction", tamper: func(t *testing.T, path string) { compact(t, path); boltFile(t, path, edit(8)) },
			key: testAuditKey, seq: 8, problem: store.AuditEdited},
		{name: "deleted", tamper: raw(remove(5)), key: testAuditKey, seq: 5, problem: store.AuditRemoved},
		{name: "deleted, no key", tamper: raw(remove(5)), seq: 5, problem: store.AuditRemoved},
		{name: "deleted first", tamper: raw(remove(1)), key: testAuditKey, seq: 1, problem: store.AuditRemoved},
		{name: "deleted after the checkpoint", tamper: func(t *testing.T, path string) { compact(t, path); boltFile(t, path, remove(6)) },
			key: testAuditKey, seq: 6, problem: store.AuditRemoved},
		{name: "swapped", tamper: raw(swap(5)), key: testAuditKey, seq: 5, problem: store.AuditReordered},
		{name: "swapped, no key", tamper: raw(swap(5)), seq: 5, problem: store.AuditReordered},
		{name: "swapped last two", tamper: raw(swap(n - 1)), key: testAuditKey, seq: n - 1, problem: store.AuditReordered},
		{name: "truncated, head moved back", tamper: raw(truncate(2)), key: testAuditKey, seq: n - 1, problem: store.AuditTruncated},
		{name: "truncated, head moved back, no key (limit)", tamper: raw(truncate(2))},
		{name: "truncated, head moved back, no key, expected head", tamper: raw(truncate(2)), expect: true, seq: n - 1, problem: store.AuditTruncated},
		{name: "truncated, head left", tamper: raw(remove(n)), seq: n, problem: store.AuditTruncated},
		{name: "MACs stripped", tamper: raw(stripMACs), key: testAuditKey, seq: 1, problem: store.AuditUnsigned},
		{name: "checkpoint forged", tamper: raw(forgeCheckpoint(4)), key: testAuditKey, seq: 4, problem: store.AuditUnsigned},
		{name: "checkpoint forged, no key", tamper: raw(forgeCheckpoint(4)), seq: 1, problem: store.AuditRemoved},
		{name: "rolled back to an older copy, expected head", tamper: func(t *testing.T, path string) {
			old := filepath.Join(t.TempDir(), "old.db")
			copyFile(t, path, old)
			writeTrail(t, path, testAuditKey, 3, start.Add(n*time.Hour), rand.New(rand.NewPCG(2, 2)))
			copyFile(t, old, path) // the newer head was logged; the file is the old one
		}, key: testAuditKey, expect: true, seq: n + 1, problem: store.AuditTruncated},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "checkinbot.db")
			head := writeTrail(t, path, testAuditKey, n, start, rand.New(rand.NewPCG(1, 1)))
			if head.Seq != n {
				t.Fatalf("head %v, want seq %d", head, n)
			}
			if tc.tamper != nil {
				tc.tamper(t, path)
			}
			var expect *store.AuditHead
			if tc.expect {
				if tc.name == "rolled back to an older copy, expected head" {
					head = store.AuditHead{Seq: n + 3} // from the log; the hash is never reached
					head.Hash = fmt.Sprintf("%064x", 1)
				}
				expect = &head
			}
			rep, err := VerifyAuditFile(path, Options{AuditKey: tc.key}, expect)
			var ae *store.AuditError
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("verify: %v", err)
			case tc.problem == "":
				limit := strings.HasSuffix(tc.name, "(limit)")
				if rep.Keyed != (tc.key != nil) || (!limit && rep.Head.Seq != n) || (tc.key != nil && rep.Signed == 0) {
					t.Errorf("report %+v", rep)
				}
			case !errors.As(err, &ae):
				t.Fatalf("verify = %+v, %v; want %s at entry %d", rep, err, tc.problem, tc.seq)
			case ae.Seq != tc.seq || ae.Problem != tc.problem:
				t.Errorf("verify: %v; want %s at entry %d", ae, tc.problem, tc.seq)
			default:
				t.Log(ae)
			}
		})
	}
}

// TestAuditVerifyProperty: for generated histories (events, escalations,
// gaps, compactions at random cutoffs, with and without a key; entries
// compact, JSON as older versions wrote them, JSON then compact, or mixed
// at random), the trail verifies; after one random tamper — an edit, a
// deletion, a swap of two neighbours, or the end cut off with the head
// moved back — it fails naming the tampered seq.
func TestAuditVerifyProperty(t *testing.T) {
	runs := 80
	if testing.Short() {
		runs = 10
	}
	for i := range runs {
		rng := rand.New(rand.NewPCG(uint64(i), 77))
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			var key []byte
			if rng.IntN(4) > 0 {
				key = testAuditKey
			}
			// The entries' forms: compact, JSON (a file of an older
			// version), JSON then compact (an upgrade), or mixed at random.
			forms := rng.IntN(4)
			written := 0
			trailForm = func() bool {
				written++
				switch forms {
				case 1:
					return false
				case 2:
					return written > 3
				case 3:
					return rng.IntN(2) == 0
				}
				return true
			}
			defer func() { trailForm = nil }()
			path := filepath.Join(t.TempDir(), "checkinbot.db")
			n := 3 + rng.IntN(40)
			head := writeTrail(t, path, key, n, t0, rng)
			first := uint64(1)
			if rng.IntN(2) == 0 {
				cut := rng.IntN(n)
				if got := compactFile(t, path, key, t0.Add(time.Duration(cut)*time.Hour)); got > 0 {
					first = uint64(got) + 1 // the first entry after the checkpoint
				}
			}
			if more := rng.IntN(5); more > 0 {
				head = writeTrail(t, path, key, more, t0.Add(time.Duration(n)*time.Hour), rng)
			}
			if _, err := VerifyAuditFile(path, Options{AuditKey: key}, &head); err != nil {
				t.Fatalf("untouched trail (%d entries, key %v, forms %d): %v", head.Seq, key != nil, forms, err)
			}
			last := head.Seq
			if first > last {
				t.Skip("everything compacted but the head")
			}
			target := first + uint64(rng.IntN(int(last-first+1)))
			var (
				tamper  func(tx *bolt.Tx) error
				problem store.AuditProblem
				expect  *store.AuditHead
			)
			switch op := rng.IntN(4); {
			case op == 0:
				tamper, problem = edit(target), store.AuditEdited
			case op == 1 && target == last:
				tamper, problem = remove(target), store.AuditTruncated
			case op == 1:
				tamper, problem = remove(target), store.AuditRemoved
			case op == 2 && target < last:
				tamper, problem = swap(target), store.AuditReordered
			case op == 2:
				tamper, problem = swap(target-1), store.AuditReordered
				target--
			default:
				tamper, problem, expect = truncate(int(last-target+1)), store.AuditTruncated, &head
				if target == first && first == 1 {
					tamper, target = truncate(int(last-target)), target+1 // keep one entry
				}
			}
			if target < 1 || (problem == store.AuditReordered && target < first) {
				t.Skip("no neighbour to swap with")
			}
			boltFile(t, path, tamper)
			_, err := VerifyAuditFile(path, Options{AuditKey: key}, expect)
			var ae *store.AuditError
			if !errors.As(err, &ae) || ae.Seq != target || ae.Problem != problem {
				t.Fatalf("after %s of entry %d (of %d, first %d, key %v, forms %d): verify = %v", problem, target, last, first, key != nil, forms, err)
			}
		})
	}
}

// TestAuditReasonsSealedAndPadded: with a key, Audit opens each reason;
// on disk a reason naming an escalation and one naming nothing have the
// same length; without a key no reason is stored at all; and a wrong key
// is refused at verification.
func TestAuditReasonsSealedAndPadded(t *testing.T) {
	for _, key := range [][]byte{testAuditKey, nil} {
		path := filepath.Join(t.TempDir(), "checkinbot.db")
		s, err := OpenWith(path, Options{AuditKey: key})
		if err != nil {
			t.Fatal(err)
		}
		for i, escs := range [][]dialogs.Escalation{nil, {{Type: dialogs.EventDuressTriggered, Severity: dialogs.SeverityCritical,
			EmbassyID: "my-mekong", Case: dialogs.CaseOpen, DoNotContact: true}}} {
			if _, err := s.Process(fmt.Sprint("k", i), "", t0, result(func(st *dialogs.State, r *dialogs.Result) {
				r.Audit, r.Escalations = []string{"checkin"}, escs
			})); err != nil {
				t.Fatal(err)
			}
		}
		entries, err := s.Audit()
		s.Close()
		if err != nil || len(entries) != 2 {
			t.Fatalf("audit %+v, %v", entries, err)
		}
		for _, e := range entries {
			if e.Action != store.AuditRegistrantUpdated {
				t.Errorf("clear action %q", e.Action)
			}
		}
		if key == nil {
			for _, e := range entries {
				if len(e.Sealed) != 0 || e.Reason != "" || e.MAC != "" {
					t.Errorf("without a key an entry keeps a reason or MAC: %+v", e)
				}
			}
			continue
		}
		if entries[0].Reason != "checkin" || !bytes.Contains([]byte(entries[1].Reason), []byte(escalation.TypeDuressTriggered)) {
			t.Errorf("reasons %q, %q", entries[0].Reason, entries[1].Reason)
		}
		if len(entries[0].Sealed) != len(entries[1].Sealed) {
			t.Errorf("sealed lengths %d and %d differ", len(entries[0].Sealed), len(entries[1].Sealed))
		}
		if _, err := VerifyAuditFile(path, Options{AuditKey: bytes.Repeat([]byte{1}, AuditKeySize)}, nil); err == nil {
			t.Error("a wrong key verified")
		}
	}
	if _, err := OpenWith(filepath.Join(t.TempDir(), "x.db"), Options{AuditKey: []byte("short")}); err == nil {
		t.Error("a 5-byte audit key was accepted")
	}
}

// TestCompactAuditBatches: compaction of 2,500 old entries takes three
// transactions of at most compactBatch deletions, keeps the newer entries
// and the head, and leaves a trail that verifies after each batch.
func TestCompactAuditBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := OpenWith(path, Options{AuditKey: testAuditKey})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const old, recent = 2500, 10
	if err := s.update(func(tx *bolt.Tx) error {
		for i := range old + recent {
			at := t0.Add(time.Duration(i) * time.Second)
			if i >= old {
				at = t0.Add(48 * time.Hour)
			}
			if err := s.appendAudit(tx, at, "reg_x", store.AuditRegistrantUpdated, "checkin"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	head, _ := s.AuditHead()
	var batches []int
	for {
		// One batch at a time, through the same code, to count them.
		before, _ := s.Audit()
		n, _, err := s.compactOnce(t0.Add(24 * time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		after, _ := s.Audit()
		batches = append(batches, len(before)-len(after)+1)
		if _, err := s.VerifyAudit(); err != nil {
			t.Fatalf("after batch %d: %v", len(batches), err)
		}
	}
	if len(batches) != 3 {
		t.Errorf("batches %v, want 3", batches)
	}
	for _, b := range batches {
		if b > compactBatch {
			t.Errorf("a batch deleted %d entries (limit %d)", b, compactBatch)
		}
	}
	entries, _ := s.Audit()
	if len(entries) != recent+1 || entries[0].Action != store.AuditCheckpoint || entries[0].Seq != old {
		t.Errorf("after compaction: %d entries, first %+v", len(entries), entries[0])
	}
	if h, _ := s.AuditHead(); h != head {
		t.Errorf("head moved: %v, was %v", h, head)
	}
	// A second full run removes nothing more.
	if n, err := s.CompactAudit(t0.Add(24 * time.Hour)); err != nil || n != 0 {
		t.Errorf("second compaction removed %d, %v", n, err)
	}
}

// BenchmarkProcessAudit64 is BenchmarkProcess64 without and with an audit
// key, in one run: what sealing and MACing each entry costs the store's
// event transaction (64 concurrent registrants, group commit).
func BenchmarkProcessAudit64(b *testing.B) {
	for _, bc := range []struct {
		name string
		key  []byte
	}{{"no-key", nil}, {"key", testAuditKey}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := OpenWith(filepath.Join(b.TempDir(), "checkinbot.db"), Options{AuditKey: bc.key})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprintf("user-%d", w)
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						s.Process(key, "", t0, func(prev dialogs.State, _ bool) dialogs.Result {
							prev.Timer = t0.Add(time.Duration(i) * time.Second)
							return dialogs.Result{State: prev, Audit: []string{"checkin"}}
						})
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkAuditEntryCPU is the CPU an entry costs without fsync, in the
// JSON form of older versions and the compact form, same run: the neutral
// entry's hash and encoding alone (no-key), and with the sealed reason
// (padded, or squeezed to its fixed size) and the entry and head MACs
// (key). The reason is a check-in's with a duress escalation.
func BenchmarkAuditEntryCPU(b *testing.B) {
	k, err := newAuditKeys(testAuditKey)
	if err != nil {
		b.Fatal(err)
	}
	reason := processReason([]string{"checkin"}, []store.Event{{Type: escalation.TypeDuressTriggered, ID: "evt_6fhyd3ilsr6fvgtbvdat5acpii", CaseID: "case_000001"}})
	prev := "f473976078945042fa59078f53dd00d2cd9e82650bc6cc40d06f3bbee5aa532a"
	for _, form := range []string{"json", "compact"} {
		for _, keyed := range []bool{false, true} {
			name := form + "/no-key"
			if keyed {
				name = form + "/key"
			}
			b.Run(name, func(b *testing.B) {
				for i := range b.N {
					e := store.AuditEntry{Seq: uint64(i), At: t0, Subject: "reg_4df5a369cd6a6ed04909", Action: store.AuditRegistrantUpdated, Prev: prev}
					if form == "compact" {
						header, _ := compactHeader(e, keyed)
						if keyed {
							e.Sealed = k.sealCompact(e.Seq, reason)
						}
						e.Hash = compactHash(e.Seq, prev, header, e.Sealed)
						if keyed {
							e.MAC = k.shortMAC(macEntry, e.Hash, e.Seq)
							_ = k.sum(macHead, e.Hash, e.Seq, 1)
						}
						_ = compactValue(header, e.Hash, e.MAC, e.Sealed)
						continue
					}
					if keyed {
						e.Sealed = k.seal(e.Seq, reason)
					}
					e.Hash = auditHash(e)
					if keyed {
						e.MAC = k.sum(macEntry, e.Hash, e.Seq)
						_ = k.sum(macHead, e.Hash, e.Seq, 1)
					}
					if _, err := json.Marshal(e); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
