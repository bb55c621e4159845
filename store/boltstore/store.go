// Package boltstore is the bbolt storage engine: it keeps all durable
// state in one bbolt file — registrants, the due-time index, cases, the
// escalation outbox, processed inbound ids, the hash-chained audit trail
// and the schema version (DESIGN §8). It implements the contract of package
// store (bot.Store, webhook.Outbox) and passes the conformance suite in
// store/storetest.
//
// It is the only package that imports bbolt. Its one write path, Process,
// commits every effect of one event — new state, due-index entry, case
// changes, outbox events, inbound id, audit entries — in a single
// transaction, so an escalation is durable before the citizen sees a reply
// and is never recorded without the state change that caused it. Writes of
// different registrants share commits (group commit), which is what lets
// thousands of citizens check in per second on one fsync-bound file.
package boltstore

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout this binary reads and writes.
const SchemaVersion = 5

var (
	bucketMeta        = []byte("meta")
	bucketRegistrants = []byte("registrants")
	bucketDue         = []byte("due")
	bucketCases       = []byte("cases")
	bucketOutbox      = []byte("outbox")
	bucketInbound     = []byte("inbound")
	bucketAudit       = []byte("audit")

	keySchema    = []byte("schema")
	keyAuditHead = []byte("audit_head")

	allBuckets = [][]byte{bucketMeta, bucketRegistrants, bucketDue, bucketCases, bucketOutbox, bucketInbound, bucketAudit}
)

// Store is an open data file. It is safe for concurrent use.
type Store struct {
	db      *bolt.DB
	path    string
	created bool // Open made a new file (see Created)

	// Writes go through one committer goroutine (group commit): see
	// commitLoop. reqs is the lane of writes someone waits on (a
	// citizen's message, an embassy's request, a delivery's outcome);
	// bulk the lane of scheduled and maintenance work (timers, roll
	// calls, pruning), which yields to it.
	mu       sync.RWMutex // guards closed and sending on reqs and bulk
	closed   bool
	reqs     chan *writeRequest
	bulk     chan *writeRequest
	loopDone chan struct{}
	observe  atomic.Pointer[func(time.Duration, int)] // SetCommitObserver

	// route files registrants under their embassy (IndexWith).
	route atomic.Pointer[store.Router]

	// allInCommit turns off preparing writes outside the commit
	// (SetPrepare); prep counts how prepared writes ended; afterPrepare,
	// set by tests only, runs between a prepare and its commit.
	allInCommit  atomic.Bool
	prep         prepareStats
	afterPrepare func(key string)

	// sendSeq and purgeSeq number the send queue's and the purge list's
	// rows (rowSeq, sendq.go).
	sendSeq, purgeSeq rowSeq

	audit       *auditKeys   // the v2 audit keys (service key or Options.AuditKey); nil without a key (audit.go)
	auditLegacy []*auditKeys // the master keys' pre-v2 audit keys: legacy MACs and reasons
}

// maxGroup bounds how many events share one commit.
const maxGroup = 1000

type writeRequest struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// update runs fn in a write transaction shared with whatever other writes
// are waiting. Unlike bbolt's Batch it never waits for company: a lone
// write commits at once, and under load each commit carries every write
// that queued during the previous one. fn may run more than once (when
// another write of its group fails) and must have no side effects.
func (s *Store) update(fn func(*bolt.Tx) error) error { return s.enqueue(s.reqs, fn) }

// updateBulk is update for scheduled and maintenance work: timers, roll
// calls, pruning. Its writes commit behind the writes someone is waiting
// for (commitLoop), so a duress check-in or an SOS never waits for a group
// of a hundred timers' writes — and never longer than one commit either
// way, so bulk work is delayed, never starved.
func (s *Store) updateBulk(fn func(*bolt.Tx) error) error { return s.enqueue(s.bulk, fn) }

func (s *Store) enqueue(lane chan *writeRequest, fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	r := &writeRequest{fn: fn, done: make(chan error, 1)}
	lane <- r
	s.mu.RUnlock()
	return <-r.done
}

