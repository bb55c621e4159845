package boltstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// TestUnsentSendsPagesEveryRowOnceSkippingHeld: over random queues (several
// users, several rows each) and every page size, the pages of UnsentSends
// return exactly the rows PendingSends("") returns that skip does not name,
// each once, in key order; the rows skip names are never opened — one of
// them is made unreadable, and paging must not notice (with the row opened
// before skip is asked, it fails "unreadable"). Memory is one page: no call
// returns more than limit rows.
func TestUnsentSendsPagesEveryRowOnceSkippingHeld(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 4))
			s := mustOpen(t)
			env := &store.Envelope{Channel: "telegram", Address: "1"}
			for i := range 20 + rng.IntN(40) {
				key := fmt.Sprintf("user-%02d", rng.IntN(9))
				if _, err := s.ProcessSend(key, "", t0, env, result(func(_ *dialogs.State, r *dialogs.Result) {
					r.Replies = []dialogs.Reply{{Text: fmt.Sprint("reply ", i)}}
				})); err != nil {
					t.Fatal(err)
				}
			}
			all, err := s.PendingSends("")
			if err != nil || len(all) < 20 {
				t.Fatalf("queue: %d rows, %v", len(all), err)
			}
			held := map[uint64]bool{}
			var want []uint64
			for _, it := range all {
				if rng.IntN(3) == 0 {
					held[it.Seq] = true
				} else {
					want = append(want, it.Seq)
				}
			}
			// One held row no key can open: paging must never read it.
			for _, it := range all {
				if held[it.Seq] {
					if err := s.db.Update(func(tx *bolt.Tx) error {
						return tx.Bucket(bucketSendq).Put(userSeqKey(it.UserKey, it.Seq), []byte("not a row"))
					}); err != nil {
						t.Fatal(err)
					}
					break
				}
			}
			skip := func(seq uint64) bool { return held[seq] }
			for _, limit := range []int{0, 1, 2, 3, 7, len(want), len(want) + 5} { // 0: no limit, one page
				var got []uint64
				var cursor []byte
				for pages := 0; ; pages++ {
					items, next, err := s.UnsentSends(cursor, skip, limit)
					if err != nil {
						t.Fatalf("limit %d, page %d: %v", limit, pages, err)
					}
					if limit > 0 && len(items) > limit {
						t.Fatalf("limit %d: a page of %d rows", limit, len(items))
					}
					for _, it := range items {
						got = append(got, it.Seq)
					}
					if next == nil {
						break
					}
					if pages > len(all) {
						t.Fatalf("limit %d: paging does not end", limit)
					}
					cursor = next
				}
				if !slices.Equal(got, want) {
					t.Fatalf("limit %d: pages returned %v, want %v (every row not held, once, in key order)", limit, got, want)
				}
			}
		})
	}
}
