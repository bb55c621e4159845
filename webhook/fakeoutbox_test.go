package webhook

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
)

// fakeOutbox is an in-memory Outbox: the deliverer's tests run on it
// without bbolt. It keeps the contract the storage conformance suite
// (store/storetest) pins for real engines: routing once, per-endpoint
// recording order, a case's later events held behind its earliest pending
// one, and each attempt outcome recorded as RecordAttempts documents.
type fakeOutbox struct {
	mu        sync.Mutex
	events    []escalation.Event // index = seq-1
	bodies    [][]byte
	routed    int                          // events routed so far
	pending   map[pkey]escalation.Delivery // endpoint, seq → row
	delivered []escalation.Delivery
	beats     map[string]time.Time
}

type pkey struct {
	endpoint string
	seq      uint64
}

func newFakeOutbox() *fakeOutbox {
	return &fakeOutbox{pending: map[pkey]escalation.Delivery{}, beats: map[string]time.Time{}}
}

// add records an event as the runner's transaction would, assigning its id
// and case_seq (one case per caseID given).
func (f *fakeOutbox) add(ev escalation.Event) escalation.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev.ID = fmt.Sprintf("evt_fake%04d", len(f.events)+1)
	ev.Version = escalation.Version
	if ev.Details == nil {
		ev.Details = map[string]any{}
	}
	if ev.CaseID != "" {
		for _, e := range f.events {
			if e.CaseID == ev.CaseID {
				ev.CaseSeq = max(ev.CaseSeq, e.CaseSeq)
			}
		}
		ev.CaseSeq++
	}
	body, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	f.events = append(f.events, ev)
	f.bodies = append(f.bodies, body)
	return ev
}

func (f *fakeOutbox) Route(now time.Time, targets func(escalation.Event) []escalation.Target) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for ; f.routed < len(f.events); f.routed++ {
		ev, seq := f.events[f.routed], uint64(f.routed+1)
		for _, t := range targets(ev) {
			f.pending[pkey{t.Endpoint, seq}] = escalation.Delivery{Endpoint: t.Endpoint, Seq: seq, EventID: ev.ID,
				Type: ev.Type, CaseID: ev.CaseID, Critical: t.Critical, NextAt: now.UTC()}
			n++
		}
	}
	return n, nil
}

// rows returns the pending rows in key order (endpoint, then seq). f.mu
// must be held.
func (f *fakeOutbox) rows() []escalation.Delivery {
	var out []escalation.Delivery
	for _, d := range f.pending {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b escalation.Delivery) int {
		return cmp.Or(cmp.Compare(a.Endpoint, b.Endpoint), cmp.Compare(a.Seq, b.Seq))
	})
	return out
}

func (f *fakeOutbox) DueChains(now time.Time, skip func(string) bool, limit int) (escalation.DueBatch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b escalation.DueBatch
	var endpoint string
	var chainOf map[string]int // case → chain index, -1: held back
	n := 0
	for _, d := range f.rows() {
		if d.Endpoint != endpoint || chainOf == nil {
			endpoint, chainOf = d.Endpoint, map[string]int{}
			b.Endpoints = append(b.Endpoints, endpoint)
		}
		if skip != nil && skip(endpoint) {
			continue
		}
		ci, seen := chainOf[d.CaseID]
		if d.CaseID != "" && seen && ci < 0 {
			continue
		}
		if d.NextAt.After(now) {
			if b.Next.IsZero() || d.NextAt.Before(b.Next) {
				b.Next = d.NextAt
			}
			if d.CaseID != "" {
				chainOf[d.CaseID] = -1
			}
			continue
		}
		if limit > 0 && n >= limit {
			b.More = true
			return b, nil
		}
		n++
		dd := escalation.DueDelivery{Delivery: d, Body: slices.Clone(f.bodies[d.Seq-1])}
		if d.CaseID != "" && seen {
			b.Chains[ci].Items = append(b.Chains[ci].Items, dd)
			continue
		}
		if d.CaseID != "" {
			chainOf[d.CaseID] = len(b.Chains)
		}
		b.Chains = append(b.Chains, escalation.Chain{Endpoint: endpoint, Items: []escalation.DueDelivery{dd}})
	}
	return b, nil
}

func (f *fakeOutbox) DueOfType(typ escalation.Type, now time.Time) ([]escalation.DueDelivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []escalation.DueDelivery
	for _, d := range f.rows() {
		if d.Type == typ && !d.NextAt.After(now) {
			out = append(out, escalation.DueDelivery{Delivery: d, Body: slices.Clone(f.bodies[d.Seq-1])})
		}
	}
	return out, nil
}

func (f *fakeOutbox) PendingOf(endpoint string) ([]escalation.Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []escalation.Delivery
	for _, d := range f.rows() {
		if d.Endpoint == endpoint {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeOutbox) RecordAttempts(now time.Time, attempts []escalation.Attempt) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range attempts {
		if a.Outcome == escalation.AttemptNone || a.Outcome > escalation.AttemptAbandoned {
			return fmt.Errorf("delivery %s/%d has no outcome", a.Endpoint, a.Seq)
		}
	}
	for _, a := range attempts {
		k := pkey{a.Endpoint, a.Seq}
		d, ok := f.pending[k]
		if !ok {
			continue
		}
		if a.Outcome.Sent() {
			d.Attempts++
		}
		queue := func() {
			if a.Secondary != "" && !d.SecondaryQueued {
				d.SecondaryQueued = true
				f.pending[pkey{a.Secondary, a.Seq}] = escalation.Delivery{Endpoint: a.Secondary, Seq: d.Seq,
					EventID: d.EventID, Type: d.Type, CaseID: d.CaseID, Critical: d.Critical, NextAt: now.UTC()}
			}
		}
		switch {
		case a.Outcome == escalation.AttemptHeld:
			queue()
			f.pending[k] = d
		case a.Outcome.Done():
			d.DoneAt, d.GaveUp, d.LastError = now.UTC(), a.Outcome != escalation.AttemptDelivered, a.Err
			delete(f.pending, k)
			f.delivered = append(f.delivered, d)
		default:
			if d.FirstFailure.IsZero() {
				d.FirstFailure = now.UTC()
			}
			d.LastError, d.NextAt = a.Err, a.NextAt.UTC()
			queue()
			f.pending[k] = d
		}
	}
	return nil
}

func (f *fakeOutbox) Heartbeat(endpoint, embassy string, now time.Time, every time.Duration) (bool, error) {
	f.mu.Lock()
	last, ok := f.beats[endpoint]
	if ok && now.Sub(last) < every {
		f.mu.Unlock()
		return false, nil
	}
	f.beats[endpoint] = now
	f.mu.Unlock()
	f.add(escalation.Event{Type: escalation.TypeEndpointHeartbeat, CreatedAt: now.UTC(), EmbassyID: embassy,
		Severity: escalation.SeverityInfo, Details: map[string]any{"endpoint": endpoint}})
	return true, nil
}

// Prune keeps everything: these tests never run long enough to prune.
func (f *fakeOutbox) Prune(time.Time) (int, error) { return 0, nil }

// state returns copies of the pending and archived rows.
func (f *fakeOutbox) state() (pending, done []escalation.Delivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rows(), slices.Clone(f.delivered)
}

var _ Outbox = (*fakeOutbox)(nil)