// commitLoop is the single writer: it takes queued writes, commits them
// together, and answers each. A group takes every waiting write of the
// urgent lane (reqs) and, only when that lane is empty or the group before
// had only urgent writes and left bulk ones waiting, the bulk lane's too.
// So under steady load the groups alternate — urgent only, then urgent and
// bulk — and an urgent write waits for at most the commit in progress plus
// its own group, which holds no bulk write whenever the one in progress
// did. (Mixing when bulk is owed, rather than committing bulk alone, saves
// an urgent write that queued behind an urgent-only group a whole commit.)
func (s *Store) commitLoop() {
	defer close(s.loopDone)
	var group []*writeRequest
	reqs, bulk := s.reqs, s.bulk
	bulkOwed := false
	for {
		group = group[:0]
		if bulkOwed {
			// Half the group at most, so a full urgent lane still moves.
			bulk, _ = drainLane(bulk, &group, maxGroup/2)
		}
		var urgent int
		reqs, urgent = drainLane(reqs, &group, maxGroup)
		if urgent == 0 && !bulkOwed {
			bulk, _ = drainLane(bulk, &group, maxGroup)
		}
		if len(group) == 0 {
			if reqs == nil && bulk == nil {
				return // closed, and every write answered
			}
			select { // nothing waits: sleep until a write comes, in either lane
			case r, ok := <-reqs:
				if !ok {
					reqs = nil
					continue
				}
				group, urgent = append(group, r), 1
			case r, ok := <-bulk:
				if !ok {
					bulk = nil
					continue
				}
				group = append(group, r)
			}
			var more int
			reqs, more = drainLane(reqs, &group, maxGroup)
			if urgent += more; urgent == 0 {
				bulk, _ = drainLane(bulk, &group, maxGroup)
			}
		}
		s.commitGroup(group)
		// Bulk writes that queued behind an urgent-only group go into the
		// next one, whatever else is waiting.
		bulkOwed = urgent == len(group) && bulk != nil && len(bulk) > 0
	}
}

// drainLane moves the writes waiting in lane onto group, without
// blocking, until group holds upTo; it returns nil for a closed lane, and
// how many writes it moved.
func drainLane(lane chan *writeRequest, group *[]*writeRequest, upTo int) (chan *writeRequest, int) {
	n := 0
	for lane != nil && len(*group) < upTo {
		select {
		case r, ok := <-lane:
			if !ok {
				return nil, n
			}
			*group = append(*group, r)
			n++
		default:
			return lane, n
		}
	}
	return lane, n
}

// commitGroup commits a group; a write that fails is answered with its error
// and the rest are committed without it.
func (s *Store) commitGroup(group []*writeRequest) {
	for len(group) > 0 {
		failed, ferr, start := -1, error(nil), time.Now()
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, r := range group {
				if err := runSafely(r.fn, tx); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			return nil
		})
		s.observeCommit(start, len(group))
		if failed < 0 {
			for _, r := range group {
				r.done <- err
			}
			return
		}
		group[failed].done <- ferr
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}

// runSafely turns a panic in a write into an error for that write alone, so
// one bad event cannot stop every other write.
func runSafely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write panicked: %v", p)
		}
	}()
	return fn(tx)
}

// Close finishes queued writes and closes the data file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	close(s.reqs)
	close(s.bulk)
	s.mu.Unlock()
	<-s.loopDone
	codecs.Delete(s.db)
	routeTargets.Delete(s.db)
	return s.db.Close()
}

// Path is the data file's location.
func (s *Store) Path() string { return s.path }

// Process applies one event for the registrant under key in one
// transaction. inboundID, when not empty, is the channel's message id: an
// id seen before makes Process a no-op reporting Duplicate. Concurrent calls
// for different registrants are batched into shared commits; callers must
// serialise calls for the same registrant. Process queues no replies: it is
// for callers that deliver nothing to a citizen (ProcessSend does).
func (s *Store) Process(key, inboundID string, now time.Time, h store.Handler) (store.Outcome, error) {
	return s.ProcessSend(key, inboundID, now, nil, h)
}

// ProcessSend is Process that also writes the result's replies and
// clean-up to the send queue and purge list, in the same transaction as
// the state change, so a reply is exactly as durable as what it confirms.
// A handler that panics, or a registrant record that cannot be read, fails
// with ErrBadEvent; any other error means the store cannot write now.
//
// The work that needs no shared state — reading and opening the record,
// the handler, encoding and sealing the new record and its index row —
// is done first, in the caller's goroutine, from a read transaction
// (prepare.go); the group commit then only checks that what was read is
// still what is stored and applies it. When it is not (another write
// touched the record meanwhile), or for a record not yet written, the
// whole event runs inside the commit as before: the handler may run
// twice.
func (s *Store) ProcessSend(key, inboundID string, now time.Time, to *store.Envelope, h store.Handler) (store.Outcome, error) {
	if err := s.writeFault(); err != nil {
		return store.Outcome{}, fmt.Errorf("store: process: %w", err)
	}
	var out store.Outcome
	write := processIn(s, key, inboundID, now, to, h, &out)
	if p := s.prepare(key, inboundID, now, to, h); p != nil {
		write = s.applyPrepared(p, key, inboundID, now, to, h, &out)
		if s.afterPrepare != nil {
			s.afterPrepare(key)
		}
	}
	commit := s.update
	if to != nil && to.Scheduled {
		commit = s.updateBulk // a timer or a roll call: nobody is waiting on it
	}
	if err := commit(write); err != nil {
		return store.Outcome{}, fmt.Errorf("store: process: %w", err)
	}
	return out, nil
}

