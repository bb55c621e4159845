package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

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
	// pending rows (a file of schema 4 has none until opened by this binary).
	keyPendingDueBuilt = []byte("pending_due_built")
)

func init() { allBuckets = append(allBuckets, bucketPendingDue) }

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
			if err := idx.Delete(pendingDueKey(old.Endpoint, old.NextAt, old.Seq)); err != nil {
				return err
			}
		}
	}
	if err := idx.Put(pendingDueKey(d.Endpoint, d.NextAt, d.Seq), nil); err != nil {
		return err
	}
	return putSealed(tx, bucketPending, key, d)
}

// deletePending deletes pending row d and its due-index entry.
func deletePending(tx *bolt.Tx, d store.Delivery) error {
	if err := tx.Bucket(bucketPendingDue).Delete(pendingDueKey(d.Endpoint, d.NextAt, d.Seq)); err != nil {
		return err
	}
	return tx.Bucket(bucketPending).Delete(pendingKey(d.Endpoint, d.Seq))
}

// buildPendingDue builds the due index from the pending rows once, for a
// file written before it existed; it runs in Open after the keys, since
// the rows are sealed. A crash before the mark is written builds it again.
func (s *Store) buildPendingDue() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyPendingDueBuilt) != nil {
			return nil
		}
		idx := tx.Bucket(bucketPendingDue)
		err := tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
			var d store.Delivery
			if err := getSealed(tx, bucketPending, k, v, &d); err != nil {
				return fmt.Errorf("pending delivery %x is corrupt: %w", k, err)
			}
			return idx.Put(pendingDueKey(d.Endpoint, d.NextAt, d.Seq), nil)
		})
		if err != nil {
			return err
		}
		return meta.Put(keyPendingDueBuilt, []byte{1})
	})
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
