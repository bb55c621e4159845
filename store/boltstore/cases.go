package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The embassy API's reads and writes (store.CaseQuery and friends). Cases
// are listed from a per-embassy index, and a status filter from a
// per-embassy × status index, so a page costs what its size costs, not
// what the number of cases costs.
//
// The type and severity filters have no index, by decision: an index key
// holding a case's type or severity would keep in clear, at rest, what
// the sealed case hides (a covert stop or a duress opens a critical case;
// even an HMAC of the type, with fourteen possible values, tells equal
// types apart and a rare one by its frequency). They walk the subset the
// status picks (or all the embassy's cases) instead, at most
// caseScanWindow cases per call: a page may come back short, even empty,
// with a cursor to go on from, so its cost is bounded whatever the number
// of cases and however sparse the filter. Events are read from the event indexes
// (events.go); the outbox keeps what the retention window keeps.

var (
	// bucketCaseIndex: embassy ‖ 0x00 ‖ 8-byte case number → case id.
	bucketCaseIndex = []byte("case_index")
	// bucketCaseStatusIndex: embassy ‖ 0x00 ‖ status ‖ 0x00 ‖ 8-byte case
	// number → case id; each case is under its current status only.
	bucketCaseStatusIndex = []byte("case_status_index")
	// bucketEventAcks: embassy ‖ 0x00 ‖ event id → 8-byte Unix nanoseconds.
	bucketEventAcks = []byte("event_acks")
)

func init() {
	allBuckets = append(allBuckets, bucketCaseIndex, bucketCaseStatusIndex, bucketEventAcks)
}

// caseNumber is the number in a case id ("case_000042" → 42).
func caseNumber(id string) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimPrefix(id, "case_"), 10, 64)
	return n, err == nil && strings.HasPrefix(id, "case_") && n > 0
}

func caseIndexKey(embassy string, n uint64) []byte {
	return append(append([]byte(embassy), 0), u64(n)...)
}

// statusPrefix is where the embassy's cases in one status start in the
// status index.
func statusPrefix(embassy string, status escalation.CaseStatus) []byte {
	return append(append(append([]byte(embassy), 0), status...), 0)
}

func caseStatusKey(embassy string, status escalation.CaseStatus, n uint64) []byte {
	return append(statusPrefix(embassy, status), u64(n)...)
}

// indexCase enters a new case in its embassy's index and under its status
// (called where cases are opened, in the same transaction).
func indexCase(tx *bolt.Tx, c store.Case) error {
	n, ok := caseNumber(c.ID)
	if !ok {
		return fmt.Errorf("case id %q has no number", c.ID)
	}
	if err := tx.Bucket(bucketCaseIndex).Put(caseIndexKey(c.EmbassyID, n), []byte(c.ID)); err != nil {
		return err
	}
	return tx.Bucket(bucketCaseStatusIndex).Put(caseStatusKey(c.EmbassyID, c.Status, n), []byte(c.ID))
}

// reindexStatus moves a case from its old status to its new one in the
// status index, in the transaction that changes it; the case's embassy
// and id never change.
func reindexStatus(tx *bolt.Tx, old, c store.Case) error {
	if old.Status == c.Status {
		return nil
	}
	n, ok := caseNumber(c.ID)
	if !ok {
		return fmt.Errorf("case id %q has no number", c.ID)
	}
	idx := tx.Bucket(bucketCaseStatusIndex)
	if err := idx.Delete(caseStatusKey(old.EmbassyID, old.Status, n)); err != nil {
		return err
	}
	return idx.Put(caseStatusKey(c.EmbassyID, c.Status, n), []byte(c.ID))
}

