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
// (sweepErased): then nothing of the registrant opens either.
//
// Neither step reads more than the rows of the registrant concerned
// (issue 15: an erasure inside the /delete transaction, and the sweep,
// read the whole outbox): the owner index (bucketOwnerRows) lists, under
// a tag derived from each data key, the outbox events sealed for its
// registrant, and under an erased key's tag every row re-sealed under it. Events
// delivered before the /delete, not of an open case, stay sealed under the
// destroyed key — unreadable — until pruned. Their cases (status,
// severity, types, the user key; no personal data) stay under the service
// key. A covert delete (duress) is not an erasure: the hidden registration
// stays, with its key.

// erasedPrefix starts the owner name of an erased registrant's one-off
// key in the keys bucket.
const erasedPrefix = "erased:"

// shreddedOwner is the owner an erasure writes into the outer layer of an
// event it shreds (retireEvent): a key name no data key ever has (one-off
// keys are erasedPrefix and 32 hex digits), so the body reads as shredded
// for good, whoever registers later under the citizen's user key.
const shreddedOwner = erasedPrefix + "shredded"

var (
	// bucketOwnerRows is the owner index: tag ‖ kind ‖ row key → empty,
	// where tag is ownerTag of the data key the row is sealed under and kind
	// is rowEvent (row key: the outbox sequence), rowSend or rowPurge (row
	// key: the send-queue or purge-list key). A registrant's tag lists the
	// events about them, written in the transaction that records the event
	// (recordEvent) and removed with it (Prune); an erased key's tag lists
	// every row re-sealed under it (eraseKeys), until the sweep destroys the
	// key. Only an encrypted file has one.
	//
	// In clear it shows which outbox events share an owner, under a tag
	// nobody can link to a registrant without their data key (derived from
	// it, HKDF): not who, not what type. Once the key is destroyed, the
	// tag is unlinkable for ever, and its entries are gone anyway.
	bucketOwnerRows = []byte("owner_rows")

	// keyOwnerRowsBuilt (and the per-bucket marks below) mark a file whose
	// owner index was built from its rows (buildOwnerRows).
	keyOwnerRowsBuilt = []byte("owner_rows_built")
)

func init() { allBuckets = append(allBuckets, bucketOwnerRows) }

// The kinds of row the owner index lists.
const (
	rowEvent = 'e'
	rowSend  = 's'
	rowPurge = 'p'
)

// ownerTagSize is the length of an owner tag: 128 bits, collision-free in
// practice for any number of registrants.
const ownerTagSize = 16

// ownerTag is the owner index prefix of owner's rows: derived from their
// data key. errShredded if their key is gone.
func ownerTag(tx *bolt.Tx, owner string) ([]byte, error) {
	key, err := codecOf(tx).dataKey(tx, owner, false)
	if err != nil {
		return nil, err
	}
	return key.Derive("owner rows v1")[:ownerTagSize], nil
}

func ownerRowKey(tag []byte, kind byte, row []byte) []byte {
	return append(append(append(make([]byte, 0, len(tag)+1+len(row)), tag...), kind), row...)
}

// fileOwnerRow lists row (of kind) under owner's tag; nothing for the
// service key or a file in clear.
func fileOwnerRow(tx *bolt.Tx, owner string, kind byte, row []byte) error {
	if owner == "" || codecOf(tx) == nil {
		return nil
	}
	tag, err := ownerTag(tx, owner)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketOwnerRows).Put(ownerRowKey(tag, kind, row), nil)
}

// unfileOwnerEvent removes the owner index entry of the outbox event
// stored at k (Prune deletes it). An event whose owner's key is destroyed
// has none any more.
func unfileOwnerEvent(tx *bolt.Tx, k, v []byte) error {
	c := codecOf(tx)
	if c == nil {
		return nil
	}
	owner, _, _, err := outerOf(c, tx, k, v)
	if err != nil || owner == "" {
		return err
	}
	tag, err := ownerTag(tx, owner)
	if errors.Is(err, errShredded) {
		return nil
	}
	if err != nil {
		return err
	}
	return tx.Bucket(bucketOwnerRows).Delete(ownerRowKey(tag, rowEvent, k))
}

