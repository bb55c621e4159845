package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The send queue and the purge list (DESIGN §3, §4): every reply a
// transaction produces is written, in that same transaction, as a SendItem;
// the runner sends it after the commit and removes it once the platform
// accepted it (AckSends). What was not acknowledged — a crash, a SIGTERM, a
// platform outage — is still here at the next start, or when the citizen's
// message is redelivered, and goes out then.
//
// The purge list holds the platform ids of messages to delete later: the
// citizen's own message when a result asks to delete it, and the bot's
// Sensitive messages once sent. Each row has a due time and a deadline
// (platforms refuse deletes of old messages); deletes are network I/O and
// happen outside any transaction (DuePurges, SettlePurges).

var (
	bucketSendq = []byte("sendq") // user key ‖ 0x00 ‖ seq → SendItem
	bucketPurge = []byte("purge") // user key ‖ 0x00 ‖ seq → PurgeRow
)

func init() { allBuckets = append(allBuckets, bucketSendq, bucketPurge) }

func userPrefix(key string) []byte { return append([]byte(key), 0) }

func userSeqKey(key string, seq uint64) []byte { return append(userPrefix(key), u64(seq)...) }

// writeSends queues a result's replies and clean-up; it runs inside
// Process's transaction. It returns the items written and how many purge
// rows are due at once. pre, when not nil, holds the rows numbered and
// sealed ahead of the commit (prepare.go), written as they are.
func (s *Store) writeSends(tx *bolt.Tx, key string, to *store.Envelope, res dialogs.Result, now time.Time, pre *preparedSends) ([]store.SendItem, int, error) {
	if to == nil {
		return nil, 0, nil
	}
	addr := sendAddress(to, res)
	purges := 0
	if purgesInbound(to, res) {
		pb := tx.Bucket(bucketPurge)
		seq, v := uint64(0), []byte(nil)
		if pre != nil {
			seq, v = pre.purge, pre.purgeV
		} else {
			seq = s.purgeSeq.next(pb)
			var err error
			if v, err = sealedValue(tx, bucketPurge, userSeqKey(key, seq), purgeRow(key, to, addr, now)); err != nil {
				return nil, 0, err
			}
		}
		if err := s.purgeSeq.put(pb, userSeqKey(key, seq), seq, v); err != nil {
			return nil, 0, err
		}
		purges++
	}
	if !queuesReply(addr, res) {
		return nil, purges, nil
	}
	q := tx.Bucket(bucketSendq)
	if pre != nil {
		if err := s.sendSeq.put(q, userSeqKey(key, pre.item.Seq), pre.item.Seq, pre.itemV); err != nil {
			return nil, 0, err
		}
		return []store.SendItem{pre.item}, purges, nil
	}
	it := sendItem(key, s.sendSeq.next(q), to, addr, res, now)
	k := userSeqKey(key, it.Seq)
	v, err := sealedValue(tx, bucketSendq, k, it)
	if err != nil {
		return nil, 0, err
	}
	if err := s.sendSeq.put(q, k, it.Seq, v); err != nil {
		return nil, 0, err
	}
	return []store.SendItem{it}, purges, nil
}

// sealedValue is v as putSealed would store it under k in bucket name.
func sealedValue(tx *bolt.Tx, name, k []byte, v any) ([]byte, error) {
	enc, min, err := encodeValue(v)
	if err != nil {
		return nil, err
	}
	c := codecOf(tx)
	if c == nil {
		return enc, nil
	}
	return c.sealValue(tx, name, k, ownerOf(name, k), enc, min)
}

// sendAddress is where a result's replies go: the envelope's address, or
// the registrant's own for a timer.
func sendAddress(to *store.Envelope, res dialogs.Result) string {
	if to.Address != "" {
		return to.Address
	}
	return res.State.Address
}

// purgesInbound reports whether a result puts the citizen's message on
// the purge list.
func purgesInbound(to *store.Envelope, res dialogs.Result) bool {
	return res.DeleteInbound && to.DeleteID != ""
}

// purgeRow is the purge-list row of the citizen's message.
func purgeRow(key string, to *store.Envelope, addr string, now time.Time) store.PurgeRow {
	return store.PurgeRow{UserKey: key, Channel: to.Channel, Address: addr, MsgID: to.DeleteID, Due: now.UTC(),
		Deadline: to.DeleteBy.UTC(), Inbound: true}
}

// queuesReply reports whether a result puts a row in the send queue.
// Without an address (an erased registrant of a timer) there is nowhere
// to send, and nothing is queued.
func queuesReply(addr string, res dialogs.Result) bool {
	return (len(res.Replies) > 0 || res.PurgeSensitive) && addr != ""
}

