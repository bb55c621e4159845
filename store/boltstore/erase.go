package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// Erasure (issue 13 item 3). A real /delete (Result.Erase) removes the
// registrant's record, index rows and roll-call memberships (Process),
// drops the replies still unsent to them from earlier events (they may
// quote their registration), and destroys their data key: every value it
// sealed — in this file, its freed pages and every backup — no longer
// opens. What must outlive the key is first re-sealed under the service
// key:
//
//   - the erasing event's own reply and events (the confirmation, and
//     registration.withdrawn), written so by writeSends and
//     writeEscalations;
//   - the purge rows (chat id and message id of messages still to delete
//     from the chat: the clean-up owed to the citizen; each goes when done
//     or at the platform's deadline, 48 h on Telegram);
//   - events not yet delivered to every endpoint (an escalation is never
//     dropped), and the events of the registrant's case while it is not
//     resolved (the embassy must still be able to act on it).
//
// Events delivered before and not part of an open case stay sealed under
// the destroyed key: unreadable, and pruned with the outbox. Their cases
// (status, severity, types, no personal data) stay under the service key.
// A covert delete (duress) is not an erasure: the hidden registration
// stays, with its key.

// eraseKeys does the above inside Process's transaction, after the
// erasing event's own rows are written under the service key.
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
	if err := resealPrefix(tx, bucketPurge, prefix); err != nil {
		return err
	}
	if err := resealEvents(tx, key, openCase); err != nil {
		return err
	}
	return tx.Bucket(bucketKeys).Delete([]byte(key))
}

// resealPrefix re-seals the rows of bucket name under prefix that are
// sealed for their registrant under the service key.
func resealPrefix(tx *bolt.Tx, name, prefix []byte) error {
	type kv struct{ k, v []byte }
	var rows []kv
	c := tx.Bucket(name).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(v) > 0 && v[0] == classRegistrant {
			p, err := plainOf(tx, name, k, v)
			if err != nil {
				return err
			}
			rows = append(rows, kv{bytes.Clone(k), bytes.Clone(p)})
		}
	}
	for _, r := range rows {
		if err := putBytes(tx, name, r.k, r.v, "", false); err != nil {
			return err
		}
	}
	return nil
}

// resealEvents re-seals under the service key the registrant's events
// still owed to an endpoint or belonging to their unresolved case.
func resealEvents(tx *bolt.Tx, key, openCase string) error {
	var routed uint64
	if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
		routed = binary.BigEndian.Uint64(v)
	}
	owed := map[uint64]bool{}
	tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
		if len(k) >= 8 {
			owed[binary.BigEndian.Uint64(k[len(k)-8:])] = true
		}
		return nil
	})
	caseOpen := false
	if openCase != "" {
		if raw := tx.Bucket(bucketCases).Get([]byte(openCase)); raw != nil {
			var cs store.Case
			if err := getSealed(tx, bucketCases, []byte(openCase), raw, &cs); err != nil {
				return err
			}
			caseOpen = cs.Status != escalation.CaseStatusResolved
		}
	}
	type row struct {
		seq uint64
		ev  store.Event
	}
	var keep []row
	err := tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		body, owner, err := eventOf(tx, k, v)
		if owner != key {
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
		if err := putEvent(tx, r.seq, "", r.ev); err != nil {
			return err
		}
	}
	return nil
}
