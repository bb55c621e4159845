package boltstore

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The event indexes (issue 12 item 4): an embassy pulls its events, and
// reads one case's events, without the outbox being scanned. Every event
// an embassy may pull gets, in the transaction that appends it to the
// outbox, a number in its embassy's own sequence and four index entries;
// Prune removes them with the outbox row. The pull cursor is that
// per-embassy number, so it tells an embassy nothing about the volume of
// any other (the outbox sequence is shared by all).
//
// What the indexes hold in clear is what the queries need: embassy ids,
// case ids, event ids and sequence numbers — no event type, registrant or
// time. Heartbeats (per endpoint, not pulled) and events of no embassy
// are left out of them.
var (
	// bucketEventIndex: embassy ‖ 0x00 ‖ 8-byte embassy sequence → 8-byte
	// outbox sequence: the embassy's events in recording order.
	bucketEventIndex = []byte("event_index")
	// bucketEventUnacked: the same keys and values, for the events the
	// embassy has not acknowledged (unacked=1 walks it).
	bucketEventUnacked = []byte("event_unacked")
	// bucketEventSeq: embassy → 8-byte last embassy sequence given out
	// (kept apart from the index so a pruned tail never reuses a number).
	bucketEventSeq = []byte("event_seq")
	// bucketEventIDs: event id → 8-byte outbox sequence ‖ 8-byte embassy
	// sequence: how an acknowledgement finds its event.
	bucketEventIDs = []byte("event_ids")
	// bucketCaseEvents: case id ‖ 0x00 ‖ 8-byte outbox sequence → nothing:
	// a case's events in case_seq order.
	bucketCaseEvents = []byte("case_events")

	// keyEventIndexBuilt marks a file whose event indexes were built from
	// its outbox (migrate); from then on every write keeps them.
	keyEventIndexBuilt = []byte("event_index_built")
)

func init() {
	allBuckets = append(allBuckets, bucketEventIndex, bucketEventUnacked, bucketEventSeq, bucketEventIDs, bucketCaseEvents)
}

func embassyEventKey(embassy string, eseq uint64) []byte {
	return append(append([]byte(embassy), 0), u64(eseq)...)
}

func caseEventKey(caseID string, seq uint64) []byte {
	return append(append([]byte(caseID), 0), u64(seq)...)
}

// recordEvent appends ev to the outbox and files it in the event indexes,
// in tx: the only way an event enters the outbox, so no event is ever
// recorded without its index entries. It returns the outbox sequence.
// owner is the registrant whose data key seals its body ("" for events
// about no registrant: sealing.go).
func recordEvent(tx *bolt.Tx, ev store.Event, owner string) (uint64, error) {
	outbox := appendBucket(tx, bucketOutbox)
	seq, err := outbox.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := putEvent(tx, seq, owner, ev); err != nil {
		return 0, err
	}
	if err := fileOwnerRow(tx, owner, rowEvent, u64(seq)); err != nil { // the owner index (erase.go)
		return 0, err
	}
	if err := routeRecorded(tx, seq, ev); err != nil { // delivery.go
		return 0, err
	}
	return seq, indexEvent(tx, ev, seq, false)
}

// indexEvent files the event recorded at outbox seq in the indexes
// (acked: the embassy acknowledged it already, a backfill's case).
func indexEvent(tx *bolt.Tx, ev store.Event, seq uint64, acked bool) error {
	if ev.CaseID != "" {
		if err := appendBucket(tx, bucketCaseEvents).Put(caseEventKey(ev.CaseID, seq), nil); err != nil {
			return err
		}
	}
	if ev.EmbassyID == "" || !pulled(ev.EmbassyID, ev) {
		return nil // no embassy can pull it
	}
	seqs := tx.Bucket(bucketEventSeq)
	var eseq uint64
	if v := seqs.Get([]byte(ev.EmbassyID)); len(v) == 8 {
		eseq = binary.BigEndian.Uint64(v)
	}
	eseq++
	if err := seqs.Put([]byte(ev.EmbassyID), u64(eseq)); err != nil {
		return err
	}
	k := embassyEventKey(ev.EmbassyID, eseq)
	if err := tx.Bucket(bucketEventIndex).Put(k, u64(seq)); err != nil {
		return err
	}
	if !acked {
		if err := tx.Bucket(bucketEventUnacked).Put(k, u64(seq)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketEventIDs).Put([]byte(ev.ID), append(u64(seq), u64(eseq)...))
}

// unindexEvent removes the index entries of the event at outbox seq (when
// Prune deletes it), and its acknowledgement.
func unindexEvent(tx *bolt.Tx, ev store.Event, seq uint64) error {
	if ev.CaseID != "" {
		if err := tx.Bucket(bucketCaseEvents).Delete(caseEventKey(ev.CaseID, seq)); err != nil {
			return err
		}
	}
	ids := tx.Bucket(bucketEventIDs)
	v := ids.Get([]byte(ev.ID))
	if len(v) != 16 || binary.BigEndian.Uint64(v) != seq {
		return nil // not pulled (a heartbeat), or never indexed
	}
	k := embassyEventKey(ev.EmbassyID, binary.BigEndian.Uint64(v[8:]))
	for _, b := range [][]byte{bucketEventIndex, bucketEventUnacked} {
		if err := tx.Bucket(b).Delete(k); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketEventAcks).Delete(ackKey(ev.EmbassyID, ev.ID)); err != nil {
		return err
	}
	return ids.Delete([]byte(ev.ID))
}

// backfillEventIndex builds the event indexes of a file written before
// they existed from its outbox, once (acknowledged events are left out of
// the unacknowledged index). Embassy sequences start at 1 in outbox order.
func backfillEventIndex(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyEventIndexBuilt) != nil {
		return nil
	}
	acks := tx.Bucket(bucketEventAcks)
	if err := tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		var ev store.Event
		if err := getEvent(tx, k, v, &ev); err != nil {
			return fmt.Errorf("outbox event %d is corrupt: %w", binary.BigEndian.Uint64(k), err)
		}
		return indexEvent(tx, ev, binary.BigEndian.Uint64(k), acks.Get(ackKey(ev.EmbassyID, ev.ID)) != nil)
	}); err != nil {
		return err
	}
	return meta.Put(keyEventIndexBuilt, []byte{1})
}

