package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The offline consistency check of a data file (`checkinbot check`,
// DESIGN §8). It reads the file under a shared lock, so it refuses a file
// a running serve holds, and never writes to it. Problems name records by
// bucket and id or pseudonym only: no message text, keyword, phone number
// or name reaches its output.

// Check verifies the data file at path offline: every page (on the file's
// bytes, before bbolt reads them), every record decodes, the due index and
// the registrants agree both ways, cases referenced by registrants and
// events exist, outbox and delivery rows agree, every index agrees with
// its records both ways (check_index.go), and the audit chain
// verifies to its recorded head. A file that cannot be checked at all
// (missing, empty, foreign, truncated, locked, newer schema) is an error of
// the same kinds as Open's.
func Check(path string) (*store.CheckReport, error) { return CheckWith(path, Options{}) }

// CheckWith is Check with the master key: the records of an encrypted
// file are opened and checked too. Without a key they are counted
// ("sealed_unopened") and their structure checked, not their contents; a
// key that does not open the file is an error.
func CheckWith(path string, opt Options) (*store.CheckReport, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, derr := os.Stat(filepath.Dir(path)); derr != nil {
			return nil, &store.FileError{Path: path, Kind: store.ErrNoDir}
		}
		return nil, &store.FileError{Path: path, Kind: store.ErrNotFound}
	case errors.Is(err, syscall.ENOTDIR):
		return nil, &store.FileError{Path: path, Kind: store.ErrNoDir, Reason: "a part of the path is a file, not a directory"}
	case err != nil:
		return nil, classify(path, err, "look at the file")
	case fi.IsDir():
		return nil, &store.FileError{Path: path, Kind: store.ErrIsDir, Reason: "give the path of the file inside it"}
	}
	db, pageProbs, err := examine(path, false)
	if err != nil {
		return nil, err
	}
	rep := &store.CheckReport{Counts: map[string]int{}}
	if len(pageProbs) > 0 {
		for _, p := range pageProbs {
			where, what := "pages", p
			if f := strings.SplitN(p, " ", 3); len(f) == 3 && f[0] == "page" {
				where, what = f[0]+" "+strings.TrimSuffix(f[1], ":"), f[2]
			}
			rep.Problems = append(rep.Problems, store.Problem{Where: where, What: what})
		}
		rep.Problems = append(rep.Problems, store.Problem{Where: "records", What: "not checked: the pages holding them are damaged"})
		return rep, nil
	}
	defer db.Close()
	c := &checker{rep: rep}
	var wrapped []byte
	db.View(func(tx *bolt.Tx) error { wrapped = bytes.Clone(tx.Bucket(bucketMeta).Get(keyServiceKey)); return nil })
	c.sealed = wrapped != nil
	if c.sealed && opt.Keyring != nil {
		cd, err := unsealWith(wrapped, opt.Keyring)
		if err != nil {
			return nil, classify(path, err, "unseal")
		}
		codecs.Store(db, cd)
		defer codecs.Delete(db)
		c.sealed = false // opened: checked like a clear file
	}
	if err := guard(func() error { return db.View(c.run) }); err != nil {
		return nil, classify(path, err, "check")
	}
	if n, err := (&Store{db: db}).VerifyAudit(); err != nil {
		c.add("audit", "%v", err)
	} else {
		rep.Counts["audit"] = n
	}
	return rep, nil
}

type checker struct {
	rep    *store.CheckReport
	tx     *bolt.Tx
	sealed bool // encrypted, and no key given: contents are not checked
}

// decode opens and decodes the value v of record k in bucket name; false
// when it cannot be checked (sealed, no key: counted) or does not decode
// (reported at where).
func (c *checker) decode(where string, name, k, v []byte, dst any) bool {
	if c.sealed {
		c.rep.Counts["sealed_unopened"]++
		return false
	}
	var err error
	if bytes.Equal(name, bucketOutbox) {
		err = getEventAs(c.tx, k, v, dst)
	} else {
		err = getSealed(c.tx, name, k, v, dst)
	}
	switch {
	case errors.Is(err, errShredded):
		c.rep.Counts["shredded"]++
		return false
	case err != nil:
		c.add(where, "%s", undecodable(err))
		return false
	}
	return true
}

func (c *checker) add(where, format string, args ...any) {
	c.rep.Problems = append(c.rep.Problems, store.Problem{Where: where, What: fmt.Sprintf(format, args...)})
}

// bucket returns a top-level bucket, reporting it when missing.
func (c *checker) bucket(name []byte) *bolt.Bucket {
	b := c.tx.Bucket(name)
	if b == nil {
		c.add("bucket "+string(name), "missing")
	}
	return b
}

// who names a registrant by pseudonym, or by position when the key is not
// a user key (which could be anything, a phone number included).
func who(key []byte, i int) string {
	if isUserKey(key) {
		return "registrant " + dialogs.Pseudonym(string(key))
	}
	return fmt.Sprintf("registrant #%d", i)
}

