package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/checkinbot/checkinbot/store"
)

// TestCheckCleanFile: a file written only through the store has no
// problems, and every kind of record is counted.
func TestCheckCleanFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "checkinbot.db")
	seedFile(t, p, 30)
	before := fileHash(t, p)
	rep, err := Check(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("clean file has problems: %v", rep.Problems)
	}
	for bucket, want := range map[string]int{"registrants": 30, "due": 30, "cases": 10, "outbox": 10, "pending": 10, "audit": 30} {
		if rep.Counts[bucket] != want {
			t.Errorf("%s: counted %d, want %d", bucket, rep.Counts[bucket], want)
		}
	}
	if fileHash(t, p) != before {
		t.Error("check changed the file")
	}
}

// firstKey returns the first key of a bucket (a copy).
func firstKey(tx *bolt.Tx, bucket []byte) []byte {
	k, _ := tx.Bucket(bucket).Cursor().First()
	return append([]byte(nil), k...)
}

// firstSOSRegistrant is the key of a seeded registrant with an open case.
func firstSOSRegistrant(tx *bolt.Tx) []byte {
	k, _ := tx.Bucket(bucketCases).Cursor().First()
	var c store.Case
	decode(tx.Bucket(bucketCases).Get(k), &c)
	return []byte(c.UserKey)
}

// TestCheckFindsEachInconsistency writes one inconsistency at a time into
// a clean file with bbolt directly, and wants Check to name it — and to
// name no registrant by anything but its pseudonym.
func TestCheckFindsEachInconsistency(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(tx *bolt.Tx) error
		want   string
	}{
		{"registrant does not decode", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketRegistrants).Put(firstKey(tx, bucketRegistrants), []byte(`{"handle":"`+secretPhone+`","timer":"`+secretPhone+`"}`))
		}, "record does not decode"},
		{"registrant under a phone number", func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketRegistrants).Get(firstKey(tx, bucketRegistrants))
			return tx.Bucket(bucketRegistrants).Put([]byte(secretPhone), append([]byte(nil), v...))
		}, "not a user key"},
		{"due entry without registrant", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDue).Put(dueKey(t0, strings.Repeat("ab", 32)), nil)
		}, "no such registrant"},
		{"due entry at the wrong time", func(tx *bolt.Tx) error {
			k := firstKey(tx, bucketDue)
			tx.Bucket(bucketDue).Delete(k)
			binary.BigEndian.PutUint64(k, binary.BigEndian.Uint64(k)+1)
			return tx.Bucket(bucketDue).Put(k, nil)
		}, "the registrant is due at"},
		{"registrant missing from the due index", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDue).Delete(firstKey(tx, bucketDue))
		}, "its timer would never fire"},
		{"open case missing", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketCases).Delete(firstKey(tx, bucketCases))
		}, "does not exist"},
		{"open case of another registrant", func(tx *bolt.Tx) error {
			k := firstKey(tx, bucketCases)
			var c store.Case
			decode(tx.Bucket(bucketCases).Get(k), &c)
			c.UserKey = strings.Repeat("cd", 32)
			return putJSON(tx.Bucket(bucketCases), k, c)
		}, "belongs to another registrant"},
		{"case does not decode", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketCases).Put(firstKey(tx, bucketCases), []byte("{"))
		}, "record does not decode"},
		{"outbox event does not decode", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketOutbox).Put(firstKey(tx, bucketOutbox), []byte(`{"id":7}`))
		}, "record does not decode"},
		{"pending delivery whose event is gone", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketOutbox).Delete(firstKey(tx, bucketOutbox))
		}, "its outbox event is missing"},
		{"pending delivery for an unrouted event", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyRouted, u64(1))
		}, "not yet routed"},
		{"pending delivery under another key", func(tx *bolt.Tx) error {
			k := firstKey(tx, bucketPending)
			v := append([]byte(nil), tx.Bucket(bucketPending).Get(k)...)
			tx.Bucket(bucketPending).Delete(k)
			return tx.Bucket(bucketPending).Put(pendingKey("ep2", 1), v)
		}, "its record is for ep1/1"},
		{"routing mark beyond the outbox", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyRouted, u64(1000))
		}, "only 4 were ever recorded"},
		{"audit entry altered", edit(3), "audit entry 3: edited"},
		{"audit tail removed", func(tx *bolt.Tx) error {
			k, _ := tx.Bucket(bucketAudit).Cursor().Last()
			return tx.Bucket(bucketAudit).Delete(append([]byte(nil), k...))
		}, "not the recorded head"},
		{"unknown bucket", func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("zzz-" + secretPhone))
			return err
		}, "not one checkinbot writes"},
		{"bucket missing", func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketInbound)
		}, "bucket inbound: missing"},
		{"registrant's case reference while the case bucket is intact", func(tx *bolt.Tx) error {
			k := firstSOSRegistrant(tx)
			var st map[string]any
			decode(tx.Bucket(bucketRegistrants).Get(k), &st)
			st["open_case"] = "case_999999"
			return putJSON(tx.Bucket(bucketRegistrants), k, st)
		}, "its open case case_999999 does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "checkinbot.db")
			seedFile(t, p, 12)
			boltFile(t, p, tc.break_)
			before := fileHash(t, p)
			rep, err := Check(p)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, pr := range rep.Problems {
				line := pr.String()
				found = found || strings.Contains(line, tc.want)
				if strings.Contains(line, secretPhone) || strings.Contains(line, "\n") {
					t.Errorf("problem line reveals personal data or spans lines: %q", line)
				}
				t.Log(line)
			}
			if !found {
				t.Errorf("no problem mentions %q: %v", tc.want, rep.Problems)
			}
			if fileHash(t, p) != before {
				t.Error("check changed the file")
			}
		})
	}
}

// TestCheckDamagedPages: damaged pages are listed by number and the
// records are not read through them; nothing panics.
func TestCheckDamagedPages(t *testing.T) {
	p := filepath.Join(t.TempDir(), "checkinbot.db")
	seedFile(t, p, 300)
	id, ps := usedPage(t, p, "leaf")
	flipBit(t, p, int64(id*ps)+8, 0)
	id2, _ := usedPage(t, p, "freelist")
	flipBit(t, p, int64(id2*ps)+16+3, 2)
	rep, err := Check(p)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, pr := range rep.Problems {
		lines = append(lines, pr.String())
	}
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, "has type 0x3") || !strings.Contains(all, "out of range") || !strings.Contains(all, "records: not checked") {
		t.Errorf("damaged pages not reported:\n%s", all)
	}
}

// TestCheckRefusesWhatOpenRefuses: a file Check cannot read at all is an
// error of Open's kinds, and a file held by a running store is ErrLocked.
func TestCheckRefusesWhatOpenRefuses(t *testing.T) {
	for _, f := range faults {
		if f.unprivileged {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			path := f.setup(t, t.TempDir())
			rep, err := Check(path)
			want := f.want
			if want == store.ErrCorrupt && err == nil && len(rep.Problems) > 0 {
				return // page damage is listed as problems; meta damage is refused
			}
			if !errors.Is(err, want) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %v, want %v", err, want)
			}
		})
	}
}

func decode(b []byte, v any) { _ = json.Unmarshal(b, v) }
