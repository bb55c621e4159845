package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// seedBacklog records n outbox events directly, in transactions of 10,000
// (seeding, not the code under test), alternating between two embassies,
// every second one in a case of its own embassy.
func seedBacklog(tb testing.TB, s *Store, n int, at time.Time) {
	tb.Helper()
	for done := 0; done < n; {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i := 0; i < 10_000 && done < n; i, done = i+1, done+1 {
				emb := []string{"emb-a", "emb-b"}[done%2]
				ev := store.Event{ID: newEventID(), Type: escalation.TypeCheckinMissed, Version: store.EventVersion, CreatedAt: at,
					EmbassyID: emb, Severity: escalation.SeverityHigh}
				if done%4 < 2 {
					ev.CaseID = fmt.Sprintf("case_%06d", done/4+1)
				}
				if _, err := recordEvent(tx, ev, ""); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// twoRows routes an event to its embassy and to that embassy's partner:
// two embassies' rows interleave in recording order.
func twoRows(ev store.Event) []store.Target {
	return []store.Target{{Endpoint: ev.EmbassyID, Critical: true}, {Endpoint: ev.EmbassyID + "/partner/p1"}}
}

// routeOneTransaction is Route as it was before batching (every unrouted
// event in one write transaction, rows written in recording order), with
// today's rows (the due index too): the benchmark's same-run baseline.
func (s *Store) routeOneTransaction(now time.Time, targets func(store.Event) []store.Target) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		meta, outbox := tx.Bucket(bucketMeta), tx.Bucket(bucketOutbox)
		var from uint64
		if v := meta.Get(keyRouted); len(v) == 8 {
			from = binary.BigEndian.Uint64(v)
		}
		c := outbox.Cursor()
		last := from
		for k, v := c.Seek(u64(from + 1)); k != nil; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			var ev store.Event
			if err := getEvent(tx, k, v, &ev); err != nil {
				return err
			}
			for _, t := range targets(ev) {
				d := store.Delivery{Endpoint: t.Endpoint, Seq: seq, EventID: ev.ID, Type: ev.Type, CaseID: ev.CaseID,
					Critical: t.Critical, NextAt: now.UTC()}
				if err := putPending(tx, d); err != nil {
					return err
				}
				n++
			}
			last = seq
		}
		if last == from {
			return nil
		}
		return meta.Put(keyRouted, u64(last))
	})
	return n, err
}

// BenchmarkRouteBacklog: routing a backlog of N/2 events into N pending
// rows (two per event, two embassies interleaving) — batched (today's) and
// in one transaction (before), same binary, same run, same seed — with one
// citizen writing in a loop meanwhile. Reported: the routing's duration
// and the writer's worst and median wait.
//
//	go test ./store/boltstore -run '^$' -bench RouteBacklog -benchtime 1x
func BenchmarkRouteBacklog(b *testing.B) {
	for _, rows := range []int{20_000, 200_000} {
		for _, mode := range []string{"batched", "one-transaction"} {
			b.Run(fmt.Sprintf("%s/rows=%d", mode, rows), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					s := mustOpen(b)
					seedBacklog(b, s, rows/2, t0)
					stopWriter := writerAlongside(b, s, t0)
					b.StartTimer()
					start := time.Now()
					var n int
					var err error
					if mode == "batched" {
						n, err = s.Route(t0, twoRows)
					} else {
						n, err = s.routeOneTransaction(t0, twoRows)
					}
					took := time.Since(start)
					b.StopTimer()
					waits := stopWriter()
					if err != nil || n != rows {
						b.Fatalf("routed %d of %d: %v", n, rows, err)
					}
					b.ReportMetric(float64(took.Microseconds())/1000, "route-ms")
					b.ReportMetric(float64(pct(waits, 1).Microseconds())/1000, "worst-wait-ms")
					b.ReportMetric(float64(pct(waits, 0.5).Microseconds())/1000, "median-wait-ms")
					s.Close()
				}
			})
		}
	}
}

// dueChainsFullScan is the delivery round's read as it was before the due
// index: every pending row read and opened, the due ones' bodies fetched.
// The benchmark's same-run baseline.
func (s *Store) dueChainsFullScan(now time.Time, limit int) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		outbox := tx.Bucket(bucketOutbox)
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var d store.Delivery
			if err := getSealed(tx, bucketPending, k, v, &d); err != nil {
				return err
			}
			if d.NextAt.After(now) {
				continue
			}
			if n >= limit {
				return nil
			}
			if _, err := eventBody(tx, outbox, d.Seq); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// BenchmarkDueRound: one delivery round's read (DueChains, limit 1,024)
// with 1,000 rows due and 1,000 or 200,000 rows waiting for a later retry
// on the same endpoints — through the due index (today's) and by a full
// scan (before), same binary, same run. Through the index the two sizes
// cost the same within noise; the scan grows with the waiting rows.
//
//	go test ./store/boltstore -run '^$' -bench DueRound
func BenchmarkDueRound(b *testing.B) {
	for _, waiting := range []int{1_000, 200_000} {
		s := mustOpen(b)
		seedBacklog(b, s, 500, t0)
		if n, err := s.Route(t0, twoRows); err != nil || n != 1000 {
			b.Fatalf("routed %d: %v", n, err)
		}
		later := t0.Add(time.Hour)
		for done := 0; done < waiting; {
			err := s.db.Update(func(tx *bolt.Tx) error {
				for i := 0; i < 20_000 && done < waiting; i, done = i+1, done+1 {
					ep := []string{"emb-a", "emb-b", "emb-a/partner/p1", "emb-b/partner/p1"}[done%4]
					d := store.Delivery{Endpoint: ep, Seq: uint64(1_000_000 + done), EventID: "evt_waiting", Type: escalation.TypeCheckinMissed,
						Attempts: 3, NextAt: later.Add(time.Duration(done) * time.Millisecond), FirstFailure: t0}
					if err := putPending(tx, d); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		for _, mode := range []string{"index", "full-scan"} {
			b.Run(fmt.Sprintf("%s/waiting=%d", mode, waiting), func(b *testing.B) {
				for range b.N {
					if mode == "index" {
						batch, err := s.DueChains(t0, nil, 1024)
						if err != nil || len(batch.Chains) == 0 || !bytes.Equal([]byte(batch.Chains[0].Endpoint), []byte("emb-a")) {
							b.Fatalf("%d chains: %v", len(batch.Chains), err)
						}
					} else if n, err := s.dueChainsFullScan(t0, 1024); err != nil || n != 1000 {
						b.Fatalf("%d due: %v", n, err)
					}
				}
			})
		}
		s.Close()
	}
}

// writerAlongside starts one citizen writing again and again beside the
// maintenance a benchmark times (routing, pruning); the returned func stops
// it and gives how long each write waited. One write goes first, untimed,
// so the record exists.
func writerAlongside(b *testing.B, s *Store, now time.Time) (stop func() []time.Duration) {
	b.Helper()
	key := store.UserKey([]byte("pepper"), "telegram", "1")
	write := func() time.Duration {
		start := time.Now()
		if _, err := s.Process(key, "", now, result(func(st *dialogs.State, _ *dialogs.Result) { st.Lang = "en" })); err != nil {
			b.Error(err)
		}
		return time.Since(start)
	}
	write()
	done := make(chan struct{})
	var waits []time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			waits = append(waits, write())
		}
	})
	return func() []time.Duration { close(done); wg.Wait(); return waits }
}