func isUserKey(k []byte) bool {
	if len(k) != 64 {
		return false
	}
	_, err := hex.DecodeString(string(k))
	return err == nil && strings.ToLower(string(k)) == string(k)
}

// undecodable says why a record does not decode without quoting it.
func undecodable(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("record does not decode: invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("record does not decode: field %q has the wrong type", te.Field)
	}
	return "record does not decode"
}

func stamp(nanos uint64) string { return time.Unix(0, int64(nanos)).UTC().Format(time.RFC3339Nano) }

func (c *checker) run(tx *bolt.Tx) error {
	c.tx = tx
	known := map[string]bool{}
	for _, b := range allBuckets {
		known[string(b)] = true
	}
	n := 0
	tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if n++; !known[string(name)] {
			c.add(fmt.Sprintf("bucket #%d", n), "not one checkinbot writes")
		}
		return nil
	})
	cases := c.cases()
	c.registrants(cases)
	routed := c.outbox(cases)
	c.deliveries(routed)
	c.inbound()
	c.auditHead()
	if c.sealed {
		// The indexes and counters are checked against records that do
		// not open without the master key: with it (CheckWith) they are.
		c.rep.Counts["indexes_unchecked"] = 1
		return nil
	}
	c.indexes(cases) // check_index.go
	return nil
}

// cases checks every case and returns them by id.
func (c *checker) cases() map[string]store.Case {
	out := map[string]store.Case{}
	b := c.bucket(bucketCases)
	if b == nil {
		return out
	}
	i := 0
	b.ForEach(func(k, v []byte) error {
		i++
		where := fmt.Sprintf("case #%d", i)
		var cs store.Case
		if !c.decode(where, bucketCases, k, v, &cs) {
			return nil
		}
		if cs.ID != string(k) {
			c.add(where, "stored under a key other than its id")
			return nil
		}
		where = "case " + cs.ID
		if !cs.Status.Valid() {
			c.add(where, "unknown status")
		}
		if !isUserKey([]byte(cs.UserKey)) {
			c.add(where, "its registrant key is not a user key")
		}
		out[cs.ID] = cs
		return nil
	})
	c.rep.Counts["cases"] = len(out)
	return out
}

// registrants checks every registrant against the due index and cases.
func (c *checker) registrants(cases map[string]store.Case) {
	regs, due := c.bucket(bucketRegistrants), c.bucket(bucketDue)
	if regs == nil {
		return
	}
	want := map[string]string{} // due key → registrant, from the records
	dueOf := map[string]time.Time{}
	i := 0
	regs.ForEach(func(k, v []byte) error {
		i++
		where := who(k, i)
		if !isUserKey(k) {
			c.add(where, "stored under a key that is not a user key")
		}
		var st dialogs.State
		if !c.decode(where, bucketRegistrants, k, v, &st) {
			return nil
		}
		if st.Key != "" && st.Key != string(k) {
			c.add(where, "its record names another key")
		}
		if at := st.DueAt(); !at.IsZero() {
			want[string(dueKey(at, string(k)))] = where
			dueOf[string(k)] = at
		}
		if st.OpenCase != "" {
			if cs, ok := cases[st.OpenCase]; !ok {
				c.add(where, "its open case %s does not exist", st.OpenCase)
			} else if cs.UserKey != string(k) {
				c.add(where, "its open case %s belongs to another registrant", st.OpenCase)
			}
		}
		return nil
	})
	c.rep.Counts["registrants"] = i
	if due == nil {
		return
	}
	j := 0
	due.ForEach(func(k, _ []byte) error {
		j++
		if len(k) <= 8 {
			c.add(fmt.Sprintf("due entry #%d", j), "malformed key")
			return nil
		}
		key := k[8:]
		at := binary.BigEndian.Uint64(k[:8])
		where := fmt.Sprintf("due entry at %s for %s", stamp(at), who(key, j))
		delete(want, string(k))
		got, ok := dueOf[string(key)]
		switch {
		case regs.Get(key) == nil:
			c.add(where, "no such registrant")
		case !ok && c.sealed:
			// not opened: nothing to compare with
		case !ok:
			c.add(where, "the registrant has no timer (or its record does not decode)")
		case uint64(got.UnixNano()) != at:
			c.add(where, "the registrant is due at %s", got.UTC().Format(time.RFC3339Nano))
		}
		return nil
	})
	c.rep.Counts["due"] = j
	for k, where := range want {
		c.add(where, "due at %s but not in the due index: its timer would never fire", stamp(binary.BigEndian.Uint64([]byte(k)[:8])))
	}
}