// ownerRows lists the owner index entries under tag: kind and row key.
func ownerRows(tx *bolt.Tx, tag []byte) (kinds []byte, rows [][]byte) {
	c := tx.Bucket(bucketOwnerRows).Cursor()
	for k, _ := c.Seek(tag); k != nil && bytes.HasPrefix(k, tag) && len(k) > len(tag); k, _ = c.Next() {
		kinds = append(kinds, k[len(tag)])
		rows = append(rows, bytes.Clone(k[len(tag)+1:]))
	}
	return kinds, rows
}

// eraseKeys does the above inside Process's transaction, after the
// erasing event's own rows are written (own: its send-queue rows). It
// reads the registrant's send-queue and purge rows (by their key prefix)
// and their events (by their owner index), nothing else.
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
	for _, x := range []struct {
		name []byte
		kind byte
	}{{bucketSendq, rowSend}, {bucketPurge, rowPurge}} {
		if err := resealPrefix(tx, x.name, x.kind, prefix, erased); err != nil {
			return err
		}
	}
	if err := resealEvents(tx, key, openCase, erased); err != nil {
		return err
	}
	return tx.Bucket(bucketKeys).Delete([]byte(key))
}

// resealPrefix re-seals the rows of bucket name under prefix under the
// key of owner, listing each in the owner index as kind.
func resealPrefix(tx *bolt.Tx, name []byte, kind byte, prefix []byte, owner string) error {
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
		if err := fileOwnerRow(tx, owner, kind, r.k); err != nil {
			return err
		}
	}
	return nil
}

// owedTo is what delivery still owes, looked up per event: the routing
// mark and, per endpoint with pending rows, one key lookup.
type owedTo struct {
	routed    uint64
	pending   *bolt.Bucket
	endpoints [][]byte
}

func newOwedTo(tx *bolt.Tx) owedTo {
	o := owedTo{pending: tx.Bucket(bucketPending)}
	if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
		o.routed = binary.BigEndian.Uint64(v)
	}
	o.endpoints = pendingEndpoints(o.pending)
	return o
}

