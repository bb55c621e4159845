package boltstore

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	bolt "go.etcd.io/bbolt"
)

// seedRegistrants writes n registrants straight into the registrants
// bucket, each counted as Process counts it — a quarter of each of
// active, overdue, paused and stopped — in batches.
func seedRegistrants(b *testing.B, s *Store, n int) {
	b.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	statuses := []dialogs.Status{dialogs.StatusActive, dialogs.StatusActive, dialogs.StatusPaused, dialogs.StatusStopped}
	const batch = 50_000
	for start := 0; start < n; start += batch {
		err := s.db.Update(func(tx *bolt.Tx) error {
			regs := tx.Bucket(bucketRegistrants)
			regs.FillPercent = 0.95
			for i := start; i < min(start+batch, n); i++ {
				st := dialogs.State{Key: benchKey(i), Lang: "en", Status: statuses[i%4], Overdue: i%4 == 1,
					LastCheckin: t0.Add(time.Duration(i) * time.Second),
					Profile: dialogs.Profile{Nationality: "MY", Country: "KH", City: "Phnom Penh",
						LastLocation: &escalation.Location{Lat: 11.55, Lon: 104.92}}}
				raw, err := json.Marshal(st)
				if err != nil {
					return err
				}
				if err := regs.Put([]byte(st.Key), raw); err != nil {
					return err
				}
				if err := countRegistrant(tx, dialogs.State{}, false, st, false); err != nil {
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

// BenchmarkStatsScrape is the registrant part of a /metrics scrape at
// 10,000 and 1,000,000 registrants, two ways in the same binary and run:
// "counters" is Stats as it is (counters kept in every write's
// transaction: the same cost at both sizes), "scan" decodes every
// registrant's status, overdue flag and last check-in as Stats did before
// (its cost grows with the registrants).
//
//	go test ./store/boltstore -run '^$' -bench BenchmarkStatsScrape -benchtime 5x
func BenchmarkStatsScrape(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
		if err != nil {
			b.Fatal(err)
		}
		seedRegistrants(b, s, n)
		b.Run(fmt.Sprintf("n=%d/counters", n), func(b *testing.B) {
			for b.Loop() {
				st, err := s.Stats()
				if err != nil || st.Registrants["active"] != n/2 || st.Overdue != n/4 {
					b.Fatalf("stats: %+v, %v", st.Registrants, err)
				}
			}
		})
		b.Run(fmt.Sprintf("n=%d/scan", n), func(b *testing.B) {
			for b.Loop() {
				active := 0
				s.db.View(func(tx *bolt.Tx) error {
					return tx.Bucket(bucketRegistrants).ForEach(func(_, v []byte) error {
						var r struct { // what the scan decoded, no more
							Status      dialogs.Status `json:"status"`
							LastCheckin time.Time      `json:"last_checkin"`
							Overdue     bool           `json:"overdue"`
						}
						if err := json.Unmarshal(v, &r); err != nil {
							return err
						}
						if r.Status == dialogs.StatusActive {
							active++
						}
						return nil
					})
				})
				if active != n/2 {
					b.Fatalf("scan: %d active", active)
				}
			}
		})
		s.Close()
	}
}