// backfillCaseIndex indexes the cases of a file written before the
// indexes existed (the case index, then the status index, each on its
// own); on a file whose indexes are already kept it reads two keys.
func backfillCaseIndex(tx *bolt.Tx) error {
	byCase, _ := tx.Bucket(bucketCaseIndex).Cursor().First()
	byStatus, _ := tx.Bucket(bucketCaseStatusIndex).Cursor().First()
	if byCase != nil && byStatus != nil {
		return nil
	}
	return tx.Bucket(bucketCases).ForEach(func(k, v []byte) error {
		var c store.Case
		if err := getSealed(tx, bucketCases, k, v, &c); err != nil {
			return fmt.Errorf("case %s is corrupt: %w", k, err)
		}
		n, ok := caseNumber(c.ID)
		if !ok {
			return fmt.Errorf("case id %q has no number", c.ID)
		}
		if byCase == nil {
			if err := tx.Bucket(bucketCaseIndex).Put(caseIndexKey(c.EmbassyID, n), []byte(c.ID)); err != nil {
				return err
			}
		}
		if byStatus == nil {
			return tx.Bucket(bucketCaseStatusIndex).Put(caseStatusKey(c.EmbassyID, c.Status, n), []byte(c.ID))
		}
		return nil
	})
}

// notFound is the one answer for a case or event that does not exist or
// belongs to another embassy: the two must be indistinguishable.
func notFound(what, id string) error {
	return &errs.Error{Code: errs.ENOTFOUND, Key: "id", Reason: fmt.Sprintf("no %s %q", what, id)}
}

// caseScanWindow bounds the cases one Cases call looks at for the type
// and severity filters (a variable for the tests). At a few microseconds
// a case it bounds a call to milliseconds.
var caseScanWindow = 2000

// Cases returns one page of the embassy's cases, newest first. With a
// status it walks that status's index, so a page costs one seek plus the
// page however rare the status is. With a type or severity it looks at
// no more than caseScanWindow cases: the page may then be short (even
// empty) with page.Next set, and the caller goes on from there.
func (s *Store) Cases(q store.CaseQuery) (store.CasePage, error) {
	var page store.CasePage
	if q.Limit < 1 {
		q.Limit = 1
	}
	bucket, prefix := bucketCaseIndex, append([]byte(q.Embassy), 0)
	if q.Status != "" {
		bucket, prefix = bucketCaseStatusIndex, statusPrefix(q.Embassy, q.Status)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		cases := tx.Bucket(bucketCases)
		c := tx.Bucket(bucket).Cursor()
		var k, v []byte
		if q.Before > 0 {
			k, _ = c.Seek(append(bytes.Clone(prefix), u64(q.Before)...))
		} else {
			// The first key past the prefix: its last byte, 0, made 1.
			past := bytes.Clone(prefix)
			past[len(past)-1] = 1
			k, _ = c.Seek(past)
		}
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		examined, window := 0, -1 // -1: every case looked at is on the page
		if q.Type != "" || q.Severity != "" {
			window = caseScanWindow
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = c.Prev() {
			if examined == window {
				// Bounded: go on from the last case looked at next time.
				page.Next = binary.BigEndian.Uint64(k[len(prefix):]) + 1
				return nil
			}
			examined++
			raw := cases.Get(v)
			if raw == nil {
				return fmt.Errorf("case index names case %s, which is missing", v)
			}
			var cs store.Case
			if err := getSealed(tx, bucketCases, v, raw, &cs); err != nil {
				return fmt.Errorf("case %s is corrupt: %w", v, err)
			}
			if !matches(q, cs) {
				continue
			}
			if len(page.Cases) == q.Limit {
				page.Next, _ = caseNumber(page.Cases[len(page.Cases)-1].ID)
				return nil
			}
			page.Cases = append(page.Cases, cs)
		}
		return nil
	})
	return page, err
}

func matches(q store.CaseQuery, c store.Case) bool {
	if q.Status != "" && c.Status != q.Status {
		return false
	}
	if q.Severity != "" && c.Severity != q.Severity {
		return false
	}
	if q.Type != "" {
		for _, t := range c.Types {
			if t == q.Type {
				return true
			}
		}
		return false
	}
	return true
}

// Case returns one of the embassy's cases with its events still kept in
// the outbox, in case_seq order. Another embassy's case is not found.
func (s *Store) Case(embassy, id string) (store.Case, []store.Event, error) {
	var c store.Case
	var events []store.Event
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketCases).Get([]byte(id))
		if raw == nil {
			return notFound("case", id)
		}
		if err := getSealed(tx, bucketCases, []byte(id), raw, &c); err != nil {
			return fmt.Errorf("case %s is corrupt: %w", id, err)
		}
		if c.EmbassyID != embassy {
			return notFound("case", id)
		}
		var err error
		events, err = caseEvents(tx, id)
		return err
	})
	if err != nil {
		return store.Case{}, nil, err
	}
	return c, events, nil
}

