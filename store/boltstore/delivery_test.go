package boltstore

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// TestDueChains: the runs handed to the deliverer keep per-case order, stop
// at a row not yet due, honour the limit, and skip endpoints without
// reading them.
func TestDueChains(t *testing.T) {
	// Recorded in this order: k1 has a case (seqs 1, 3, 5), k2 a case
	// (seqs 2, 4), and seq 6 is caseless.
	setup := func(t *testing.T) *Store {
		s := mustOpen(t)
		for _, k := range []string{"k1", "k2", "k1", "k2", "k1"} {
			s.Process(k, "", t0, result(func(_ *dialogs.State, r *dialogs.Result) {
				r.Escalations = []dialogs.Escalation{{Type: dialogs.EventCaseUpdated, Severity: dialogs.SeverityCritical, Case: dialogs.CaseOpen}}
			}))
		}
		s.Process("k3", "", t0, result(func(_ *dialogs.State, r *dialogs.Result) {
			r.Escalations = []dialogs.Escalation{{Type: dialogs.EventRegistrationCreated, Severity: dialogs.SeverityInfo}}
		}))
		if _, err := s.Route(t0, func(store.Event) []store.Target { return []store.Target{{Endpoint: "e1"}, {Endpoint: "e1/secondary"}} }); err != nil {
			t.Fatal(err)
		}
		return s
	}
	later := t0.Add(time.Minute)
	tests := []struct {
		name     string
		failed   []uint64 // e1 rows recorded as failed, due again at later
		skip     string
		limit    int
		want     string // chains of the first endpoint read, as seqs
		wantNext time.Time
		wantMore bool
	}{
		{name: "all due", want: "[1 3 5] [2 4] [6]"},
		{name: "head not due closes its case", failed: []uint64{1}, want: "[2 4] [6]", wantNext: later},
		{name: "later row not due ends the run", failed: []uint64{3}, want: "[1] [2 4] [6]", wantNext: later},
		{name: "caseless rows are independent", failed: []uint64{6}, want: "[1 3 5] [2 4]", wantNext: later},
		{name: "limit", limit: 3, want: "[1 3] [2]", wantMore: true},
		{name: "skipped endpoint not read", skip: "e1", want: "[1 3 5] [2 4] [6]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := setup(t)
			var attempts []store.Attempt
			for _, seq := range tc.failed {
				attempts = append(attempts, store.Attempt{Endpoint: "e1", Seq: seq, Outcome: escalation.AttemptFailed, Err: "HTTP 503", NextAt: later})
			}
			if err := s.RecordAttempts(t0, attempts); err != nil {
				t.Fatal(err)
			}
			if tc.skip != "" {
				// A row that cannot be decoded: reading it would fail.
				if err := s.db.Update(func(tx *bolt.Tx) error {
					if err := tx.Bucket(bucketPendingDue).Put(pendingDueKey(tc.skip, t0, 99), nil); err != nil {
						return err
					}
					return tx.Bucket(bucketPending).Put(pendingKey(tc.skip, 99), []byte("not json"))
				}); err != nil {
					t.Fatal(err)
				}
			}
			b, err := s.DueChains(t0, func(ep string) bool { return ep == tc.skip }, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.Endpoints, []string{"e1", "e1/secondary"}) && !tc.wantMore {
				t.Errorf("endpoints %v", b.Endpoints)
			}
			first := "e1"
			if tc.skip == "e1" {
				first = "e1/secondary"
			}
			got := ""
			for _, c := range b.Chains {
				if c.Endpoint == tc.skip {
					t.Errorf("a chain of the skipped endpoint %s", c.Endpoint)
				}
				if c.Endpoint != first {
					continue
				}
				var seqs []uint64
				for _, it := range c.Items {
					if len(it.Body) == 0 {
						t.Errorf("seq %d without its body", it.Seq)
					}
					seqs = append(seqs, it.Seq)
				}
				got += fmt.Sprint(seqs) + " "
			}
			if got != tc.want+" " {
				t.Errorf("chains %s, want %s", got, tc.want)
			}
			if !b.Next.Equal(tc.wantNext) || b.More != tc.wantMore {
				t.Errorf("next %v more %v, want %v %v", b.Next, b.More, tc.wantNext, tc.wantMore)
			}
			// The heads are what DueDeliveries reports.
			if tc.limit == 0 && tc.skip == "" {
				var want, got []uint64
				for _, c := range b.Chains {
					want = append(want, c.Items[0].Seq)
				}
				heads, _, _ := s.DueDeliveries(t0)
				for _, h := range heads {
					got = append(got, h.Seq)
				}
				if !slices.Equal(got, want) {
					t.Errorf("DueDeliveries heads %v, chain heads %v", got, want)
				}
			}
		})
	}
}

// TestPendingOf reads one endpoint's rows only, even when another id
// extends it.
func TestPendingOf(t *testing.T) {
	s := mustOpen(t)
	s.Process("k1", "", t0, result(func(_ *dialogs.State, r *dialogs.Result) {
		r.Escalations = []dialogs.Escalation{{Type: dialogs.EventSOSRaised, Severity: dialogs.SeverityCritical, Case: dialogs.CaseOpen}}
	}))
	s.Route(t0, func(store.Event) []store.Target {
		return []store.Target{{Endpoint: "e1"}, {Endpoint: "e1/secondary"}, {Endpoint: "e"}}
	})
	for _, ep := range []string{"e", "e1", "e1/secondary"} {
		rows, err := s.PendingOf(ep)
		if err != nil || len(rows) != 1 || rows[0].Endpoint != ep {
			t.Errorf("PendingOf(%s) = %+v, %v", ep, rows, err)
		}
	}
}