// outbox checks every event and returns the routed_upto mark.
func (c *checker) outbox(cases map[string]store.Case) uint64 {
	b, meta := c.bucket(bucketOutbox), c.bucket(bucketMeta)
	var routed uint64
	if meta != nil {
		if v := meta.Get(keyRouted); v != nil {
			if len(v) != 8 {
				c.add("meta", "the routing mark is malformed")
			} else {
				routed = binary.BigEndian.Uint64(v)
			}
		}
	}
	if b == nil {
		return routed
	}
	if routed > b.Sequence() {
		c.add("meta", "events up to %d are marked routed, but only %d were ever recorded", routed, b.Sequence())
	}
	i := 0
	b.ForEach(func(k, v []byte) error {
		i++
		if len(k) != 8 {
			c.add(fmt.Sprintf("outbox #%d", i), "malformed key")
			return nil
		}
		seq := binary.BigEndian.Uint64(k)
		where := fmt.Sprintf("outbox %d", seq)
		if seq > b.Sequence() {
			c.add(where, "beyond the outbox sequence %d", b.Sequence())
		}
		var ev store.Event
		if !c.decode(where, bucketOutbox, k, v, &ev) {
			return nil
		}
		switch {
		case !strings.HasPrefix(ev.ID, "evt_"):
			c.add(where, "malformed event id")
		case ev.Type == "":
			c.add(where, "event %s has no type", ev.ID)
		case ev.CaseID != "" && cases[ev.CaseID].ID == "":
			c.add(where, "event %s belongs to case %s, which does not exist", ev.ID, ev.CaseID)
		}
		return nil
	})
	c.rep.Counts["outbox"] = i
	return routed
}

// deliveries checks pending and delivered rows against their keys and
// the outbox.
func (c *checker) deliveries(routed uint64) {
	outbox := c.tx.Bucket(bucketOutbox)
	for _, name := range [][]byte{bucketPending, bucketDelivered} {
		b := c.bucket(name)
		if b == nil {
			continue
		}
		pending := bytes.Equal(name, bucketPending)
		i := 0
		b.ForEach(func(k, v []byte) error {
			i++
			where := fmt.Sprintf("%s #%d", name, i)
			key := k
			if !pending {
				if len(k) < 8 {
					c.add(where, "malformed key")
					return nil
				}
				key = k[8:]
			}
			if len(key) < 10 || key[len(key)-9] != 0 {
				c.add(where, "malformed key")
				return nil
			}
			endpoint, seq := string(key[:len(key)-9]), binary.BigEndian.Uint64(key[len(key)-8:])
			where = fmt.Sprintf("%s %s/%d", name, endpoint, seq)
			var d store.Delivery
			if !c.decode(where, name, k, v, &d) {
				return nil
			}
			if d.Endpoint != endpoint || d.Seq != seq {
				c.add(where, "its record is for %s/%d", d.Endpoint, d.Seq)
			}
			if !pending {
				if d.DoneAt.IsZero() {
					c.add(where, "archived without a completion time")
				}
				return nil
			}
			if !d.DoneAt.IsZero() {
				c.add(where, "pending but marked done")
			}
			if seq > routed {
				c.add(where, "pending for an event not yet routed: it would be routed twice")
			}
			var ev struct {
				ID string `json:"id"`
			}
			switch raw := outboxGet(outbox, seq); {
			case raw == nil:
				c.add(where, "its outbox event is missing: it can never be delivered")
			case getEventAs(c.tx, u64(seq), raw, &ev) == nil && ev.ID != d.EventID:
				c.add(where, "its outbox event is %s, not %s", ev.ID, d.EventID)
			}
			return nil
		})
		c.rep.Counts[string(name)] = i
	}
}

func outboxGet(b *bolt.Bucket, seq uint64) []byte {
	if b == nil {
		return nil
	}
	return b.Get(u64(seq))
}

func (c *checker) inbound() {
	b := c.bucket(bucketInbound)
	if b == nil {
		return
	}
	i := 0
	b.ForEach(func(_, v []byte) error {
		if i++; len(v) != 8 {
			c.add(fmt.Sprintf("inbound #%d", i), "malformed time")
		}
		return nil
	})
	c.rep.Counts["inbound"] = i
}

// auditHead checks that the recorded head is the last entry's hash: a
// chain cut off at its end still verifies link by link.
func (c *checker) auditHead() {
	b, meta := c.bucket(bucketAudit), c.tx.Bucket(bucketMeta)
	if b == nil || meta == nil {
		return
	}
	head := string(meta.Get(keyAuditHead))
	k, last := b.Cursor().Last()
	var e auditRec
	var err error
	if last != nil && len(k) == 8 {
		e, err = decodeAuditAt(binary.BigEndian.Uint64(k), last)
	}
	switch {
	case last == nil && head != "":
		c.add("audit", "the chain is empty but its head is recorded: entries were removed")
	case last == nil, len(k) != 8, err != nil:
		// VerifyAudit reports it.
	case !e.endsAt(head):
		c.add("audit", "the last entry (%d) is not the recorded head: entries were removed or added", e.Seq)
	}
}