// sendItem is the send-queue row of a result.
func sendItem(key string, seq uint64, to *store.Envelope, addr string, res dialogs.Result, now time.Time) store.SendItem {
	return store.SendItem{Seq: seq, UserKey: key, Channel: to.Channel, Address: addr, Created: now.UTC(), Replies: res.Replies,
		PurgeSensitive: res.PurgeSensitive, Prompt: res.Prompt, Urgent: res.Urgent, Scheduled: to.Scheduled}
}

// rowSeq hands out the sequence numbers of the send queue's or the purge
// list's rows, whose keys hold them. Numbers come from a counter in
// memory, started once from the bucket's stored sequence (read in
// whatever transaction first needs a number), so a write prepared outside
// the commit can seal its rows — the key is part of what a sealed value
// is bound to — before the commit. The commit stores the highest number it
// writes as the bucket's sequence (put), so a restart never hands out a
// number again; numbers of writes that were not committed are skipped. A
// citizen's send-queue rows keep their order: only their events write
// them, one after another, and a prepared write whose record changed
// meanwhile is numbered again (prepare.go). Their purge rows need not:
// AckSends, outside the citizen's turn, may commit rows numbered after
// the purge row an event prepared and has yet to commit. Nothing reads
// purge rows in order (each is deleted on its own due time), and
// numbering the prepared row again would make the stored sequence depend
// on timing (TestDuressLeavesNoClearTrace compares it), so it is not.
type rowSeq struct {
	once sync.Once
	n    atomic.Uint64
}

// start starts the counter from b's sequence, once.
func (r *rowSeq) start(b *bolt.Bucket) { r.once.Do(func() { r.n.Store(b.Sequence()) }) }

// next hands out the next number.
func (r *rowSeq) next(b *bolt.Bucket) uint64 {
	r.start(b)
	return r.n.Add(1)
}

// put writes v under k, the row numbered seq, and keeps b's sequence at
// the highest number written.
func (r *rowSeq) put(b *bolt.Bucket, k []byte, seq uint64, v []byte) error {
	if seq > b.Sequence() {
		if err := b.SetSequence(seq); err != nil {
			return err
		}
	}
	return b.Put(k, v)
}

// PendingSends returns the unsent items of one citizen, or of everyone when
// userKey is empty: per citizen in the order they were written.
func (s *Store) PendingSends(userKey string) ([]store.SendItem, error) {
	var out []store.SendItem
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSendq).Cursor()
		prefix := []byte(nil)
		if userKey != "" {
			prefix = userPrefix(userKey)
		}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var it store.SendItem
			if err := getSealed(tx, bucketSendq, k, v, &it); err != nil {
				return fmt.Errorf("send queue row %x is unreadable: %w", k, err)
			}
			out = append(out, it)
		}
		return nil
	})
	return out, err
}

// UnsentSends pages through the whole send queue for the periodic resend:
// from the row after cursor (nil: the first), it returns up to limit
// (<= 0: no limit) rows for which skip(seq) is false — skip is asked from the key alone,
// before the row is opened, so rows a channel already holds (most of a
// crowded hour's queue) cost a key comparison, not a decryption — and the
// cursor to continue from (nil: the end was reached). Each page is its own
// short read transaction, so memory stays at one page however long the
// queue, and the writer's remapping is never held back.
func (s *Store) UnsentSends(cursor []byte, skip func(seq uint64) bool, limit int) ([]store.SendItem, []byte, error) {
	var out []store.SendItem
	var next, last []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		out, next, last = nil, nil, nil
		c := tx.Bucket(bucketSendq).Cursor()
		k, v := c.First()
		if cursor != nil {
			if k, v = c.Seek(cursor); k != nil && bytes.Equal(k, cursor) {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			if len(k) < 9 {
				return fmt.Errorf("send queue key %x is malformed", k)
			}
			if skip != nil && skip(binary.BigEndian.Uint64(k[len(k)-8:])) {
				continue
			}
			if limit > 0 && len(out) == limit {
				next = last // more to read: the next page starts after the last row returned
				return nil
			}
			var it store.SendItem
			if err := getSealed(tx, bucketSendq, k, v, &it); err != nil {
				return fmt.Errorf("send queue row %x is unreadable: %w", k, err)
			}
			out, last = append(out, it), bytes.Clone(k)
		}
		return nil
	})
	return out, next, err
}

// StillQueued reports whether an item is still in the send queue (not yet
// acknowledged). The runner asks after claiming an item it read earlier:
// its acknowledgement may have committed in between.
func (s *Store) StillQueued(userKey string, seq uint64) (bool, error) {
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketSendq).Get(userSeqKey(userKey, seq)) != nil
		return nil
	})
	return found, err
}

