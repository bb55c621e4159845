package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// Delivery bookkeeping for the outbox (DESIGN §4). Every outbox event is
// routed once to the endpoints that must receive it; each (endpoint, event)
// pair is a pending row until it is delivered, then an archived row kept for
// audit until pruned. No network I/O happens here: the delivery loop reads
// due rows, sends outside any transaction, and records the outcomes.

var (
	bucketPending   = []byte("pending")   // endpoint ‖ 0x00 ‖ outbox seq → Delivery
	bucketDelivered = []byte("delivered") // done time ‖ endpoint ‖ 0x00 ‖ seq → Delivery
	keyRouted       = []byte("routed_upto")
)

func init() { allBuckets = append(allBuckets, bucketPending, bucketDelivered) }

func pendingKey(endpoint string, seq uint64) []byte {
	return append(append([]byte(endpoint), 0), u64(seq)...)
}

// RouteBatch bounds the pending rows (and the events) one write
// transaction of Route handles: routing a backlog never holds the writer
// for long, and a batch's rows are written in key order, so bbolt appends
// instead of splitting pages over and over when two embassies' rows
// interleave (issue 15: 200k rows in one transaction took 38 s).
var RouteBatch = 1000

// Route gives every outbox event not yet routed its pending rows, in
// transactions of at most RouteBatch rows, each advancing the routing mark
// past the events it routed (all of an event's rows go in one
// transaction). targets must be pure (it may run more than once).
func (s *Store) Route(now time.Time, targets func(store.Event) []store.Target) (int, error) {
	total := 0
	for {
		if backlog, err := s.unrouted(); err != nil || !backlog {
			return total, err // nothing new: no write transaction, no fsync
		}
		n, more, err := s.routeBatch(now, targets)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// routeTargets holds, per open data file, the targets function given to
// RouteOnRecord (a func(store.Event) []store.Target), so recordEvent, which
// sees only a transaction, can route what it records.
var routeTargets sync.Map // *bolt.DB → func(store.Event) []store.Target

// RouteOnRecord gives every event recorded from now on its pending rows —
// one per targets(event), as Route would — in the transaction that records
// it, so a duress check-in's webhook does not wait for a second commit (a
// routing round's) before the deliverer can send it. targets must be pure
// and cheap: it runs inside the write transaction. An event recorded while
// older ones still wait to be routed (a backlog from before this call, or
// from a file written without it) is left to Route, which routes in
// recording order. nil turns it off.
func (s *Store) RouteOnRecord(targets func(store.Event) []store.Target) {
	if targets == nil {
		routeTargets.Delete(s.db)
		return
	}
	routeTargets.Store(s.db, targets)
}

// routeRecorded routes the event just recorded at outbox seq in tx, if
// RouteOnRecord is on and every earlier event is routed already.
func routeRecorded(tx *bolt.Tx, seq uint64, ev store.Event) error {
	v, ok := routeTargets.Load(tx.DB())
	if !ok {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	var routed uint64
	if r := meta.Get(keyRouted); len(r) == 8 {
		routed = binary.BigEndian.Uint64(r)
	}
	if routed+1 != seq {
		return nil // older events wait: Route takes them all, in order
	}
	for _, t := range v.(func(store.Event) []store.Target)(ev) {
		d := store.Delivery{Endpoint: t.Endpoint, Seq: seq, EventID: ev.ID, Type: ev.Type, CaseID: ev.CaseID,
			Critical: t.Critical, NextAt: ev.CreatedAt.UTC()}
		if err := putPending(tx, d); err != nil {
			return err
		}
	}
	return meta.Put(keyRouted, u64(seq))
}

// routeBatch routes the next events, up to RouteBatch rows or events, in
// one transaction. more reports that it stopped at the bound.
func (s *Store) routeBatch(now time.Time, targets func(store.Event) []store.Target) (n int, more bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		n, more = 0, false
		meta, outbox := tx.Bucket(bucketMeta), tx.Bucket(bucketOutbox)
		var from uint64
		if v := meta.Get(keyRouted); len(v) == 8 {
			from = binary.BigEndian.Uint64(v)
		}
		var rows []store.Delivery
		c := outbox.Cursor()
		last, events := from, 0
		for k, v := c.Seek(u64(from + 1)); k != nil; k, v = c.Next() {
			if events >= RouteBatch {
				more = true
				break
			}
			seq := binary.BigEndian.Uint64(k)
			var ev store.Event
			if err := getEvent(tx, k, v, &ev); err != nil {
				return fmt.Errorf("outbox event %d is corrupt: %w", seq, err)
			}
			ts := targets(ev)
			if len(rows) > 0 && len(rows)+len(ts) > RouteBatch {
				more = true
				break
			}
			for _, t := range ts {
				rows = append(rows, store.Delivery{Endpoint: t.Endpoint, Seq: seq, EventID: ev.ID, Type: ev.Type, CaseID: ev.CaseID,
					Critical: t.Critical, NextAt: now.UTC()})
			}
			last = seq
			events++
		}
		// In key order (endpoint, then sequence): appends, not splits.
		slices.SortFunc(rows, func(a, b store.Delivery) int {
			return bytes.Compare(pendingKey(a.Endpoint, a.Seq), pendingKey(b.Endpoint, b.Seq))
		})
		for _, d := range rows {
			if err := putPending(tx, d); err != nil {
				return err
			}
		}
		n = len(rows)
		if last == from {
			return nil
		}
		return meta.Put(keyRouted, u64(last))
	})
	return n, more, err
}

// DueDeliveries returns the deliveries to attempt at now, per endpoint in
// recording order, holding back any event whose case has an earlier event
// still pending for that endpoint (per-case order): the head of every due
// chain. It also returns when the next held-back-by-time delivery falls due
// (zero if none).
func (s *Store) DueDeliveries(now time.Time) ([]store.DueDelivery, time.Time, error) {
	b, err := s.DueChains(now, nil, 0)
	var due []store.DueDelivery
	for _, c := range b.Chains {
		due = append(due, c.Items[0])
	}
	return due, b.Next, err
}

// DueChains reads, in one read transaction, the runs of pending deliveries
// that may be attempted at now (see Chain), with their bodies, up to limit
// deliveries in all (0: no limit). Only rows due at now are read, through
// the due index (pending_due.go): rows waiting for a later retry cost
// nothing. Endpoints for which skip returns true (backing off, or not
// configured) are jumped over by key without reading their rows, so an
// outage's backlog costs nothing per round.
func (s *Store) DueChains(now time.Time, skip func(endpoint string) bool, limit int) (store.DueBatch, error) {
	var b store.DueBatch
	err := s.db.View(func(tx *bolt.Tx) error {
		outbox, caseEvents := tx.Bucket(bucketOutbox), tx.Bucket(bucketCaseEvents)
		var err error
		b.Next, b.More, err = dueRows(tx, now, skip, limit,
			func(ep string) { b.Endpoints = append(b.Endpoints, ep) },
			func(ep string, rows []dueRow) error {
				due := make(map[uint64]bool, len(rows))
				for _, r := range rows {
					due[r.d.Seq] = true
				}
				// A case's rows go as the run of its pending rows, from its
				// first, that are all due; a caseless row goes alone.
				inRun := map[uint64]int{} // seq → index in b.Chains
				done := map[string]bool{}
				for _, r := range rows {
					d := r.d
					// A row whose event case_events lacks (checkinbot check
					// reports it) goes alone: sent out of its case's order
					// rather than never.
					if d.CaseID != "" && caseEvents.Get(caseEventKey(d.CaseID, d.Seq)) != nil {
						if ci, ok := inRun[d.Seq]; ok {
							body, err := eventBody(tx, outbox, d.Seq)
							if err != nil {
								return err
							}
							b.Chains[ci].Items = append(b.Chains[ci].Items, store.DueDelivery{Delivery: d, Body: body})
							continue
						}
						if done[d.CaseID] {
							continue // behind a row of its case not yet due
						}
						done[d.CaseID] = true
						run := caseHeadRun(tx, ep, d.CaseID, due)
						if len(run) == 0 || run[0] != d.Seq {
							continue // an earlier row of its case is not due yet
						}
						for _, seq := range run[1:] {
							inRun[seq] = len(b.Chains)
						}
					}
					body, err := eventBody(tx, outbox, d.Seq)
					if err != nil {
						return err
					}
					b.Chains = append(b.Chains, store.Chain{Endpoint: ep, Items: []store.DueDelivery{{Delivery: d, Body: body}}})
				}
				return nil
			})
		return err
	})
	return b, err
}

// DueOfType returns, with their bodies, every pending delivery of event
// type typ that is due at now, in key order (endpoint, then recording
// order). The delivery loop leaves endpoint.heartbeat rows to the prober,
// which sends them on its own fixed cadence; this is how it finds them.
//
// Heartbeats are found through their own due index (pending_heartbeat):
// only heartbeat rows are read, however many other rows an outage left
// due. Any other type is sealed inside each row, so every due row is
// opened — in read transactions of at most buildBatch index entries each,
// so no reader holds the file for a time that grows with the backlog.
func (s *Store) DueOfType(typ string, now time.Time) ([]store.DueDelivery, error) {
	index := bucketPendingDue
	if typ == escalation.TypeEndpointHeartbeat {
		index = bucketPendingBeat
	}
	var out []store.DueDelivery
	seen := map[string]bool{} // a row moved between two batches is taken once
	var after []byte
	for {
		var more bool
		err := s.db.View(func(tx *bolt.Tx) error {
			var err error
			after, more, err = dueOfTypeBatch(tx, index, typ, now, after, seen, &out)
			return err
		})
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	slices.SortFunc(out, func(a, b store.DueDelivery) int {
		return bytes.Compare(pendingKey(a.Endpoint, a.Seq), pendingKey(b.Endpoint, b.Seq))
	})
	return out, nil
}

// dueOfTypeBatch reads up to buildBatch entries of due index after key
// after, appending the due rows of type typ to out. An endpoint's entries
// run in time order: at its first entry not due it seeks to the next
// endpoint. It returns the last key read and whether there is more.
func dueOfTypeBatch(tx *bolt.Tx, index []byte, typ string, now time.Time, after []byte, seen map[string]bool,
	out *[]store.DueDelivery) (last []byte, more bool, err error) {
	outbox, pending := tx.Bucket(bucketOutbox), tx.Bucket(bucketPending)
	c := tx.Bucket(index).Cursor()
	k, _ := c.First()
	if after != nil {
		if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
			k, _ = c.Next()
		}
	}
	nowNS := now.UnixNano()
	for n := 0; k != nil; n++ {
		if n == buildBatch {
			return last, true, nil
		}
		ep, at, seq, ok := parseDueKey(k)
		if !ok {
			return nil, false, fmt.Errorf("%s index key %x is malformed", index, k)
		}
		last = bytes.Clone(k)
		if at > nowNS {
			k, _ = c.Seek(append([]byte(ep), 1)) // the rest of this endpoint is later
			continue
		}
		pk := pendingKey(ep, seq)
		if v := pending.Get(pk); v != nil && !seen[string(pk)] {
			var d store.Delivery
			if err := getSealed(tx, bucketPending, pk, v, &d); err != nil {
				return nil, false, fmt.Errorf("pending delivery %s/%d is corrupt: %w", ep, seq, err)
			}
			// A stale entry (checkinbot check reports it) names a row whose
			// own entry stands elsewhere: the row is taken there.
			if d.Type == typ && bytes.Equal(pendingDueKey(d.Endpoint, d.NextAt, d.Seq), k) {
				body, err := eventBody(tx, outbox, d.Seq)
				if err != nil {
					return nil, false, err
				}
				seen[string(pk)] = true
				*out = append(*out, store.DueDelivery{Delivery: d, Body: body})
			}
		}
		k, _ = c.Next()
	}
	return last, false, nil
}

// PendingOf returns every delivery still owed to endpoint, in recording
// order, reading only that endpoint's rows.
func (s *Store) PendingOf(endpoint string) ([]store.Delivery, error) {
	var out []store.Delivery
	prefix := append([]byte(endpoint), 0)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = c.Next() {
			var d store.Delivery
			if err := getSealed(tx, bucketPending, k, v, &d); err != nil {
				return fmt.Errorf("pending delivery %s/%d is corrupt: %w", endpoint, binary.BigEndian.Uint64(k[len(k)-8:]), err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// RecordAttempts stores the outcomes of attempts in one transaction. An
// attempt for a row no longer pending (recorded already) is skipped; one
// without an outcome (escalation.AttemptNone, or a value this binary does
// not know) fails the whole write, so a deliverer that forgot to decide
// never turns into a silent retry or a silent archive.
func (s *Store) RecordAttempts(now time.Time, attempts []store.Attempt) error {
	for _, a := range attempts {
		switch a.Outcome {
		case escalation.AttemptDelivered, escalation.AttemptFailed, escalation.AttemptGaveUp,
			escalation.AttemptHeld, escalation.AttemptAbandoned:
		default:
			return fmt.Errorf("store: record attempts: delivery %s/%d has no outcome (%v)", a.Endpoint, a.Seq, a.Outcome)
		}
	}
	return s.update(func(tx *bolt.Tx) error {
		pending := tx.Bucket(bucketPending)
		for _, a := range attempts {
			key := pendingKey(a.Endpoint, a.Seq)
			raw := pending.Get(key)
			if raw == nil {
				continue // recorded already (a duplicate attempt)
			}
			var d store.Delivery
			if err := getSealed(tx, bucketPending, key, raw, &d); err != nil {
				return err
			}
			prev := d
			if a.Outcome.Sent() {
				d.Attempts++
			}
			switch {
			case a.Outcome == escalation.AttemptHeld:
				if a.Secondary != "" && !d.SecondaryQueued {
					if err := queueSecondary(tx, &d, a.Secondary, now); err != nil {
						return err
					}
					if err := putPending(tx, d); err != nil {
						return err
					}
				}
			case a.Outcome.Done():
				d.DoneAt, d.GaveUp, d.LastError = now.UTC(), a.Outcome != escalation.AttemptDelivered, a.Err
				if err := deletePending(tx, prev); err != nil {
					return err
				}
				appendBucket(tx, bucketDelivered) // split nearly full: keyed by done time (growth.go)
				if err := putSealed(tx, bucketDelivered, append(u64(uint64(now.UnixNano())), key...), d); err != nil {
					return err
				}
			default: // AttemptFailed
				if d.FirstFailure.IsZero() {
					d.FirstFailure = now.UTC()
				}
				d.LastError, d.NextAt = a.Err, a.NextAt.UTC()
				if a.Secondary != "" && !d.SecondaryQueued {
					if err := queueSecondary(tx, &d, a.Secondary, now); err != nil {
						return err
					}
				}
				if err := putPending(tx, d); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Pending returns every delivery not yet done.
func (s *Store) Pending() ([]store.Delivery, error) {
	return listDeliveries(s, bucketPending)
}

// Delivered returns every archived delivery, oldest first.
func (s *Store) Delivered() ([]store.Delivery, error) {
	return listDeliveries(s, bucketDelivered)
}

func listDeliveries(s *Store, bucket []byte) ([]store.Delivery, error) {
	var out []store.Delivery
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var d store.Delivery
			if err := getSealed(tx, bucket, k, v, &d); err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// Prune is in retention.go: bounded batches.

// Heartbeat records a signed endpoint.heartbeat for endpoint if none was
// recorded within every. It reports whether one was recorded.
//
// The prober asks for every endpoint on every tick: a read transaction
// answers "not due" without the write (and fsync) of an update.
func (s *Store) Heartbeat(endpoint, embassy string, now time.Time, every time.Duration) (bool, error) {
	key := []byte("heartbeat:" + endpoint)
	recent := func(meta *bolt.Bucket) bool {
		v := meta.Get(key)
		return len(v) == 8 && now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(v)))) < every
	}
	due := true
	if err := s.db.View(func(tx *bolt.Tx) error {
		due = !recent(tx.Bucket(bucketMeta))
		return nil
	}); err != nil || !due {
		return false, err
	}
	recorded := false
	err := s.update(func(tx *bolt.Tx) error {
		recorded = false
		meta := tx.Bucket(bucketMeta)
		if recent(meta) {
			return nil
		}
		ev := store.Event{ID: newEventID(), Type: escalation.TypeEndpointHeartbeat, Version: store.EventVersion, CreatedAt: now.UTC(),
			EmbassyID: embassy, Severity: escalation.SeverityInfo, Details: map[string]any{"endpoint": endpoint}}
		if _, err := recordEvent(tx, ev, ""); err != nil {
			return err
		}
		recorded = true
		return meta.Put(key, u64(uint64(now.UnixNano())))
	})
	return recorded, err
}

// Backlog counts what delivery still owes: pending rows plus outbox events
// not yet routed.
func (s *Store) Backlog() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketPending).Stats().KeyN
		var routed uint64
		if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
			routed = binary.BigEndian.Uint64(v)
		}
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, _ := c.Seek(u64(routed + 1)); k != nil; k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// queueSecondary gives the event of d a pending row for the secondary
// endpoint as well.
func queueSecondary(tx *bolt.Tx, d *store.Delivery, secondary string, now time.Time) error {
	d.SecondaryQueued = true
	sec := store.Delivery{Endpoint: secondary, Seq: d.Seq, EventID: d.EventID, Type: d.Type,
		CaseID: d.CaseID, Critical: d.Critical, NextAt: now.UTC()}
	return putPending(tx, sec)
}

// unrouted reports whether the outbox holds events not yet routed.
func (s *Store) unrouted() (bool, error) {
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		var routed uint64
		if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
			routed = binary.BigEndian.Uint64(v)
		}
		k, _ := tx.Bucket(bucketOutbox).Cursor().Seek(u64(routed + 1))
		found = k != nil
		return nil
	})
	return found, err
}

// eventBody is the JSON of outbox event seq, as the webhook carries it.
func eventBody(tx *bolt.Tx, outbox *bolt.Bucket, seq uint64) ([]byte, error) {
	k := u64(seq)
	v := outbox.Get(k)
	if v == nil {
		return nil, fmt.Errorf("outbox event %d of a pending delivery is missing", seq)
	}
	body, _, err := eventOf(tx, k, v)
	if err != nil {
		return nil, fmt.Errorf("outbox event %d of a pending delivery: %w", seq, err)
	}
	return bytes.Clone(body), nil
}
