package boltstore

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// seedEvents records n events through recordEvent (the outbox row and its
// indexes, as every write does), in batches, three embassies in turn; the
// first half of emb-1's events are acknowledged.
func seedEvents(b testing.TB, s *Store, n int) {
	b.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 50_000
	for start := 0; start < n; start += batch {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketOutbox, bucketEventIndex, bucketEventUnacked, bucketEventIDs, bucketCaseEvents} {
				tx.Bucket(name).FillPercent = 0.95
			}
			for i := start; i < min(start+batch, n); i++ {
				emb := []string{"emb-1", "emb-2", "emb-3"}[i%3]
				ev := store.Event{ID: fmt.Sprintf("evt_%026d", i), Type: escalation.TypeCheckinMissed, Version: store.EventVersion,
					CreatedAt: t0.Add(time.Duration(i) * time.Second), EmbassyID: emb, Severity: escalation.SeverityHigh,
					CaseID: fmt.Sprintf("case_%06d", i+1), CaseSeq: 1, Registrant: &escalation.RegistrantView{ID: "reg_0123456789abcdef"},
					Details: map[string]any{}}
				_, err := recordEvent(tx, ev, "")
				if err != nil {
					return err
				}
				if emb == "emb-1" && i < n/2 {
					v := tx.Bucket(bucketEventIDs).Get([]byte(ev.ID))
					if err := tx.Bucket(bucketEventUnacked).Delete(embassyEventKey(emb, binary.BigEndian.Uint64(v[8:]))); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventsPage reads one page of 100 of an embassy's events — the
// query behind GET /v1/events — from the start, from the middle, and
// unacknowledged only (the first half of the embassy's events are
// acknowledged, so before the unacknowledged index that walked half of
// them), with 10,000 and 1,000,000 events in the outbox (a third of them
// the embassy's): the per-embassy indexes make the cost follow the page
// size, so the two sizes should match within noise. One case's events
// (GET /v1/cases/{id}) are read the same way.
//
//	go test ./store/boltstore -run '^$' -bench BenchmarkEventsPage -benchtime 2000x
func BenchmarkEventsPage(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
		if err != nil {
			b.Fatal(err)
		}
		seedEvents(b, s, n)
		own := uint64(n / 3)
		for _, q := range []struct {
			name    string
			after   uint64
			unacked bool
		}{
			{"all/first", 0, false},
			{"all/middle", own / 2, false},
			{"unacked/first", 0, true},
		} {
			b.Run(fmt.Sprintf("n=%d/%s", n, q.name), func(b *testing.B) {
				for b.Loop() {
					p, err := s.Events(store.EventQuery{Embassy: "emb-1", After: q.after, Unacked: q.unacked, Limit: 100})
					if err != nil || len(p.Events) != 100 || !p.More {
						b.Fatalf("page: %d events, more %v, %v", len(p.Events), p.More, err)
					}
					for _, ev := range p.Events {
						if ev.EmbassyID != "emb-1" {
							b.Fatalf("page has an event of %s", ev.EmbassyID)
						}
					}
				}
			})
		}
		b.Run(fmt.Sprintf("n=%d/case", n), func(b *testing.B) {
			id := fmt.Sprintf("case_%06d", n/2+1)
			for b.Loop() {
				var evs []store.Event
				err := s.db.View(func(tx *bolt.Tx) error {
					var err error
					evs, err = caseEvents(tx, id)
					return err
				})
				if err != nil || len(evs) != 1 || evs[0].CaseID != id {
					b.Fatalf("case events: %d, %v", len(evs), err)
				}
			}
		})
		s.Close()
	}
}
