package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The due index of pending deliveries (issue 15 item 3): a delivery round
// reads only the rows due now, not every pending row. Its keys are
//
//	endpoint id ‖ 0x00 ‖ next attempt (8 bytes, Unix ns) ‖ outbox sequence
//
// with an empty value, one per pending row, written and deleted in the same
// transaction as the row (putPending, deletePending). The endpoint comes
// first, not the time, so a round jumps over an endpoint that is backing off
// (or not configured) with one seek, as it did over the pending rows: an
// outage's backlog, all due since it was routed, still costs nothing per
// round. Within an endpoint the keys run in time order, so the round stops
// at the first row not yet due, and that row's time is when to look again.
//
// In clear the index adds only each pending row's next attempt time. That
// time is already implied by delivery behaviour (a receiver sees when each
// attempt arrives), and it does not tell an event's type, registrant or
// case: a duress event is routed and retried like any.

var (
	bucketPendingDue = []byte("pending_due")
	// keyPendingDueBuilt marks a file whose due index has been built from its
	// pending rows (a file of schema 4 has none until opened by this binary);
	// keyPendingDueProgress is the last pending row filed while it is being
	// built (buildOver).
	keyPendingDueBuilt    = []byte("pending_due_built")
	keyPendingDueProgress = []byte("pending_due_progress")

	// bucketPendingBeat is the due index again, for the endpoint.heartbeat
	// rows only: the prober finds the heartbeats due without opening every
	// due row (DueOfType), however large an outage's backlog. It shows in
	// clear which pending rows are heartbeats — events about no registrant,
	// sent to every endpoint on a fixed cadence, which a receiver sees anyway.
	bucketPendingBeat      = []byte("pending_heartbeat")
	keyPendingBeatBuilt    = []byte("pending_heartbeat_built")
	keyPendingBeatProgress = []byte("pending_heartbeat_progress")
)

func init() { allBuckets = append(allBuckets, bucketPendingDue, bucketPendingBeat) }

// pendingDueKey is the due-index key of the pending row (endpoint, seq) next
// attempted at at.
func pendingDueKey(endpoint string, at time.Time, seq uint64) []byte {
	var ns uint64
	if at.After(time.Unix(0, 0)) {
		ns = uint64(at.UnixNano())
	}
	return append(append(append([]byte(endpoint), 0), u64(ns)...), u64(seq)...)
}

// parseDueKey splits a due-index key; ok is false if it is malformed.
func parseDueKey(k []byte) (endpoint string, at int64, seq uint64, ok bool) {
	if len(k) < 17 || k[len(k)-17] != 0 {
		return "", 0, 0, false
	}
	n := len(k) - 17
	return string(k[:n]), int64(binary.BigEndian.Uint64(k[n+1 : n+9])), binary.BigEndian.Uint64(k[n+9:]), true
}

// putPending writes pending row d and its due-index entry, replacing the
// entry of the row it overwrites (if any) when its next attempt moved. The
// old row is read from the bucket, not taken from the caller, so no path
// can leave its entry behind.
func putPending(tx *bolt.Tx, d store.Delivery) error {
	idx, key := tx.Bucket(bucketPendingDue), pendingKey(d.Endpoint, d.Seq)
	if raw := tx.Bucket(bucketPending).Get(key); raw != nil {
		var old store.Delivery
		if err := getSealed(tx, bucketPending, key, raw, &old); err != nil {
			return fmt.Errorf("pending delivery %s/%d is corrupt: %w", d.Endpoint, d.Seq, err)
		}
		if !old.NextAt.Equal(d.NextAt) {
			if err := unfilePending(tx, old); err != nil {
				return err
			}
		}
	}
	if err := idx.Put(pendingDueKey(d.Endpoint, d.NextAt, d.Seq), nil); err != nil {
		return err
	}
	if d.Type == escalation.TypeEndpointHeartbeat {
		if err := tx.Bucket(bucketPendingBeat).Put(pendingDueKey(d.Endpoint, d.NextAt, d.Seq), nil); err != nil {
			return err
		}
	}
	return putSealed(tx, bucketPending, key, d)
}

