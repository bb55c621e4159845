package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// Operations: the numbers /metrics and /readyz serve, the write probe and
// the online backup. None of them takes the single writer's turn except
// Probe, so a scrape or a backup never delays a citizen's reply.

// mmapSize is the address space mapped for the data file from the start
// (virtual memory only; the file does not grow for it). bbolt must re-map
// the file as it grows, and cannot while a read transaction is open: an
// online backup — a read transaction that lasts as long as the copy —
// would stall every write (every citizen's reply) at the next growth
// until it ended (TestBackupUnderWriteLoad caught exactly that). With the
// file mapped at this size no re-map happens below it, as etcd does.
var mmapSize = 1 << 30 // a variable only so BenchmarkMmapSize can compare

// WriteBackup writes a consistent copy of the whole data file to w while
// the store keeps serving: one read transaction (bbolt Tx.WriteTo) sees a
// single committed state, and writers go on committing meanwhile. It
// returns the bytes written; size, if not nil, learns the length first
// (an HTTP Content-Length, so a cut-short copy is detected). The copy is a data file `checkinbot check`
// accepts and `serve` opens as is.
func (s *Store) WriteBackup(w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup of %s: %w", s.path, err)
	}
	return n, nil
}

// Probe commits an empty write transaction through the single writer, as
// an event would (and fails as one would under SetWriteFault): /readyz
// asks it whether the store can still write, even when no citizen is
// writing.
func (s *Store) Probe() error {
	if err := s.writeFault(); err != nil {
		return err
	}
	return s.update(func(*bolt.Tx) error { return nil })
}

// SetCommitObserver makes the single writer report how long each group
// commit took (fsync included) and how many writes it carried, for the
// store commit latency histogram. Set it before the store is used; nil
// turns it off.
func (s *Store) SetCommitObserver(f func(took time.Duration, writes int)) {
	s.observe.Store(&f)
}

// observeCommit reports one group commit to the observer, if any.
func (s *Store) observeCommit(start time.Time, writes int) {
	if f := s.observe.Load(); f != nil && *f != nil {
		(*f)(time.Since(start), writes)
	}
}

// Stats counts registrants by status (and those overdue: checkin.missed went out, no check-in since) and the delivery backlog per
// endpoint, in one read transaction. The registrant numbers are counters
// kept in the transaction of every registrant write (stats.go), so their
// cost does not grow with the number of registrants; the backlog's grows
// with the undelivered rows: scrape it at a Prometheus-like cadence, not
// per request.
func (s *Store) Stats() (store.Stats, error) {
	st := store.Stats{Registrants: map[string]int{}, Endpoints: map[string]store.EndpointBacklog{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if st.Registrants, st.Overdue, st.LastCheckin, err = readStatCounts(tx); err != nil { // stats.go
			return err
		}
		outbox := tx.Bucket(bucketOutbox)
		created := func(seq uint64) time.Time {
			var ev struct {
				CreatedAt time.Time `json:"created_at"`
			}
			if raw := outbox.Get(u64(seq)); raw != nil && getEventAs(tx, u64(seq), raw, &ev) == nil {
				return ev.CreatedAt
			}
			return time.Time{}
		}
		older := func(a, b time.Time) time.Time {
			if a.IsZero() || (!b.IsZero() && b.Before(a)) {
				return b
			}
			return a
		}
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) != i+9 {
				return fmt.Errorf("pending row with a malformed key")
			}
			var d escalation.Delivery
			if err := getSealed(tx, bucketPending, k, v, &d); err != nil {
				return fmt.Errorf("pending row: %w", err)
			}
			ep := st.Endpoints[string(k[:i])]
			ep.Depth++
			at := created(d.Seq)
			// Rows of one endpoint are in outbox order: the first is its oldest.
			if ep.Depth == 1 {
				ep.Oldest = at
			}
			st.Endpoints[string(k[:i])] = ep
			if d.Critical {
				st.OldestCritical = older(st.OldestCritical, at)
			}
		}
		var routed uint64
		if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
			routed = binary.BigEndian.Uint64(v)
		}
		oc := outbox.Cursor()
		for k, v := oc.Seek(u64(routed + 1)); k != nil; k, v = oc.Next() {
			var ev escalation.Event
			if err := getEvent(tx, k, v, &ev); err != nil {
				return fmt.Errorf("outbox event: %w", err)
			}
			st.Unrouted++
			st.UnroutedOldest = older(st.UnroutedOldest, ev.CreatedAt)
			if ev.Severity == escalation.SeverityCritical {
				st.OldestCritical = older(st.OldestCritical, ev.CreatedAt)
			}
		}
		st.AuditHead = auditHeadOf(tx) // audit.go
		return nil
	})
	return st, err
}

// CompactFile copies the data file at src into a new file at dst keeping
// only live pages: bbolt frees pages without overwriting them, and a
// plain copy (Tx.WriteTo) carries them along — including the wrapped data
// key of a citizen deleted a moment ago (docs/storage.md, "Erasure"). A
// backup made through CompactFile holds nothing a deletion removed. src
// is opened read-only (a stopped service's file or a fresh copy); dst
// must not exist. Bucket sequences are kept.
func CompactFile(src, dst string) error {
	in, err := bolt.Open(src, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return classify(src, err, "open")
	}
	defer in.Close()
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("compact into %s: %w", dst, err)
	}
	f.Close()
	out, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return classify(dst, err, "open")
	}
	if err := bolt.Compact(out, in, 64<<20); err != nil {
		out.Close()
		return fmt.Errorf("compact %s into %s: %w", src, dst, err)
	}
	return out.Close()
}