// Events returns the embassy's events recorded after q.After (a number of
// the embassy's own sequence), oldest first, exactly as the webhooks carry
// them: one seek in the embassy's index (or its unacknowledged index) and
// one outbox read per event, whatever else the outbox holds.
func (s *Store) Events(q store.EventQuery) (store.EventPage, error) {
	page := store.EventPage{Next: q.After}
	if q.Limit < 1 {
		q.Limit = 1
	}
	bucket := bucketEventIndex
	if q.Unacked {
		bucket = bucketEventUnacked
	}
	prefix := append([]byte(q.Embassy), 0)
	err := s.db.View(func(tx *bolt.Tx) error {
		outbox := tx.Bucket(bucketOutbox)
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(embassyEventKey(q.Embassy, q.After+1)); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = c.Next() {
			if len(page.Events) == q.Limit {
				page.More = true
				return nil
			}
			if len(v) != 8 {
				return fmt.Errorf("event index entry of embassy %q is malformed", q.Embassy)
			}
			seq := binary.BigEndian.Uint64(v)
			raw := outbox.Get(v)
			if raw == nil {
				return fmt.Errorf("event index names outbox event %d, which is missing", seq)
			}
			var ev store.Event
			if err := getEvent(tx, v, raw, &ev); errors.Is(err, errShredded) {
				page.Next = binary.BigEndian.Uint64(k[len(prefix):])
				continue // an erased registrant's, delivered before: opens for nobody
			} else if err != nil {
				return fmt.Errorf("outbox event %d is corrupt: %w", seq, err)
			}
			page.Events = append(page.Events, ev)
			page.Next = binary.BigEndian.Uint64(k[len(prefix):])
		}
		return nil
	})
	return page, err
}

// caseEvents reads the events of case id still in the outbox, in
// case_seq order, from the case's index.
func caseEvents(tx *bolt.Tx, id string) ([]store.Event, error) {
	var events []store.Event
	outbox := tx.Bucket(bucketOutbox)
	prefix := append([]byte(id), 0)
	c := tx.Bucket(bucketCaseEvents).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, _ = c.Next() {
		seq := binary.BigEndian.Uint64(k[len(prefix):])
		raw := outbox.Get(k[len(prefix):])
		if raw == nil {
			return nil, fmt.Errorf("case index names outbox event %d, which is missing", seq)
		}
		var ev store.Event
		if err := getEvent(tx, k[len(prefix):], raw, &ev); errors.Is(err, errShredded) {
			continue // an erased registrant's, delivered and not of an open case
		} else if err != nil {
			return nil, fmt.Errorf("outbox event %d is corrupt: %w", seq, err)
		}
		events = append(events, ev)
	}
	return events, nil
}

// keyCursor is the meta key of CursorKey's key.
var keyCursor = []byte("cursor_key")

// CursorKey returns the 32-byte key the embassy API seals its lasting
// cursors with (the event pull's), making it on first use. It is kept in
// the data file so a cursor outlives a restart; it protects no secret (a
// cursor only holds a number of the embassy's own sequence) but makes
// cursors opaque and bound to their embassy.
func (s *Store) CursorKey() ([]byte, error) {
	var key []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		key = bytes.Clone(tx.Bucket(bucketMeta).Get(keyCursor))
		return nil
	}); err != nil || len(key) == 32 {
		return key, err
	}
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh) // never fails (crypto/rand)
	err := s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyCursor); len(v) == 32 {
			key = bytes.Clone(v) // another caller made it first
			return nil
		}
		key = fresh
		return meta.Put(keyCursor, fresh)
	})
	if err != nil {
		return nil, fmt.Errorf("store: cursor key: %w", err)
	}
	return key, nil
}