// deletePending deletes pending row d and its due-index entries.
func deletePending(tx *bolt.Tx, d store.Delivery) error {
	if err := unfilePending(tx, d); err != nil {
		return err
	}
	return tx.Bucket(bucketPending).Delete(pendingKey(d.Endpoint, d.Seq))
}

// unfilePending deletes the due-index entries of pending row d.
func unfilePending(tx *bolt.Tx, d store.Delivery) error {
	k := pendingDueKey(d.Endpoint, d.NextAt, d.Seq)
	if err := tx.Bucket(bucketPendingDue).Delete(k); err != nil {
		return err
	}
	if d.Type != escalation.TypeEndpointHeartbeat {
		return nil
	}
	return tx.Bucket(bucketPendingBeat).Delete(k)
}

// buildPendingDue builds the due index, and the heartbeat index, from the
// pending rows once, for a file written before they existed; it runs in
// Open after the keys, since the rows are sealed. Each is built in
// transactions of at most buildBatch rows that resume after the last row
// filed (buildOver), so a crash halfway finishes on the next open.
func (s *Store) buildPendingDue() error {
	if err := s.buildOver(bucketPending, keyPendingDueBuilt, keyPendingDueProgress, func(tx *bolt.Tx, k, v []byte) error {
		d, err := pendingRow(tx, k, v)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketPendingDue).Put(pendingDueKey(d.Endpoint, d.NextAt, d.Seq), nil)
	}); err != nil {
		return err
	}
	return s.buildOver(bucketPending, keyPendingBeatBuilt, keyPendingBeatProgress, func(tx *bolt.Tx, k, v []byte) error {
		d, err := pendingRow(tx, k, v)
		if err != nil || d.Type != escalation.TypeEndpointHeartbeat {
			return err
		}
		return tx.Bucket(bucketPendingBeat).Put(pendingDueKey(d.Endpoint, d.NextAt, d.Seq), nil)
	})
}

// marked reports whether meta holds key.
func (s *Store) marked(key []byte) (bool, error) {
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketMeta).Get(key) != nil
		return nil
	})
	return found, err
}

// pendingRow opens the pending row k.
func pendingRow(tx *bolt.Tx, k, v []byte) (store.Delivery, error) {
	var d store.Delivery
	if err := getSealed(tx, bucketPending, k, v, &d); err != nil {
		return d, fmt.Errorf("pending delivery %x is corrupt: %w", k, err)
	}
	return d, nil
}

// buildBatch is the most rows one transaction of an index build at open
// files (issue 15: no transaction whose length grows with the file).
var buildBatch = 1000

// buildHook, when set (tests only), is told after each committed
// transaction of an index build (named by its done mark) how many rows it
// filed; an error it returns stops the build there, as a crash would.
var buildHook func(done []byte, filed int) error

// buildOver files every row of bucket name in an index, once, for a file
// written before the index existed: fn is called for each row in key order,
// at most buildBatch rows per write transaction, and each transaction
// records in meta (under progress) the last row it filed, so a crash
// between transactions resumes after that row on the next open instead of
// starting over. The transaction that reaches the end writes done and
// removes progress. It runs in Open, before any other write: the rows do
// not change between its transactions. fn must only write other buckets.
func (s *Store) buildOver(name, done, progress []byte, fn func(tx *bolt.Tx, k, v []byte) error) error {
	if built, err := s.marked(done); err != nil || built {
		return err // built: no write transaction, no fsync at every start
	}
	for {
		finished, filed := false, 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			filed = 0
			meta := tx.Bucket(bucketMeta)
			if meta.Get(done) != nil {
				finished = true
				return nil
			}
			c := tx.Bucket(name).Cursor()
			k, v := c.First()
			if after := meta.Get(progress); after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			var last []byte
			for n := 0; k != nil && n < buildBatch; k, v = c.Next() {
				if err := fn(tx, k, v); err != nil {
					return err
				}
				last = bytes.Clone(k)
				n++
				filed = n
			}
			if k != nil {
				return meta.Put(progress, last)
			}
			finished = true
			if err := meta.Delete(progress); err != nil {
				return err
			}
			return meta.Put(done, []byte{1})
		})
		if err == nil && buildHook != nil {
			err = buildHook(done, filed)
		}
		if err != nil || finished {
			return err
		}
	}
}

