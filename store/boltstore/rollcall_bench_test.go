package boltstore

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/store"
)

// BenchmarkRollCallGet is what GET /v1/rollcalls/{id} reads, for roll
// calls of 10,000 and 100,000 members, in the same binary and run:
// "counts" (the counters) and "page" (one page of 50 of the pending list,
// from the middle) are what the API reads now, the same at both sizes;
// "report" is the whole report it read before (every membership).
//
//	go test ./store/boltstore -run '^$' -bench BenchmarkRollCallGet -benchtime 50x
func BenchmarkRollCallGet(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
		if err != nil {
			b.Fatal(err)
		}
		members := make([]string, n)
		for i := range members {
			members[i] = benchKey(i)
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := s.CreateRollCall(store.RollCall{ID: "rc_bench", EmbassyID: "emb-1", Country: "KH", CreatedAt: t0,
			Deadline: t0.Add(time.Hour), Members: members}); err != nil {
			b.Fatal(err)
		}
		_, mid, err := s.RollCallPage("rc_bench", "pending", "", n/2)
		if err != nil || mid == "" {
			b.Fatal(mid, err)
		}
		b.Run(fmt.Sprintf("n=%d/counts", n), func(b *testing.B) {
			for b.Loop() {
				_, c, found, err := s.RollCallCounts("rc_bench")
				if err != nil || !found || c.Pending != n {
					b.Fatalf("counts %+v %v", c, err)
				}
			}
		})
		b.Run(fmt.Sprintf("n=%d/page", n), func(b *testing.B) {
			for b.Loop() {
				ids, next, err := s.RollCallPage("rc_bench", "pending", mid, 50)
				if err != nil || len(ids) != 50 || next == "" {
					b.Fatalf("page %d %v", len(ids), err)
				}
			}
		})
		b.Run(fmt.Sprintf("n=%d/report", n), func(b *testing.B) {
			for b.Loop() {
				rep, _, err := s.RollCall("rc_bench")
				if err != nil || len(rep.Pending) != n {
					b.Fatalf("report %d %v", len(rep.Pending), err)
				}
			}
		})
		s.Close()
	}
}
