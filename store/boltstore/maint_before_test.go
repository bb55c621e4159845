package boltstore

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The maintenance steps as they were before issue 15's bounded versions,
// kept only as the benchmarks' same-run baselines (maint_bench_test.go):
// an erasure and the erased-key sweep that read the whole outbox, the
// heartbeat lookup that opens every due row, the due-index build in one
// transaction.

// eraseKeysBefore does the above inside Process's transaction, after the
// erasing event's own rows are written (own: its send-queue rows).
func eraseKeysBefore(tx *bolt.Tx, key, openCase string, own []store.SendItem) error {
	prefix := userPrefix(key)
	keep := map[string]bool{}
	for _, it := range own {
		keep[string(userSeqKey(key, it.Seq))] = true
	}
	q := tx.Bucket(bucketSendq)
	var stale [][]byte
	c := q.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if !keep[string(k)] {
			stale = append(stale, bytes.Clone(k))
		}
	}
	for _, k := range stale {
		if err := q.Delete(k); err != nil {
			return err
		}
	}
	if codecOf(tx) == nil {
		return nil
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	erased := erasedPrefix + hex.EncodeToString(id[:])
	for _, name := range [][]byte{bucketSendq, bucketPurge} {
		if err := resealPrefixBefore(tx, name, prefix, erased); err != nil {
			return err
		}
	}
	if err := resealEventsBefore(tx, key, openCase, erased); err != nil {
		return err
	}
	return tx.Bucket(bucketKeys).Delete([]byte(key))
}

// resealPrefixBefore re-seals the rows of bucket name under prefix under the
// key of owner.
func resealPrefixBefore(tx *bolt.Tx, name, prefix []byte, owner string) error {
	type kv struct{ k, v []byte }
	var rows []kv
	c := tx.Bucket(name).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		p, err := plainOf(tx, name, k, v)
		if err != nil {
			return err
		}
		rows = append(rows, kv{bytes.Clone(k), bytes.Clone(p)})
	}
	for _, r := range rows {
		if err := putBytes(tx, name, r.k, r.v, owner, false); err != nil {
			return err
		}
	}
	return nil
}

// owedEventsBefore is what delivery still owes: the routing mark and the
// events with a pending row.
func owedEventsBefore(tx *bolt.Tx) (routed uint64, owed map[uint64]bool) {
	if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
		routed = binary.BigEndian.Uint64(v)
	}
	owed = map[uint64]bool{}
	tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
		if len(k) >= 8 {
			owed[binary.BigEndian.Uint64(k[len(k)-8:])] = true
		}
		return nil
	})
	return routed, owed
}

// resealEventsBefore re-seals under owner's key the registrant's events still
// owed to an endpoint or belonging to their unresolved case.
func resealEventsBefore(tx *bolt.Tx, key, openCase, owner string) error {
	routed, owed := owedEventsBefore(tx)
	caseOpen, err := caseUnresolved(tx, openCase)
	if err != nil {
		return err
	}
	type row struct {
		seq uint64
		ev  store.Event
	}
	var keep []row
	err = tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		body, who, err := eventOf(tx, k, v)
		if who != key {
			if errors.Is(err, errShredded) {
				return nil // another erased registrant's
			}
			return err
		}
		if err != nil {
			return err
		}
		seq := binary.BigEndian.Uint64(k)
		var ev store.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			return err
		}
		if seq > routed || owed[seq] || (caseOpen && ev.CaseID == openCase) {
			keep = append(keep, row{seq, ev})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range keep {
		if err := putEvent(tx, r.seq, owner, r.ev); err != nil {
			return err
		}
	}
	return nil
}

// sweepErasedBefore destroys the one-off keys of erased registrants that
// nothing owed needs any more: no send-queue or purge row sealed under
// it, and no event under it still owed to an endpoint or of an
// unresolved case. Prune calls it; it reads the outbox once.
func sweepErasedBefore(tx *bolt.Tx) (int, error) {
	if codecOf(tx) == nil {
		return 0, nil
	}
	keys := tx.Bucket(bucketKeys)
	var erased []string
	c := keys.Cursor()
	for k, _ := c.Seek([]byte(erasedPrefix)); k != nil && bytes.HasPrefix(k, []byte(erasedPrefix)); k, _ = c.Next() {
		erased = append(erased, string(k))
	}
	if len(erased) == 0 {
		return 0, nil
	}
	needed := map[string]bool{}
	for _, name := range [][]byte{bucketSendq, bucketPurge} {
		tx.Bucket(name).ForEach(func(k, v []byte) error {
			if o := storedOwner(name, k, v); strings.HasPrefix(o, erasedPrefix) {
				needed[o] = true
			}
			return nil
		})
	}
	routed, owed := owedEventsBefore(tx)
	unresolved := map[string]bool{}
	err := tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		body, who, err := eventOf(tx, k, v)
		if !strings.HasPrefix(who, erasedPrefix) || needed[who] || errors.Is(err, errShredded) {
			return nil
		}
		if err != nil {
			return err
		}
		seq := binary.BigEndian.Uint64(k)
		if seq > routed || owed[seq] {
			needed[who] = true
			return nil
		}
		var ev struct {
			CaseID string `json:"case_id"`
		}
		if json.Unmarshal(body, &ev) == nil && ev.CaseID != "" {
			open, ok := unresolved[ev.CaseID]
			if !ok {
				var err error
				if open, err = caseUnresolved(tx, ev.CaseID); err != nil {
					return err
				}
				unresolved[ev.CaseID] = open
			}
			needed[who] = needed[who] || open
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range erased {
		if needed[o] {
			continue
		}
		if err := keys.Delete([]byte(o)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// buildPendingDue builds the due index from the pending rows once, for a
// file written before it existed; it runs in Open after the keys, since
// the rows are sealed. A crash before the mark is written builds it again.
func (s *Store) buildPendingDueBefore() error {
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

// dueOfTypeBefore is DueOfType as it was: every due row of every endpoint
// opened in one read transaction, whatever its type.
func (s *Store) dueOfTypeBefore(typ string, now time.Time) ([]store.DueDelivery, error) {
	var out []store.DueDelivery
	err := s.db.View(func(tx *bolt.Tx) error {
		outbox := tx.Bucket(bucketOutbox)
		_, _, err := dueRows(tx, now, nil, 0, func(string) {}, func(_ string, rows []dueRow) error {
			for _, r := range rows {
				if r.d.Type != typ {
					continue
				}
				body, err := eventBody(tx, outbox, r.d.Seq)
				if err != nil {
					return err
				}
				out = append(out, store.DueDelivery{Delivery: r.d, Body: body})
			}
			return nil
		})
		return err
	})
	return out, err
}
