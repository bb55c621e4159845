package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	bolt "go.etcd.io/bbolt"
)

// Retention (issue 13 item 5, issue 15 item 3). Two things live here:
//
//   - RegistrantsAfter pages through the registrants for the retention
//     sweep (bot/retention.go) in short read transactions; the sweep only
//     proposes, and every notice or removal then goes through Process like
//     any event, so indexes, roll-call memberships and the audit trail stay
//     exact and `checkinbot check` stays clean.
//   - Prune removes what has outlived its audit period in bounded batches:
//     at most PruneBatch deletes per write transaction, keys walked in time
//     order and the walk stopped at the cutoff, so no write ever waits
//     behind a whole-bucket scan.

// PruneBatch is the most rows one pruning write transaction deletes. Each
// batch is its own short transaction through the group commit, so a
// citizen's write waits at most for one batch, never for the whole prune.
const PruneBatch = 1000

// pruneScan bounds the rows one pruning transaction examines (kept rows
// included: an outbox event still owed to an endpoint), so a long outage's
// backlog costs bounded work per transaction too.
const pruneScan = 10 * PruneBatch

// pruneHook, when set (tests only), is told after each pruning write
// committed how many rows it deleted and from which bucket.
var pruneHook func(bucket string, deleted int)

// RegistrantsAfter returns up to limit registrants whose keys follow after
// (all from the first when after is ""), in key order, read in one short
// read transaction, and the key to continue after ("" at the end). A record
// that cannot be read is skipped and counted in unreadable, so one damaged
// record never stops the sweep for everyone after it (`checkinbot check`
// names it).
func (s *Store) RegistrantsAfter(after string, limit int) (page []dialogs.State, next string, unreadable int, err error) {
	if limit <= 0 {
		limit = PruneBatch
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRegistrants).Cursor()
		k, v := c.Seek([]byte(after))
		if after != "" && k != nil && string(k) == after {
			k, v = c.Next()
		}
		var last []byte
		for ; k != nil; k, v = c.Next() {
			if len(page)+unreadable == limit {
				next = string(last) // the last one read: the caller goes on after it
				return nil
			}
			last = k
			var st dialogs.State
			if getSealed(tx, bucketRegistrants, k, v, &st) != nil {
				unreadable++
				continue
			}
			st.Key = string(k)
			page = append(page, st)
		}
		return nil
	})
	if err != nil {
		return nil, "", 0, fmt.Errorf("store: registrants for retention: %w", err)
	}
	return page, next, unreadable, nil
}

// Prune deletes archived deliveries done before cutoff, outbox events
// recorded before cutoff that are routed and owed to no endpoint any more,
// and processed inbound ids older than cutoff (platforms redeliver within
// hours, not weeks), in batches of at most PruneBatch deletes per write
// transaction. It returns how many outbox events it removed.
func (s *Store) Prune(cutoff time.Time) (int, error) {
	if err := s.pruneDelivered(cutoff); err != nil {
		return 0, fmt.Errorf("store: prune delivered: %w", err)
	}
	n, err := s.pruneOutbox(cutoff)
	if err != nil {
		return n, fmt.Errorf("store: prune outbox: %w", err)
	}
	// Erased registrants' one-off keys nothing owed needs any more
	// (erase.go): only their own rows are read, through the owner index.
	if _, err := s.sweepErased(); err != nil {
		return n, fmt.Errorf("store: prune erased keys: %w", err)
	}
	if err := s.pruneInbound(cutoff); err != nil {
		return n, fmt.Errorf("store: prune inbound ids: %w", err)
	}
	return n, nil
}