// owes reports whether event seq is not yet routed or still pending for
// some endpoint.
func (o owedTo) owes(seq uint64) bool {
	return seq > o.routed || owed(o.pending, o.endpoints, seq)
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
// owed to an endpoint or belonging to their unresolved case, found through
// the owner index, and moves their entries to owner's tag; the
// registrant's entries go (their key is about to be destroyed).
func resealEvents(tx *bolt.Tx, key, openCase, owner string) error {
	tag, err := ownerTag(tx, key)
	if errors.Is(err, errShredded) {
		return nil // no key yet: nothing was ever sealed for them
	}
	if err != nil {
		return err
	}
	caseOpen, err := caseUnresolved(tx, openCase)
	if err != nil {
		return err
	}
	o := newOwedTo(tx)
	outbox, index := tx.Bucket(bucketOutbox), tx.Bucket(bucketOwnerRows)
	kinds, rows := ownerRows(tx, tag)
	for i, row := range rows {
		if err := index.Delete(ownerRowKey(tag, kinds[i], row)); err != nil {
			return err
		}
		v := outbox.Get(row)
		if kinds[i] != rowEvent || len(row) != 8 || v == nil {
			continue // a stale entry (check reports it)
		}
		seq := binary.BigEndian.Uint64(row)
		var ev store.Event
		if err := getEvent(tx, row, v, &ev); err != nil {
			return fmt.Errorf("outbox event %d is corrupt: %w", seq, err)
		}
		if !o.owes(seq) && !(caseOpen && ev.CaseID == openCase) {
			// Not owed: shredded with the key. Its outer layer stops
			// naming the citizen's key, which a returning citizen gets
			// anew under the same name: the body would then fail to open
			// as damaged, breaking the embassy's pull and Prune.
			if err := retireEvent(tx, row, v); err != nil {
				return err
			}
			continue
		}
		if err := putEvent(tx, seq, owner, ev); err != nil {
			return err
		}
		if err := fileOwnerRow(tx, owner, rowEvent, row); err != nil {
			return err
		}
	}
	return nil
}

// sweepErasedBatch is how many erased keys' rows one sweep transaction
// examines, at least one key's.
const sweepErasedBatch = PruneBatch

// sweepErased destroys the one-off keys of erased registrants that
// nothing owed needs any more: no send-queue or purge row sealed under
// it, and no event under it still owed to an endpoint or of an unresolved
// case. Prune calls it. Each erased key is looked at through its owner
// index entries only, in transactions of about sweepErasedBatch entries
// (resuming after the last key), so it costs what the erased registrants
// left, not what the outbox holds. Entries of rows gone meanwhile (a reply
// sent, a purge done, an event pruned) are removed as they are met.
func (s *Store) sweepErased() (int, error) {
	found := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketKeys).Cursor().Seek([]byte(erasedPrefix))
		found = k != nil && bytes.HasPrefix(k, []byte(erasedPrefix))
		return nil
	}); err != nil || !found {
		return 0, err // none: no write transaction, no fsync
	}
	total := 0
	after := []byte(erasedPrefix)
	for {
		n, next, err := 0, []byte(nil), error(nil)
		err = s.update(func(tx *bolt.Tx) error {
			n, next = 0, nil
			var err error
			n, next, err = sweepErasedFrom(tx, after)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if next == nil {
			return total, nil
		}
		after = next
	}
}

// sweepErasedFrom sweeps the erased keys after key after, in one
// transaction, until about sweepErasedBatch entries were examined; next is
// the last key swept when there are more.
func sweepErasedFrom(tx *bolt.Tx, after []byte) (destroyed int, next []byte, err error) {
	if codecOf(tx) == nil {
		return 0, nil, nil
	}
	keys := tx.Bucket(bucketKeys)
	var erased []string
	c := keys.Cursor()
	k, _ := c.Seek(after)
	if k != nil && bytes.Equal(k, after) {
		k, _ = c.Next()
	}
	for ; k != nil && bytes.HasPrefix(k, []byte(erasedPrefix)); k, _ = c.Next() {
		erased = append(erased, string(k))
	}
	o := newOwedTo(tx)
	unresolved := map[string]bool{}
	examined, last := 0, ""
	for _, name := range erased {
		if examined >= sweepErasedBatch {
			return destroyed, []byte(last), nil // the next transaction goes on after it
		}
		last = name
		needed, n, err := erasedNeeded(tx, name, o, unresolved)
		if err != nil {
			return destroyed, nil, err
		}
		examined += n + 1
		if needed {
			continue
		}
		if err := dropOwnerRows(tx, name); err != nil {
			return destroyed, nil, err
		}
		if err := keys.Delete([]byte(name)); err != nil {
			return destroyed, nil, err
		}
		destroyed++
	}
	return destroyed, nil, nil
}

// erasedNeeded reports whether anything owed still needs erased key name,
// and how many owner index entries it examined; it removes the entries of
// rows that are gone.
func erasedNeeded(tx *bolt.Tx, name string, o owedTo, unresolved map[string]bool) (needed bool, examined int, err error) {
	tag, err := ownerTag(tx, name)
	if err != nil {
		return false, 0, err
	}
	index := tx.Bucket(bucketOwnerRows)
	kinds, rows := ownerRows(tx, tag)
	for i, row := range rows {
		keep, err := erasedRowNeeded(tx, name, kinds[i], row, o, unresolved)
		if err != nil {
			return false, i + 1, err
		}
		switch keep {
		case rowGone:
			if err := index.Delete(ownerRowKey(tag, kinds[i], row)); err != nil {
				return false, i + 1, err
			}
		case rowNeeded:
			return true, i + 1, nil
		}
	}
	return false, len(rows), nil
}

// The states of an erased key's row for the sweep.
const (
	rowGone   = iota // deleted meanwhile (or no longer sealed under the key)
	rowDone          // still stored, but owed to nobody
	rowNeeded        // owed: the key must stay
)

func erasedRowNeeded(tx *bolt.Tx, name string, kind byte, row []byte, o owedTo, unresolved map[string]bool) (int, error) {
	switch kind {
	case rowSend, rowPurge:
		b := bucketSendq
		if kind == rowPurge {
			b = bucketPurge
		}
		if v := tx.Bucket(b).Get(row); v != nil && storedOwner(b, row, v) == name {
			return rowNeeded, nil
		}
		return rowGone, nil
	case rowEvent:
		v := tx.Bucket(bucketOutbox).Get(row)
		if v == nil || len(row) != 8 {
			return rowGone, nil
		}
		if o.owes(binary.BigEndian.Uint64(row)) {
			return rowNeeded, nil
		}
		_, meta, _, err := outerOf(codecOf(tx), tx, row, v)
		if err != nil {
			return rowDone, err
		}
		var f indexFields
		if json.Unmarshal(meta, &f) != nil || f.CaseID == "" {
			return rowDone, nil
		}
		open, ok := unresolved[f.CaseID]
		if !ok {
			if open, err = caseUnresolved(tx, f.CaseID); err != nil {
				return rowDone, err
			}
			unresolved[f.CaseID] = open
		}
		if open {
			return rowNeeded, nil
		}
		return rowDone, nil
	}
	return rowGone, nil
}

// dropOwnerRows removes every owner index entry of erased key name.
func dropOwnerRows(tx *bolt.Tx, name string) error {
	tag, err := ownerTag(tx, name)
	if err != nil {
		return err
	}
	index := tx.Bucket(bucketOwnerRows)
	kinds, rows := ownerRows(tx, tag)
	for i, row := range rows {
		if err := index.Delete(ownerRowKey(tag, kinds[i], row)); err != nil {
			return err
		}
	}
	return nil
}

// buildOwnerRows builds the owner index of an encrypted file written
// before it existed (or just sealed), at open, in resumable batches
// (buildOver): the outbox events sealed for a registrant or an erased key
// whose data key still exists, and the send-queue and purge rows sealed
// under an erased key.
func (s *Store) buildOwnerRows() error {
	if !s.Encrypted() {
		return nil
	}
	if built, err := s.marked(keyOwnerRowsBuilt); err != nil || built {
		return err
	}
	if err := s.buildOver(bucketOutbox, []byte("owner_rows_outbox_built"), []byte("owner_rows_outbox_progress"), func(tx *bolt.Tx, k, v []byte) error {
		// Only an event that opens under its owner's key now is listed:
		// one sealed under a key since destroyed (shredded, or of an
		// earlier registration of the same citizen) is beyond any erasure,
		// and a damaged one is check's to report.
		if _, owner, err := eventOf(tx, k, v); err == nil {
			return fileOwnerRow(tx, owner, rowEvent, k)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, x := range []struct {
		name []byte
		kind byte
	}{{bucketSendq, rowSend}, {bucketPurge, rowPurge}} {
		done, progress := []byte("owner_rows_"+string(x.name)+"_built"), []byte("owner_rows_"+string(x.name)+"_progress")
		if err := s.buildOver(x.name, done, progress, func(tx *bolt.Tx, k, v []byte) error {
			if o := storedOwner(x.name, k, v); strings.HasPrefix(o, erasedPrefix) {
				if err := fileOwnerRow(tx, o, x.kind, k); !errors.Is(err, errShredded) {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyOwnerRowsBuilt, []byte{1}) })
}