// processIn is the write of one event (ProcessSend) as a function of a
// transaction, so another write can run it inside its own (ResolveCase):
// it fills *out. Everything happens inside the transaction: it is also
// what a prepared write falls back to (prepare.go).
func processIn(s *Store, key, inboundID string, now time.Time, to *store.Envelope, h store.Handler, out *store.Outcome) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = badEvent(p)
			}
		}()
		*out = store.Outcome{}
		if inboundID != "" && tx.Bucket(bucketInbound).Get([]byte(inboundID)) != nil {
			out.Duplicate = true
			return nil
		}
		var prev dialogs.State
		raw := tx.Bucket(bucketRegistrants).Get([]byte(key))
		if raw != nil {
			if err := getSealed(tx, bucketRegistrants, []byte(key), raw, &prev); err != nil {
				return fmt.Errorf("%w: registrant record is corrupt: %w", store.ErrBadEvent, err)
			}
		}
		return s.applyIn(tx, key, inboundID, now, to, prev, raw != nil, h(prev, raw != nil), nil, out)
	}
}

// applyIn writes the effects of one handled event — res, from prev (had:
// a record existed) — inside tx: escalations, the record, due entry,
// inbound id, audit entry, index row, counters, send queue, roll-call
// marks, erasure. pre, when not nil, holds the record and index row
// sealed ahead of the commit (prepare.go); they are used as they are
// unless an escalation changed the state they were sealed from.
func (s *Store) applyIn(tx *bolt.Tx, key, inboundID string, now time.Time, to *store.Envelope, prev dialogs.State, had bool,
	res dialogs.Result, pre *prepared, out *store.Outcome) error {
	regs := tx.Bucket(bucketRegistrants)
	st := &res.State
	events, err := writeEscalations(tx, key, st, res.Escalations, now)
	if err != nil {
		return err
	}
	if err := writeIdentityLink(tx, key, prev, res); err != nil { // identity.go
		return err
	}
	due := appendBucket(tx, bucketDue)
	if at := prev.DueAt(); !at.IsZero() {
		if err := due.Delete(dueKey(at, key)); err != nil {
			return err
		}
	}
	if res.Erase {
		if err := regs.Delete([]byte(key)); err != nil {
			return err
		}
	} else {
		if at := st.DueAt(); !at.IsZero() {
			if err := due.Put(dueKey(at, key), nil); err != nil {
				return err
			}
		}
		if v := pre.recordFor(st); v != nil {
			if err := regs.Put([]byte(key), v); err != nil {
				return err
			}
		} else if err := putSealed(tx, bucketRegistrants, []byte(key), st); err != nil {
			return err
		}
	}
	if inboundID != "" {
		if err := tx.Bucket(bucketInbound).Put([]byte(inboundID), u64(uint64(now.Unix()))); err != nil {
			return err
		}
	}
	if len(res.Audit) > 0 { // never for escalations alone: a duress one would stand out (audit.go)
		if err := s.appendAudit(tx, now, dialogs.Pseudonym(key), store.AuditRegistrantUpdated, processReason(res.Audit, events)); err != nil {
			return err
		}
	}
	if err := s.indexRegistrant(tx, key, prev, res, events, now, pre.rowFor(st)); err != nil {
		return err
	}
	if err := countRegistrant(tx, prev, had, res.State, res.Erase); err != nil { // the /metrics counters (stats.go)
		return err
	}
	sends, purges, err := s.writeSends(tx, key, to, res, now, pre.sendsFor())
	if err != nil {
		return err
	}
	if err := rememberRollCallPrompt(tx, key, res, sends); err != nil { // rollcall_counts.go
		return err
	}
	if res.Erase {
		if err := eraseKeys(tx, key, prev.OpenCase, sends); err != nil { // crypto-shredding (erase.go)
			return err
		}
	}
	out.Result, out.Events, out.Sends, out.Purges = res, events, sends, purges
	return nil
}

