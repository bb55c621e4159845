package bot_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	bolt "go.etcd.io/bbolt"
)

// acceptor is a platform that accepts every response at once, so the
// benchmark pays for the acknowledgements as production does.
type acceptor struct{}

func (acceptor) Send(_ context.Context, _ string, r bot.Response) error {
	r.Report(bot.Receipt{SentIDs: []string{"1"}})
	return nil
}

// BenchmarkRunner measures durable messages per second through the whole
// path — engine, one store transaction with the reply in the send queue,
// the reply handed to the channel and its acceptance acknowledged — with
// 1, 64 and 1,024 registered users chatting at once; queue=off is the same
// without the send queue (the reply handed over and forgotten), to show
// what durability of replies costs; queue=on/sealed is queue=on with the
// data file encrypted (store/seal), to show what encryption at rest costs.
// For the runner against raw bbolt, fairly (realistic sealed records, inbound
// ids, interleaved rounds, one run), use BenchmarkFair (fair_bench_test.go).
func BenchmarkRunner(b *testing.B) {
	for _, users := range []int{1, 64, 1024} {
		for _, v := range []struct {
			name          string
			queue, sealed bool
		}{{"queue=on", true, false}, {"queue=off", false, false}, {"queue=on/sealed", true, true}} {
			queue := v.queue
			b.Run(fmt.Sprintf("users=%d/%s", users, v.name), func(b *testing.B) {
				r, _ := newRunner(b)
				if v.sealed {
					r = testkit.RunnerOn(b, testkit.SealedStore(b))
				}
				r.Register("telegram", acceptor{})
				bot.SetVolatile(r, !queue)
				var wg sync.WaitGroup
				for u := 0; u < users; u++ {
					wg.Add(1)
					go func(u int) {
						defer wg.Done()
						register(b, r, fmt.Sprintf("u%d", u))
					}(u)
				}
				wg.Wait()
				drain(b, r)
				var next atomic.Int64
				b.ResetTimer()
				for u := 0; u < users; u++ {
					wg.Add(1)
					go func(u int) {
						defer wg.Done()
						in := bot.Inbound{Channel: "telegram", Address: fmt.Sprintf("u%d", u), Kind: dialogs.KindText, Text: "ok"}
						for next.Add(1) <= int64(b.N) {
							if err := r.Handle(context.Background(), in); err != nil {
								b.Error(err)
								return
							}
						}
					}(u)
				}
				wg.Wait()
				drain(b, r) // every acknowledgement committed: part of the cost
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkBoltBatch is the raw bbolt ceiling at the same concurrency as
// BenchmarkRunner: writers sharing commits through bbolt's Batch, one
// 512-byte put each.
func BenchmarkBoltBatch(b *testing.B) {
	payload := make([]byte, 512)
	for _, writers := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("users=%d", writers), func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						key := []byte(fmt.Sprintf("%016d", i))
						if err := db.Batch(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(key, payload) }); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}
