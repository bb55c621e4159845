package boltstore

import (
	"bytes"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// Preparing a write outside the commit (issue 15 item 2). The store has
// one commit goroutine; everything it does for an event is time no other
// event's write can use. So ProcessSend first prepares the event in the
// caller's goroutine — many callers in parallel — from a read
// transaction that runs beside the writer:
//
//   - the inbound-id check, the stored record and its data key read;
//   - the record opened and decoded, the handler (the engine) run on it;
//   - the new record, its registrant index row, its send-queue and
//     purge-list rows (numbered from counters in memory: rowSeq) encoded
//     and sealed.
//
// The commit then applies it: it checks that the snapshot is still
// current (current: the stored record byte-identical to what was read —
// every write of a record seals it with a fresh nonce, so any write since
// shows — its data key and index entry unchanged, the inbound id still
// absent, the same index router), writes the prepared bytes, and does
// inside the transaction only what needs shared state: case ids, outbox
// order and event ids, the audit chain, counters, the due index. An
// escalation that opens a case changes the state the record was
// sealed from (its open case): the record and row are then sealed again
// inside the commit. A snapshot that is no longer current falls back to
// processIn, the whole event inside the transaction, the handler run
// again on the fresh record: correctness never depends on the prepared
// path. A record not written yet (no data key), a duplicate, a record
// that does not open and a handler that panics are all left to processIn,
// which reports them as before.
//
// Per-registrant order is the caller's (the runner holds the
// registrant's turn), so a snapshot is normally current; what can touch
// a record in between is a write outside that order — retention, the
// embassy API, a master-key rotation, an index rebuild.

// prepared is one event handled ahead of the commit.
type prepared struct {
	raw     []byte        // the stored registrant value read
	wrapped []byte        // its data key, wrapped, as read (nil in a file without encryption)
	route   *store.Router // the index router the row was filed with
	idx     bool          // the index buckets existed: oldIdx was read and row prepared
	oldIdx  []byte        // the registrant's regindex_user entry as read (nil: none)
	oldRow  []byte        // the index row stored under oldIdx as read (nil: none)

	prev dialogs.State
	res  dialogs.Result

	openCase string       // the open case the record and row were sealed with
	record   []byte       // the new record as stored; nil when the event erases
	row      *preparedRow // the new index entry; nil when not prepared
	sends    *preparedSends
}

// preparedSends are the send-queue and purge-list rows of an event,
// numbered and sealed ahead of the commit: itemV nil when no reply is
// queued, purgeV nil when the citizen's message is not purged.
type preparedSends struct {
	item   store.SendItem
	itemV  []byte
	purge  uint64
	purgeV []byte
}

// preparedRow is a registrant index entry sealed ahead of the commit; k
// nil means the registrant is not listed. same means the entry stored is
// already this one, key and row (a timer that changes nothing the embassy
// sees): the commit leaves it alone rather than delete and write it again,
// which at a million registrants is two random-key writes — two more
// B-tree leaves dirtied — per timer.
type preparedRow struct {
	k, v []byte
	same bool
}

// prepareStats counts how prepared writes ended, for tests.
type prepareStats struct {
	prepared, fellBack atomic.Int64
}

// SetPrepare turns preparing writes outside the commit on (the default)
// or off. Off, every event runs wholly inside the commit goroutine, as
// before issue 15: it exists so benchmarks can compare the two paths in
// one run and tests can check they agree, and is never needed in service.
func (s *Store) SetPrepare(on bool) { s.allInCommit.Store(!on) }

// prepare handles an event for key from a read transaction, outside the
// commit goroutine. It returns nil when the event must run wholly inside
// the commit (processIn).
func (s *Store) prepare(key, inboundID string, now time.Time, to *store.Envelope, h store.Handler) *prepared {
	if s.allInCommit.Load() {
		return nil
	}
	var c *codec
	if v, ok := codecs.Load(s.db); ok {
		c = v.(*codec)
	}
	p := &prepared{route: s.route.Load()}
	ok := false
	err := s.db.View(func(tx *bolt.Tx) error {
		if inboundID != "" && tx.Bucket(bucketInbound).Get([]byte(inboundID)) != nil {
			return nil // a redelivery: processIn says so
		}
		raw := tx.Bucket(bucketRegistrants).Get([]byte(key))
		if raw == nil {
			return nil // a new record: it gets its data key inside the commit
		}
		p.raw = bytes.Clone(raw)
		if c != nil {
			w := tx.Bucket(bucketKeys).Get([]byte(key))
			if w == nil {
				return nil
			}
			p.wrapped = bytes.Clone(w)
		}
		s.sendSeq.start(tx.Bucket(bucketSendq))
		s.purgeSeq.start(tx.Bucket(bucketPurge))
		if users := tx.Bucket(bucketRegIndexUser); users != nil && tx.Bucket(bucketRegIndex) != nil {
			p.idx, p.oldIdx = true, bytes.Clone(users.Get([]byte(key)))
			if p.oldIdx != nil {
				p.oldRow = bytes.Clone(tx.Bucket(bucketRegIndex).Get(p.oldIdx))
			}
		}
		ok = true
		return nil
	})
	if err != nil || !ok {
		return nil
	}
	// Outside the read transaction: it holds back the writer's remapping.
	var dkey *seal.Key
	plain := p.raw
	if c != nil {
		if dkey, err = c.unwrap(p.wrapped, registrantOwner(key)); err != nil {
			return nil
		}
		owner, sealed, ok := splitValue(bucketRegistrants, []byte(key), p.raw)
		if !ok || owner != key || !seal.Sealed(sealed) {
			return nil
		}
		if plain, err = dkey.Open(sealed, valueAD(bucketRegistrants, []byte(key), p.raw[0])); err != nil {
			return nil
		}
	}
	if json.Unmarshal(plain, &p.prev) != nil {
		return nil
	}
	if p.res, ok = handleSafely(h, p.prev); !ok {
		return nil
	}
	if p.res.Erase {
		return p // nothing to seal: the record and its row go, the rows left are sealed again
	}
	if to != nil {
		p.sends = &preparedSends{}
		addr := sendAddress(to, p.res)
		if purgesInbound(to, p.res) {
			p.sends.purge = s.purgeSeq.n.Add(1)
			row := purgeRow(key, to, addr, now)
			if p.sends.purgeV, err = sealFor(dkey, bucketPurge, userSeqKey(key, p.sends.purge), row); err != nil {
				return nil
			}
		}
		if queuesReply(addr, p.res) {
			p.sends.item = sendItem(key, s.sendSeq.n.Add(1), to, addr, p.res, now)
			if p.sends.itemV, err = sealFor(dkey, bucketSendq, userSeqKey(key, p.sends.item.Seq), p.sends.item); err != nil {
				return nil
			}
		}
	}
	p.openCase = p.res.State.OpenCase
	if p.record, err = sealFor(dkey, bucketRegistrants, []byte(key), &p.res.State); err != nil {
		return nil
	}
	if p.idx {
		since, _ := overdueSince(p.oldIdx, len(key))
		if since.IsZero() {
			since = now.UTC()
		}
		var route store.Router
		if p.route != nil {
			route = *p.route
		}
		p.row = &preparedRow{}
		if k, row, listed := indexEntry(route, key, p.res.State, since); listed {
			if c != nil && ownerOf(bucketRegIndex, k) != key {
				p.row = nil // a key the row's owner cannot be read back from: the commit seals it
			} else if bytes.Equal(k, p.oldIdx) && storedRowIs(dkey, k, p.oldRow, row) {
				p.row.k, p.row.same = k, true
			} else if p.row.v, err = sealFor(dkey, bucketRegIndex, k, row); err != nil {
				return nil
			} else {
				p.row.k = k
			}
		}
	}
	return p
}

// sealFor is the stored form of v under record k of bucket name, owned by
// the registrant whose data key is dkey (nil: a file without encryption),
// as putSealed writes it.
func sealFor(dkey *seal.Key, name, k []byte, v any) ([]byte, error) {
	enc, min, err := encodeValue(v)
	if err != nil || dkey == nil {
		return enc, err
	}
	return sealWith(dkey, name, k, ownerOf(name, k), enc, min), nil
}

// storedRowIs reports whether stored, the index row stored under k, holds
// exactly row (what putSealed would write for it, before sealing). A row
// that does not open, or any doubt, is "no": the row is then written again.
func storedRowIs(dkey *seal.Key, k, stored []byte, row store.RegistrantRow) bool {
	if stored == nil {
		return false
	}
	enc, _, err := encodeValue(row)
	if err != nil {
		return false
	}
	if dkey == nil {
		return bytes.Equal(stored, enc)
	}
	owner, sealed, ok := splitValue(bucketRegIndex, k, stored)
	if !ok || owner != ownerOf(bucketRegIndex, k) || !seal.Sealed(sealed) {
		return false
	}
	plain, err := dkey.Open(sealed, valueAD(bucketRegIndex, k, stored[0]))
	return err == nil && bytes.Equal(plain, enc)
}

// handleSafely runs the handler, reporting a panic as not ok (processIn
// then runs it again inside the commit, and reports it).
func handleSafely(h store.Handler, prev dialogs.State) (res dialogs.Result, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return h(prev, true), true
}

// current reports whether what p was prepared from is still what tx
// holds.
func (p *prepared) current(s *Store, tx *bolt.Tx, key, inboundID string) bool {
	if inboundID != "" && tx.Bucket(bucketInbound).Get([]byte(inboundID)) != nil {
		return false
	}
	if !bytes.Equal(tx.Bucket(bucketRegistrants).Get([]byte(key)), p.raw) {
		return false
	}
	if p.wrapped != nil && !bytes.Equal(tx.Bucket(bucketKeys).Get([]byte(key)), p.wrapped) {
		return false
	}
	if s.route.Load() != p.route {
		return false
	}
	if p.idx {
		users := tx.Bucket(bucketRegIndexUser)
		idx := tx.Bucket(bucketRegIndex)
		if users == nil || idx == nil || !bytes.Equal(users.Get([]byte(key)), p.oldIdx) {
			return false
		}
		if p.row != nil && p.row.same && !bytes.Equal(idx.Get(p.oldIdx), p.oldRow) {
			return false
		}
	}
	return true
}

// applyPrepared is the write of a prepared event: p's bytes when p is
// still current, processIn otherwise. Like every write it may run more
// than once; it never changes p.
func (s *Store) applyPrepared(p *prepared, key, inboundID string, now time.Time, to *store.Envelope, h store.Handler,
	out *store.Outcome) func(*bolt.Tx) error {
	fallback := processIn(s, key, inboundID, now, to, h, out)
	return func(tx *bolt.Tx) (err error) {
		if !p.current(s, tx, key, inboundID) {
			s.prep.fellBack.Add(1)
			return fallback(tx)
		}
		defer func() {
			if r := recover(); r != nil {
				err = badEvent(r)
			}
		}()
		s.prep.prepared.Add(1)
		*out = store.Outcome{}
		return s.applyIn(tx, key, inboundID, now, to, p.prev, true, p.res, p, out)
	}
}

// recordFor is the prepared record, if it was sealed from st: nil when
// there is none or an escalation inside the commit changed st's open case.
func (p *prepared) recordFor(st *dialogs.State) []byte {
	if p == nil || p.record == nil || st.OpenCase != p.openCase {
		return nil
	}
	return p.record
}

// sendsFor is the prepared send-queue and purge-list rows, if any: their
// numbers and sealing depend on nothing the commit changes.
func (p *prepared) sendsFor() *preparedSends {
	if p == nil {
		return nil
	}
	return p.sends
}

// rowFor is the prepared index entry, under the same condition as
// recordFor.
func (p *prepared) rowFor(st *dialogs.State) *preparedRow {
	if p == nil || p.row == nil || st.OpenCase != p.openCase {
		return nil
	}
	return p.row
}
