package boltstore

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// seedIndex writes n registrants of one embassy straight into the
// registrant index — half overdue, half active, in key order, in batches —
// which is what n Process calls would leave there, minus the time.
func seedIndex(b *testing.B, s *Store, n int) {
	b.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	route := func(string, string) string { return "emb-1" }
	const batch = 50_000
	for start := 0; start < n; start += batch {
		err := s.db.Update(func(tx *bolt.Tx) error {
			idx, users := tx.Bucket(bucketRegIndex), tx.Bucket(bucketRegIndexUser)
			idx.FillPercent, users.FillPercent = 0.95, 0.95
			for i := start; i < min(start+batch, n); i++ {
				st := dialogs.State{Status: dialogs.StatusActive, Overdue: i%2 == 0, LastCheckin: t0.Add(time.Duration(i) * time.Second),
					OpenCase: fmt.Sprintf("case_%06d", i),
					Profile: dialogs.Profile{Nationality: "MY", Country: "KH", City: "Phnom Penh",
						LastLocation: &escalation.Location{Lat: 11.55, Lon: 104.92}}}
				if err := putIndex(idx, users, route, benchKey(i), st, t0.Add(time.Duration(i)*time.Second)); err != nil {
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

func benchKey(i int) string { return fmt.Sprintf("%064x", i) }

// BenchmarkRegistrantsPage reads one page of 50 of the overdue and the
// active list, first and from the middle, at 10,000 and 1,000,000
// registrants: the index makes the cost follow the page size, not the
// number of registrants, so the rows should match within noise.
func BenchmarkRegistrantsPage(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
		if err != nil {
			b.Fatal(err)
		}
		seedIndex(b, s, n)
		mid := n / 2 // an overdue one (even)
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		cursors := map[store.RegistrantStatus]string{
			store.StatusOverdue: base64.RawURLEncoding.EncodeToString(append(u64(uint64(t0.Add(time.Duration(mid)*time.Second).UnixNano())), benchKey(mid)...)),
			store.StatusActive:  base64.RawURLEncoding.EncodeToString([]byte(benchKey(mid + 1))),
		}
		for _, status := range []store.RegistrantStatus{store.StatusOverdue, store.StatusActive} {
			for _, where := range []string{"first", "middle"} {
				cursor := ""
				if where == "middle" {
					cursor = cursors[status]
				}
				b.Run(fmt.Sprintf("n=%d/%s/%s", n, status, where), func(b *testing.B) {
					for b.Loop() {
						p, err := s.Registrants("emb-1", status, cursor, 50)
						if err != nil || len(p.Rows) != 50 || p.Next == "" {
							b.Fatalf("page: %d rows, next %q, %v", len(p.Rows), p.Next, err)
						}
					}
				})
			}
		}
		s.Close()
	}
}

// BenchmarkProcessIndexed64 is BenchmarkProcess64 with registrants the
// index lists (active, a city, a last check-in): the difference between
// the two, in the same run, is what keeping the registrant index costs an
// event's transaction.
func BenchmarkProcessIndexed64(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.IndexWith(func(string, string) string { return "emb-1" }, "bench"); err != nil {
		b.Fatal(err)
	}
	process64(b, func(key string, i int64) {
		s.Process(key, "", t0, func(prev dialogs.State, _ bool) dialogs.Result {
			prev.Timer = t0.Add(time.Duration(i) * time.Second)
			prev.Status, prev.Overdue, prev.LastCheckin = dialogs.StatusActive, i%3 == 0, t0
			prev.Profile.Nationality, prev.Profile.Country, prev.Profile.City = "MY", "KH", "Phnom Penh"
			return dialogs.Result{State: prev, Audit: []string{"checkin"}}
		})
	})
}