// ChangeCase applies one officer's change to one of the embassy's cases
// and records it in the audit trail with the token's label, in one
// transaction. A change that lost a race (the case is no longer in a
// status it applies to) fails with errs.ECONFLICT wrapping an
// *escalation.TransitionError, and the case as it stands is returned.
func (s *Store) ChangeCase(ch store.CaseChange, now time.Time) (store.Case, error) {
	var out store.Case
	err := s.update(func(tx *bolt.Tx) error { return s.changeIn(tx, ch, now, &out) })
	if err != nil && errs.ErrorCode(err) == errs.EINTERNAL {
		return out, fmt.Errorf("store: change case: %w", err)
	}
	return out, err
}

// changeIn applies ch in tx (ChangeCase, ResolveCase), leaving the case
// as it then stands in *out — also when the change lost a race.
func (s *Store) changeIn(tx *bolt.Tx, ch store.CaseChange, now time.Time, out *store.Case) error {
	*out = store.Case{}
	cases := tx.Bucket(bucketCases)
	raw := cases.Get([]byte(ch.CaseID))
	if raw == nil {
		return notFound("case", ch.CaseID)
	}
	var c store.Case
	if err := getSealed(tx, bucketCases, []byte(ch.CaseID), raw, &c); err != nil {
		return fmt.Errorf("case %s is corrupt: %w", ch.CaseID, err)
	}
	if c.EmbassyID != ch.Embassy {
		return notFound("case", ch.CaseID)
	}
	old := c
	if err := c.Apply(ch.Action, ch.By, ch.Outcome, ch.Text, now); err != nil {
		*out = c
		var te *escalation.TransitionError
		if errors.As(err, &te) {
			return &errs.Error{Code: errs.ECONFLICT, Key: "status", Reason: err.Error(), Err: err}
		}
		return err
	}
	if err := putSealed(tx, bucketCases, []byte(c.ID), c); err != nil {
		return err
	}
	if err := reindexStatus(tx, old, c); err != nil {
		return err
	}
	*out = c
	return s.appendAudit(tx, now, dialogs.Pseudonym(c.UserKey), store.AuditCaseUpdated,
		fmt.Sprintf("case.%s %s by %s: %s -> %s", ch.Action, c.ID, ch.By, old.Status, c.Status))
}

func ackKey(embassy, eventID string) []byte {
	return append(append([]byte(embassy), 0), eventID...)
}

// pulled reports whether an embassy may pull ev: its own events, without
// the per-endpoint heartbeats.
func pulled(embassy string, ev store.Event) bool {
	return ev.EmbassyID == embassy && ev.Type != escalation.TypeEndpointHeartbeat
}

// AckEvent records that the embassy has the event (acknowledging twice is
// no error) and audits it with the token's label. Another embassy's event,
// or one no longer kept, is not found.
func (s *Store) AckEvent(embassy, eventID, by string, now time.Time) error {
	return s.update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEventIDs).Get([]byte(eventID))
		if len(v) != 16 {
			return notFound("event", eventID)
		}
		var ev store.Event
		raw := tx.Bucket(bucketOutbox).Get(v[:8])
		if raw == nil || getEvent(tx, v[:8], raw, &ev) != nil || ev.ID != eventID || !pulled(embassy, ev) {
			return notFound("event", eventID)
		}
		acks := tx.Bucket(bucketEventAcks)
		if acks.Get(ackKey(embassy, eventID)) != nil {
			return nil
		}
		if err := acks.Put(ackKey(embassy, eventID), u64(uint64(now.UnixNano()))); err != nil {
			return err
		}
		if err := tx.Bucket(bucketEventUnacked).Delete(embassyEventKey(embassy, binary.BigEndian.Uint64(v[8:]))); err != nil {
			return err
		}
		subject := ""
		if ev.Registrant != nil {
			subject = ev.Registrant.ID
		}
		return s.appendAudit(tx, now, subject, store.AuditEventAcknowledged, fmt.Sprintf("event.ack %s by %s", eventID, by))
	})
}
