package boltstore

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// Erasure (issue 13 item 3). A real /delete (Result.Erase) removes the
// registrant's record, index rows and roll-call memberships (Process),
// drops the replies still unsent to them from earlier events (they may
// quote their registration), and destroys their data key: every value it
// sealed — in this file, its freed pages and every backup — no longer
// opens.
//
// What is still owed when they delete is re-sealed first under a one-off
// "erased" data key of its own:
//
//   - the erasing event's reply (the confirmation) and its events
//     (registration.withdrawn, which carries what the embassy had);
//   - the purge rows (chat id and message id of messages still to delete
//     from the chat: the clean-up owed to the citizen; each goes when done
//     or at the platform's deadline, 48 h on Telegram);
//   - events not yet delivered to every endpoint (an escalation is never
//     dropped), and the events of their case while it is not resolved (the
//     embassy must still be able to act on it).
//
// Prune destroys that erased key as soon as none of it is owed any more
// (sweepErased): then nothing of the registrant opens either. Events
// delivered before the /delete, not of an open case, stay sealed under the
// destroyed key — unreadable — until pruned. Their cases (status,
// severity, types, the user key; no personal data) stay under the service
// key. A covert delete (duress) is not an erasure: the hidden registration
// stays, with its key.

// erasedPrefix starts the owner name of an erased registrant's one-off
// key in the keys bucket.
const erasedPrefix = "erased:"

// eraseKeys does the above inside Process's transaction, after the
// erasing event's own rows are written (own: its send-queue rows).
func eraseKeys(tx *bolt.Tx, key, openCase string, own []store.SendItem) error {
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
		if err := resealPrefix(tx, name, prefix, erased); err != nil {
			return err
		}
	}
	if err := resealEvents(tx, key, openCase, erased); err != nil {
		return err
	}
	return tx.Bucket(bucketKeys).Delete([]byte(key))
}

// resealPrefix re-seals the rows of bucket name under prefix under the
// key of owner.
func resealPrefix(tx *bolt.Tx, name, prefix []byte, owner string) error {
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

// owedEvents is what delivery still owes: the routing mark and the
// events with a pending row.
func owedEvents(tx *bolt.Tx) (routed uint64, owed map[uint64]bool) {
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

// caseUnresolved reports whether case id exists and is not resolved.
func caseUnresolved(tx *bolt.Tx, id string) (bool, error) {
	raw := tx.Bucket(bucketCases).Get([]byte(id))
	if id == "" || raw == nil {
		return false, nil
	}
	var cs store.Case
	if err := getSealed(tx, bucketCases, []byte(id), raw, &cs); err != nil {
		return false, err
	}
	return cs.Status != escalation.CaseStatusResolved, nil
}

// resealEvents re-seals under owner's key the registrant's events still
// owed to an endpoint or belonging to their unresolved case.
func resealEvents(tx *bolt.Tx, key, openCase, owner string) error {
	routed, owed := owedEvents(tx)
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

// sweepErased destroys the one-off keys of erased registrants that
// nothing owed needs any more: no send-queue or purge row sealed under
// it, and no event under it still owed to an endpoint or of an
// unresolved case. Prune calls it; it reads the outbox once.
func sweepErased(tx *bolt.Tx) (int, error) {
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
	routed, owed := owedEvents(tx)
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
