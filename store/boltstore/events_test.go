package boltstore

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// recordSOS gives registrant i of embassy emb an SOS (a new case), at t.
func recordSOS(t testing.TB, s *Store, i int, emb string, at time.Time) store.Event {
	t.Helper()
	o, err := s.Process(fmt.Sprintf("%064x", i), "", at, func(prev dialogs.State, _ bool) dialogs.Result {
		return dialogs.Result{State: prev, Escalations: []dialogs.Escalation{{Type: escalation.TypeSOSRaised,
			Severity: escalation.SeverityCritical, EmbassyID: emb, Case: dialogs.CaseOpen}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	return o.Events[0]
}

// pullAll reads every page of embassy's events (limit 2).
func pullAll(t testing.TB, s *Store, embassy string, unacked bool) []string {
	t.Helper()
	var ids []string
	q := store.EventQuery{Embassy: embassy, Limit: 2, Unacked: unacked}
	for range 100 {
		p, err := s.Events(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Events {
			ids = append(ids, ev.ID)
		}
		q.After = p.Next
		if !p.More {
			break
		}
	}
	return ids
}

// TestEventIndexBackfilledFromOlderFile: a version 2 file (outbox, acks,
// no event indexes, no registrant counters) opened by this binary gets
// its indexes and counters built once, acknowledgements included, pulls
// exactly what it held, and checks clean.
func TestEventIndexBackfilledFromOlderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	var all []string
	for i := range 7 {
		ev := recordSOS(t, s, i, []string{"a", "b"}[i%2], t0.Add(time.Duration(i)*time.Minute))
		if ev.EmbassyID == "a" {
			all = append(all, ev.ID)
		}
	}
	if err := s.AckEvent("a", all[1], "A", t0); err != nil {
		t.Fatal(err)
	}
	unacked := append([]string{all[0]}, all[2:]...)
	// Make it the file an older binary left: no event indexes, schema 2.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEventIndex, bucketEventUnacked, bucketEventSeq, bucketEventIDs, bucketCaseEvents} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		for _, k := range [][]byte{keyEventIndexBuilt, keyStatsBuilt} {
			if err := tx.Bucket(bucketMeta).Delete(k); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketStatCounts); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(2))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	if got := pullAll(t, s, "a", false); !slices.Equal(got, all) {
		t.Errorf("after the backfill a pulls %v, want %v", got, all)
	}
	if got := pullAll(t, s, "a", true); !slices.Equal(got, unacked) {
		t.Errorf("after the backfill a's unacknowledged: %v, want %v", got, unacked)
	}
	c, _, _ := s.CaseByID("case_000001")
	if _, evs, err := s.Case("a", c.ID); err != nil || len(evs) != 1 || evs[0].ID != all[0] {
		t.Errorf("case %s after the backfill: %v, %v", c.ID, evs, err)
	}
	st, err := s.Stats()
	if err != nil || st.Registrants["new"] != 7 {
		t.Errorf("counters after the backfill: %+v, %v; want 7 new", st.Registrants, err)
	}
	s.Close()
	rep, err := Check(path)
	if err != nil || len(rep.Problems) > 0 {
		t.Errorf("check after the backfill: %v %v", rep.Problems, err)
	}
}

// TestPruneTakesIndexEntriesAlong: events pruned from the outbox leave no
// index entry behind, and the embassy's sequence never goes back (a
// cursor handed out before the prune still means the same place).
func TestPruneTakesIndexEntriesAlong(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "checkinbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	for i := range 6 {
		recordSOS(t, s, i, "a", t0.Add(time.Duration(i)*time.Hour))
	}
	if _, err := s.Route(t0, func(store.Event) []store.Target { return nil }); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(t0.Add(150 * time.Minute)); err != nil || n != 3 {
		t.Fatalf("pruned %d (%v), want 3", n, err)
	}
	late := recordSOS(t, s, 9, "a", t0.Add(10*time.Hour))
	p, err := s.Events(store.EventQuery{Embassy: "a", Limit: 100})
	if err != nil || len(p.Events) != 4 || p.Next != 7 || p.Events[3].ID != late.ID {
		t.Errorf("after the prune: %d events, next %d (%v); want 4, 7", len(p.Events), p.Next, err)
	}
	s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEventIndex, bucketEventUnacked, bucketEventIDs, bucketCaseEvents} {
			if n := tx.Bucket(b).Stats().KeyN; n != 4 {
				t.Errorf("%s holds %d entries for 4 events", b, n)
			}
		}
		return nil
	})
}