// dueRow is one pending row read through the due index.
type dueRow struct {
	key []byte
	d   store.Delivery
}

// dueRows walks the due index one endpoint at a time, calling each with
// the endpoint's rows due at now (in sequence order), up to limit rows in
// all (0: no limit). Endpoints skip names are jumped over unread. It
// returns when the earliest row of a read endpoint not yet due falls due,
// and whether the limit cut the walk short. every is called for every
// endpoint with pending rows, skipped or not.
func dueRows(tx *bolt.Tx, now time.Time, skip func(string) bool, limit int,
	every func(endpoint string), each func(endpoint string, rows []dueRow) error) (next time.Time, more bool, err error) {
	pending := tx.Bucket(bucketPending)
	c := tx.Bucket(bucketPendingDue).Cursor()
	n, nowNS := 0, now.UnixNano()
	for k, _ := c.First(); k != nil; {
		ep, _, _, ok := parseDueKey(k)
		if !ok {
			return next, more, fmt.Errorf("pending-due index key %x is malformed", k)
		}
		every(ep)
		if skip != nil && skip(ep) {
			k, _ = c.Seek(append([]byte(ep), 1))
			continue
		}
		prefix := append([]byte(ep), 0)
		var rows []dueRow
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+16; k, _ = c.Next() {
			_, at, seq, _ := parseDueKey(k)
			if at > nowNS {
				if t := time.Unix(0, at).UTC(); next.IsZero() || t.Before(next) {
					next = t
				}
				break
			}
			if limit > 0 && n >= limit {
				more = true
				break
			}
			pk := pendingKey(ep, seq)
			v := pending.Get(pk)
			if v == nil {
				continue // a stale entry (checkinbot check reports it): nothing to send
			}
			var d store.Delivery
			if err := getSealed(tx, bucketPending, pk, v, &d); err != nil {
				return next, more, fmt.Errorf("pending delivery %s/%d is corrupt: %w", ep, seq, err)
			}
			if !bytes.Equal(pendingDueKey(d.Endpoint, d.NextAt, d.Seq), k) {
				continue // a stale entry: the row's own entry stands at its time
			}
			rows = append(rows, dueRow{key: pk, d: d})
			n++
		}
		slices.SortFunc(rows, func(a, b dueRow) int { return bytes.Compare(a.key, b.key) })
		if len(rows) > 0 {
			if err := each(ep, rows); err != nil {
				return next, more, err
			}
		}
		if more {
			return next, more, nil
		}
		k, _ = c.Seek(append([]byte(ep), 1))
	}
	return next, more, nil
}

// caseHeadRun reports which of a case's due rows at one endpoint may go
// now: the run of its pending rows, in recording order from the first,
// that are all due (in due, by sequence). The case's events are found
// through case_events, so the rows not yet due are never scanned.
func caseHeadRun(tx *bolt.Tx, endpoint, caseID string, due map[uint64]bool) []uint64 {
	pending := tx.Bucket(bucketPending)
	prefix := append([]byte(caseID), 0)
	c := tx.Bucket(bucketCaseEvents).Cursor()
	var run []uint64
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, _ = c.Next() {
		seq := binary.BigEndian.Uint64(k[len(prefix):])
		if pending.Get(pendingKey(endpoint, seq)) == nil {
			continue // delivered to this endpoint, or never routed to it
		}
		if !due[seq] {
			break
		}
		run = append(run, seq)
	}
	return run
}