// writeEscalations assigns cases and ids and appends the events to the
// outbox. It updates st.OpenCase when a case is opened. Events are sealed
// under the registrant's data key (an erasure re-seals those still owed,
// erase.go).
func writeEscalations(tx *bolt.Tx, key string, st *dialogs.State, escs []dialogs.Escalation, now time.Time) ([]store.Event, error) {
	owner := key
	var events []store.Event
	escs = dropEscalation(escs) // test-only fault: identity unless built with -tags faultinject (fault_on.go)
	cases := appendBucket(tx, bucketCases)
	for _, esc := range escs {
		ev := store.Event{
			ID: newEventID(), Type: esc.Type, Version: store.EventVersion, CreatedAt: now.UTC(),
			EmbassyID: esc.EmbassyID, Severity: esc.Severity, DoNotContact: esc.DoNotContact || st.DoNotContact,
			Registrant: &esc.Registrant, Details: esc.Details,
		}
		if ev.Details == nil {
			ev.Details = map[string]any{}
		}
		if esc.Case == dialogs.CaseOpen || (esc.Case == dialogs.CaseAppend && st.OpenCase != "") {
			c, err := openCase(cases, key, st, esc.EmbassyID, now)
			if err != nil {
				return nil, err
			}
			c.Seq++
			c.UpdatedAt = now.UTC()
			c.Types = append(c.Types, esc.Type)
			if esc.Severity.Rank() > c.Severity.Rank() {
				c.Severity = esc.Severity
			}
			if err := putSealed(tx, bucketCases, []byte(c.ID), c); err != nil {
				return nil, err
			}
			ev.CaseID, ev.CaseSeq = c.ID, c.Seq
		}
		if _, err := recordEvent(tx, ev, owner); err != nil { // the outbox and its indexes (events.go)
			return nil, err
		}
		events = append(events, ev)
	}
	return events, nil
}

// openCase returns the registrant's open case, creating one if needed.
func openCase(cases *bolt.Bucket, key string, st *dialogs.State, embassy string, now time.Time) (store.Case, error) {
	if st.OpenCase != "" {
		var c store.Case
		if raw := cases.Get([]byte(st.OpenCase)); raw != nil {
			if err := getSealed(cases.Tx(), bucketCases, []byte(st.OpenCase), raw, &c); err != nil {
				return store.Case{}, fmt.Errorf("case %s is corrupt: %w", st.OpenCase, err)
			}
			if c.Status != escalation.CaseStatusResolved {
				return c, nil
			}
		}
	}
	seq, err := cases.NextSequence()
	if err != nil {
		return store.Case{}, err
	}
	c := store.Case{ID: fmt.Sprintf("case_%06d", seq), EmbassyID: embassy, UserKey: key, Status: escalation.CaseStatusOpen,
		OpenedAt: now.UTC(), UpdatedAt: now.UTC()}
	st.OpenCase = c.ID
	return c, indexCase(cases.Tx(), c) // the embassy API's list (cases.go)
}

// Registrant returns the stored state under key.
func (s *Store) Registrant(key string) (dialogs.State, bool, error) {
	var st dialogs.State
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketRegistrants).Get([]byte(key))
		if raw == nil {
			return nil
		}
		found = true
		return getSealed(tx, bucketRegistrants, []byte(key), raw, &st)
	})
	return st, found, err
}

// Due returns the keys of registrants whose timer is at or before now, in
// timer order.
func (s *Store) Due(now time.Time) ([]string, error) { return s.DueFirst(now, 0) }

// DueFirst returns the keys of the first n timers due at or before now, in
// due order (n <= 0: all): one cursor walk of n entries, however many more
// are due.
func (s *Store) DueFirst(now time.Time, n int) ([]string, error) {
	var keys []string
	limit := u64(uint64(now.UnixNano()))
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) <= 0 && (n <= 0 || len(keys) < n); k, _ = c.Next() {
			keys = append(keys, string(k[8:]))
		}
		return nil
	})
	return keys, err
}

// NextTimer returns the earliest armed timer, if any.
func (s *Store) NextTimer() (time.Time, bool, error) {
	var at time.Time
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketDue).Cursor().First()
		if k != nil {
			at, found = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC(), true
		}
		return nil
	})
	return at, found, err
}

// Outbox returns the events in the outbox, oldest first.
func (s *Store) Outbox() ([]store.Event, error) {
	var out []store.Event
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			var e store.Event
			if err := getEvent(tx, k, v, &e); errors.Is(err, errShredded) {
				return nil // an erased registrant's, delivered before
			} else if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// CaseByID returns a case.
func (s *Store) CaseByID(id string) (store.Case, bool, error) {
	var c store.Case
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketCases).Get([]byte(id))
		if raw == nil {
			return nil
		}
		found = true
		return getSealed(tx, bucketCases, []byte(id), raw, &c)
	})
	return c, found, err
}

// dueKey is the due-index key: 8-byte big-endian Unix nanoseconds ‖ user
// key, so a cursor from First() walks timers in order.
func dueKey(at time.Time, key string) []byte {
	return append(u64(uint64(at.UnixNano())), key...)
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	enc, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, enc)
}

// newEventID returns "evt_" and 26 random base32 characters: unique without
// coordination, and the same on every delivery attempt of the event.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "evt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
