package boltstore

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// seedCases writes n cases straight into the cases bucket and the case
// index, alternating between two embassies (emb-1 gets the even ones), in
// batches: what n escalations would leave there, minus the time. Every
// tenth case is open, the first 100 of emb-1 spread evenly are
// acknowledged, the rest resolved.
func seedCases(b testing.TB, s *Store, n int) {
	b.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	acked := max(n/2/100, 1) // one acknowledged case of emb-1 in every this many
	const batch = 50_000
	for start := 0; start < n; start += batch {
		err := s.db.Update(func(tx *bolt.Tx) error {
			cases, idx, st := tx.Bucket(bucketCases), tx.Bucket(bucketCaseIndex), tx.Bucket(bucketCaseStatusIndex)
			cases.FillPercent, idx.FillPercent, st.FillPercent = 0.95, 0.95, 0.95
			for i := start; i < min(start+batch, n); i++ {
				at := t0.Add(time.Duration(i) * time.Second)
				c := store.Case{ID: fmt.Sprintf("case_%06d", i+1), EmbassyID: "emb-1", UserKey: benchKey(i),
					Status: escalation.CaseStatusResolved, OpenedAt: at, UpdatedAt: at, Seq: 2,
					Types: []escalation.Type{escalation.TypeCheckinMissed}, Severity: escalation.SeverityHigh,
					ResolvedAt: at, ResolvedBy: "officer-1", Outcome: "safe"}
				if i%2 == 1 {
					c.EmbassyID = "emb-2"
				}
				switch {
				case i%10 == 0:
					c.Status, c.ResolvedAt, c.ResolvedBy, c.Outcome = escalation.CaseStatusOpen, time.Time{}, "", ""
				case i%2 == 0 && (i/2)%acked == 1:
					c.Status, c.ResolvedAt, c.ResolvedBy, c.Outcome = escalation.CaseStatusAcknowledged, time.Time{}, "", ""
					c.AckedAt, c.AckedBy = at, "officer-1"
				}
				raw, err := json.Marshal(c)
				if err != nil {
					return err
				}
				if err := cases.Put([]byte(c.ID), raw); err != nil {
					return err
				}
				if err := indexCase(tx, c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCasesPage reads one page of 50 of an embassy's cases — the
// query behind GET /v1/cases — first and from the middle, unfiltered and
// filtered by a status one in five of its cases has, at 10,000 and
// 1,000,000 cases: the per-embassy index makes the cost follow the page
// size, not the number of cases, so those rows should match within noise.
//
// The "rare" rows filter by a status only 100 of the embassy's cases
// have, spread evenly: the per-embassy × status index makes that page one
// seek plus the page too, so they should match the "all" rows (before
// that index they walked about half the embassy's cases: 842 ms at 1M).
//
// The "absent-type" rows filter by a type no case has: the type filter
// has no index (cases.go says why) and looks at caseScanWindow cases per
// call, so it costs the same at both sizes (before the window it walked
// all the embassy's cases).
//
//	go test ./store/boltstore -run '^$' -bench BenchmarkCasesPage -benchtime 2000x
func BenchmarkCasesPage(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
		if err != nil {
			b.Fatal(err)
		}
		seedCases(b, s, n)
		mid := uint64(n/2 + 1) // a case of emb-1 (odd number, even index)
		for _, q := range []struct {
			name   string
			status escalation.CaseStatus
			before uint64
		}{
			{"all/first", "", 0},
			{"all/middle", "", mid},
			{"open/first", escalation.CaseStatusOpen, 0},
			{"open/middle", escalation.CaseStatusOpen, mid},
			{"rare/first", escalation.CaseStatusAcknowledged, 0},
		} {
			b.Run(fmt.Sprintf("n=%d/%s", n, q.name), func(b *testing.B) {
				for b.Loop() {
					p, err := s.Cases(store.CaseQuery{Embassy: "emb-1", Status: q.status, Before: q.before, Limit: 50})
					if err != nil || len(p.Cases) != 50 || p.Next == 0 {
						b.Fatalf("page: %d cases, next %d, %v", len(p.Cases), p.Next, err)
					}
					for _, c := range p.Cases {
						if c.EmbassyID != "emb-1" || (q.status != "" && c.Status != q.status) {
							b.Fatalf("page has case %s of %s, status %s", c.ID, c.EmbassyID, c.Status)
						}
					}
				}
			})
		}
		// A type no case has: the walk stops at the window with an empty
		// page and a cursor, at any size.
		b.Run(fmt.Sprintf("n=%d/absent-type/first", n), func(b *testing.B) {
			for b.Loop() {
				p, err := s.Cases(store.CaseQuery{Embassy: "emb-1", Type: escalation.TypeDuressTriggered, Limit: 50})
				if err != nil || len(p.Cases) != 0 || p.Next == 0 {
					b.Fatalf("page: %d cases, next %d, %v", len(p.Cases), p.Next, err)
				}
			}
		})
		s.Close()
	}
}