// pruneDelivered walks the archive (keyed by done time) from its oldest row
// and stops at the first row at or after cutoff.
func (s *Store) pruneDelivered(cutoff time.Time) error {
	limit := u64(uint64(cutoff.UnixNano()))
	for {
		n := 0
		err := s.updateBulk(func(tx *bolt.Tx) error {
			n = 0
			b := tx.Bucket(bucketDelivered)
			var old [][]byte
			c := b.Cursor()
			for k, _ := c.First(); k != nil && len(old) < PruneBatch && bytes.Compare(k[:min(8, len(k))], limit) < 0; k, _ = c.Next() {
				old = append(old, bytes.Clone(k))
			}
			for _, k := range old {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(old)
			return nil
		})
		if err != nil {
			return err
		}
		notePrune("delivered", n)
		if n < PruneBatch {
			return nil
		}
	}
}

// pruneOutbox walks the outbox in recording order (which is time order)
// from its first event, stopping at the first event not yet routed or
// recorded at or after cutoff. Events still owed to an endpoint are kept
// and stepped over.
func (s *Store) pruneOutbox(cutoff time.Time) (int, error) {
	total := 0
	from := uint64(0)
	for {
		n, next, done := 0, uint64(0), false
		err := s.updateBulk(func(tx *bolt.Tx) error {
			n, next, done = 0, from, false
			var routed uint64
			if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
				routed = binary.BigEndian.Uint64(v)
			}
			pending := tx.Bucket(bucketPending)
			endpoints := pendingEndpoints(pending)
			outbox := tx.Bucket(bucketOutbox)
			var gone [][]byte
			c := outbox.Cursor()
			examined := 0
			k, v := c.Seek(u64(from))
			for ; k != nil && examined < pruneScan && len(gone) < PruneBatch; k, v = c.Next() {
				seq := binary.BigEndian.Uint64(k)
				at, ok, shredded := eventTime(tx, k, v)
				if seq > routed || (ok && !at.Before(cutoff)) {
					done = true
					break
				}
				examined++
				next = seq + 1
				if (!ok && !shredded) || owed(pending, endpoints, seq) {
					continue // unreadable events are left for `checkinbot check` to report
				}
				// An erased registrant's event whose key is destroyed opens
				// for nobody: removed at once, whatever its age.
				gone = append(gone, bytes.Clone(k))
			}
			if k == nil {
				done = true
			}
			for _, k := range gone {
				// Its index entries go with it (events.go); an erased
				// registrant's event gives them from its outer layer.
				ev, err := eventIndexFields(tx, k, outbox.Get(k))
				if err != nil {
					return fmt.Errorf("outbox event %d is corrupt: %w", binary.BigEndian.Uint64(k), err)
				}
				if err := unfileOwnerEvent(tx, k, outbox.Get(k)); err != nil { // erase.go
					return err
				}
				if err := outbox.Delete(k); err != nil {
					return err
				}
				if err := unindexEvent(tx, ev, binary.BigEndian.Uint64(k)); err != nil {
					return err
				}
			}
			n = len(gone)
			return nil
		})
		if err != nil {
			return total, err
		}
		notePrune("outbox", n)
		total += n
		if done || next == from {
			return total, nil
		}
		from = next
	}
}

// pruneInbound removes processed inbound ids older than cutoff. Their keys
// are platform message ids, in no time order: short read transactions find
// the old ones, page by page, and each write deletes at most PruneBatch of
// them after checking each is still old.
func (s *Store) pruneInbound(cutoff time.Time) error {
	stale := func(v []byte) bool {
		return len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < cutoff.Unix()
	}
	var after []byte
	for {
		var old [][]byte
		end := true
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketInbound).Cursor()
			k, v := c.Seek(after)
			if after != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
			for examined := 0; k != nil; k, v = c.Next() {
				if examined == pruneScan || len(old) == PruneBatch {
					end = false
					return nil
				}
				examined++
				after = bytes.Clone(k)
				if stale(v) {
					old = append(old, bytes.Clone(k))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(old) > 0 {
			n := 0
			if err := s.updateBulk(func(tx *bolt.Tx) error {
				n = 0
				b := tx.Bucket(bucketInbound)
				for _, k := range old {
					if !stale(b.Get(k)) {
						continue // seen again meanwhile
					}
					if err := b.Delete(k); err != nil {
						return err
					}
					n++
				}
				return nil
			}); err != nil {
				return err
			}
			notePrune("inbound", n)
		}
		if end {
			return nil
		}
	}
}

// pendingEndpoints lists the endpoints with pending rows, one seek each.
func pendingEndpoints(pending *bolt.Bucket) [][]byte {
	var out [][]byte
	c := pending.Cursor()
	for k, _ := c.First(); k != nil; {
		if len(k) < 9 {
			k, _ = c.Next()
			continue
		}
		ep := bytes.Clone(k[:len(k)-9])
		out = append(out, ep)
		k, _ = c.Seek(append(bytes.Clone(ep), 1))
	}
	return out
}

// owed reports whether any endpoint still has a pending row for seq.
func owed(pending *bolt.Bucket, endpoints [][]byte, seq uint64) bool {
	for _, ep := range endpoints {
		if pending.Get(append(append(bytes.Clone(ep), 0), u64(seq)...)) != nil {
			return true
		}
	}
	return false
}

// eventTime reads an outbox event's created_at; ok is false when the body
// cannot be read, and shredded tells that it never will be (its
// registrant was erased, their key destroyed).
func eventTime(tx *bolt.Tx, k, v []byte) (at time.Time, ok, shredded bool) {
	var ev struct {
		CreatedAt time.Time `json:"created_at"`
	}
	body, _, err := eventOf(tx, k, v)
	if errors.Is(err, errShredded) {
		return time.Time{}, false, true
	}
	if err != nil || json.Unmarshal(body, &ev) != nil {
		return time.Time{}, false, false
	}
	return ev.CreatedAt, true, false
}

func notePrune(bucket string, n int) {
	if h := pruneHook; h != nil {
		h(bucket, n)
	}
}