// AckSends removes settled items and records what their sending asks for
// (ids to purge later, a purge now), all in one write that shares a group
// commit with whatever else is being written. An ack lost in a crash only
// means the item is sent again at the next start.
func (s *Store) AckSends(acks []store.SendAck) error {
	if len(acks) == 0 {
		return nil
	}
	if err := s.writeFault(); err != nil {
		return fmt.Errorf("store: ack sends: %w", err)
	}
	err := s.update(func(tx *bolt.Tx) error {
		q, pb := tx.Bucket(bucketSendq), tx.Bucket(bucketPurge)
		for _, a := range acks {
			if err := q.Delete(userSeqKey(a.UserKey, a.Seq)); err != nil {
				return err
			}
			if err := settlePromptSend(tx, a); err != nil { // roll-call counters (rollcall_counts.go)
				return err
			}
			for _, row := range a.Remember {
				seq := s.purgeSeq.next(pb)
				row.UserKey = a.UserKey
				k := userSeqKey(a.UserKey, seq)
				v, err := sealedValue(tx, bucketPurge, k, row)
				if err != nil {
					return err
				}
				if err := s.purgeSeq.put(pb, k, seq, v); err != nil {
					return err
				}
			}
			if a.Purge {
				if err := makeDue(pb, a.UserKey, a.PurgeAt); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: ack sends: %w", err)
	}
	return nil
}

// makeDue brings every purge row of a citizen forward to at.
func makeDue(pb *bolt.Bucket, userKey string, at time.Time) error {
	prefix := userPrefix(userKey)
	type kv struct {
		k     []byte
		row   store.PurgeRow
		owner string
	}
	var changed []kv
	tx := pb.Tx()
	c := pb.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var row store.PurgeRow
		if err := getSealed(tx, bucketPurge, k, v, &row); err != nil {
			return fmt.Errorf("purge row %x is unreadable: %w", k, err)
		}
		if row.Due.After(at) {
			row.Due = at.UTC()
			changed = append(changed, kv{append([]byte(nil), k...), row, storedOwner(bucketPurge, k, v)})
		}
	}
	for _, e := range changed {
		if err := putSealedAs(tx, bucketPurge, e.k, e.row, e.owner); err != nil {
			return err
		}
	}
	return nil
}

// DuePurges returns the purge rows due at now, and the earliest due time
// of the others (zero if none).
func (s *Store) DuePurges(now time.Time) ([]store.PurgeRow, time.Time, error) {
	var due []store.PurgeRow
	var next time.Time
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPurge).ForEach(func(k, v []byte) error {
			var row store.PurgeRow
			if err := getSealed(tx, bucketPurge, k, v, &row); err != nil {
				return fmt.Errorf("purge row %x is unreadable: %w", k, err)
			}
			if row.Due.After(now) {
				if next.IsZero() || row.Due.Before(next) {
					next = row.Due
				}
				return nil
			}
			row.Key = append([]byte(nil), k...)
			due = append(due, row)
			return nil
		})
	})
	return due, next, err
}

// SettlePurges removes the rows in done and rewrites those in retry (with
// their new Due and Tries), in one write.
func (s *Store) SettlePurges(done, retry []store.PurgeRow) error {
	if len(done)+len(retry) == 0 {
		return nil
	}
	if err := s.writeFault(); err != nil {
		return fmt.Errorf("store: settle purges: %w", err)
	}
	err := s.update(func(tx *bolt.Tx) error {
		pb := tx.Bucket(bucketPurge)
		for _, row := range done {
			if err := pb.Delete(row.Key); err != nil {
				return err
			}
		}
		for _, row := range retry {
			old := pb.Get(row.Key)
			if old == nil {
				continue
			}
			if err := putSealedAs(tx, bucketPurge, row.Key, row, storedOwner(bucketPurge, row.Key, old)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: settle purges: %w", err)
	}
	return nil
}

// PurgeRows returns every row of the purge list (for tests and checks).
func (s *Store) PurgeRows() ([]store.PurgeRow, error) {
	rows, _, err := s.DuePurges(time.Unix(1<<40, 0))
	return rows, err
}

// writeFaults holds the write writeFaults injected by SetWriteFault, per store.
var writeFaults sync.Map // *Store → error

// SetWriteFault makes every event write of this store fail with err, as a
// full or failing disk would, until it is called again with nil. Reads
// keep working. It exists for drills and for the tests that prove an
// update is never dropped because the store could not write.
func (s *Store) SetWriteFault(err error) {
	if err == nil {
		writeFaults.Delete(s)
		return
	}
	writeFaults.Store(s, err)
}

func (s *Store) writeFault() error {
	if v, ok := writeFaults.Load(s); ok {
		return v.(error)
	}
	return nil
}

// badEvent turns a panic inside an event's transaction into ErrBadEvent.
// Only the runtime's own description is kept: a panic value could carry
// message text.
func badEvent(p any) error {
	if re, ok := p.(runtime.Error); ok {
		return fmt.Errorf("%w: panicked: %s", store.ErrBadEvent, re.Error())
	}
	return fmt.Errorf("%w: panicked (%T)", store.ErrBadEvent, p)
}
