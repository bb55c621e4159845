package bot_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
)

// BenchmarkRunner measures durable messages per second through the whole
// path — engine, one store transaction, reply handed to the channel — with
// 1, 64 and 1,024 registered users chatting at once.
func BenchmarkRunner(b *testing.B) {
	for _, users := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			r, _ := newRunner(b)
			var wg sync.WaitGroup
			for u := 0; u < users; u++ {
				wg.Add(1)
				go func(u int) {
					defer wg.Done()
					register(b, r, fmt.Sprintf("u%d", u))
				}(u)
			}
			wg.Wait()
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
