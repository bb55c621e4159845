package boltstore

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The raw bbolt ceilings on this disk: what any store built on bbolt can
// reach at best, for minimal writes. The runner's headline comparison is
// bot's BenchmarkFair (same binary, same run, realistic sealed records,
// inbound ids; docs/benchmarks.md), not these.

func openRaw(b *testing.B) *bolt.DB {
	b.Helper()
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
	return db
}

var payload = make([]byte, 512)

// BenchmarkBoltUpdate: one durable single-put transaction at a time.
func BenchmarkBoltUpdate(b *testing.B) {
	db := openRaw(b)
	for i := 0; b.Loop(); i++ {
		db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(u64(uint64(i)), payload) })
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkBoltBatch64: 64 concurrent writers sharing commits via Batch.
func BenchmarkBoltBatch64(b *testing.B) {
	db := openRaw(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				db.Batch(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(u64(uint64(i)), payload) })
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkProcess: the store's event transaction (registrant, due index,
// audit) with 64 concurrent registrants, without the engine.
func BenchmarkProcess64(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	process64(b, func(key string, i int64) {
		s.Process(key, "", t0, func(prev dialogs.State, _ bool) dialogs.Result {
			prev.Timer = t0.Add(time.Duration(i) * time.Second)
			return dialogs.Result{State: prev, Audit: []string{"checkin"}}
		})
	})
}

// process64 runs b.N events from 64 concurrent registrants (user-0 …
// user-63), event i by do(key, i), and reports events/s: the store
// benchmarks' one load shape.
func process64(b *testing.B, do func(key string, i int64)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < 64; w++ {
		key := fmt.Sprintf("user-%d", w)
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				do(key, i)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkProcessSend64: BenchmarkProcess64 with a reply written to the
// send queue in the same transaction and acknowledged afterwards (acks in
// batches of 64, as the runner's flusher groups them): what durable
// replies cost the store. Same run as BenchmarkProcess64 to compare.
func BenchmarkProcessSend64(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	acks := make(chan store.SendAck, 4096)
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		var batch []store.SendAck
		for a := range acks {
			batch = append(batch, a)
			if len(batch) == 64 {
				s.AckSends(batch)
				batch = batch[:0]
			}
		}
		s.AckSends(batch)
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			key := fmt.Sprintf("user-%d", w)
			env := &store.Envelope{Channel: "telegram", Address: key}
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				out, _ := s.ProcessSend(key, "", t0, env, func(prev dialogs.State, _ bool) dialogs.Result {
					prev.Timer = t0.Add(time.Duration(i) * time.Second)
					return dialogs.Result{State: prev, Audit: []string{"checkin"},
						Replies: []dialogs.Reply{{Text: "Check-in received. Your next check-in is at 09:00, 03/03."}}}
				})
				for _, it := range out.Sends {
					acks <- store.SendAck{Seq: it.Seq, UserKey: it.UserKey}
				}
			}
		}(w)
	}
	wg.Wait()
	close(acks)
	<-flushed
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
