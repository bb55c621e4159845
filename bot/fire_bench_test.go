package bot_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/internal/testkit"
)

// queued is a platform that queues every response and never reports it
// accepted: a round of timers costs its own writes only (no
// acknowledgements, no delivery reports riding along).
type queued struct{}

func (queued) Send(context.Context, string, bot.Response) error { return nil }

// BenchmarkFireDue: timers fired per second by one FireDue round with
// every registrant's timer due, one at a time (in-flight=1, what FireDue
// did before) against in parallel (in-flight DefaultFireInFlight, 64), same
// binary, same run: two identical encrypted stores with the same
// registrants, rounds interleaved (sequential, parallel, sequential …) on
// the same clock, so both sides fire the same ladder steps.
//
//	go test ./bot -run '^$' -bench FireDue -benchtime 3x -count 3
func BenchmarkFireDue(b *testing.B) {
	const users = 1000
	type side struct {
		name     string
		inFlight int
		r        *bot.Runner
		fired    int
		took     time.Duration
	}
	sides := []*side{{name: "sequential", inFlight: 1}, {name: "parallel", inFlight: bot.DefaultFireInFlight}}
	now := time.Now()
	for _, s := range sides {
		s.r = testkit.RunnerOn(b, testkit.SealedStore(b))
		s.r.Register("telegram", queued{})
		bot.SetFireInFlight(s.r, s.inFlight)
		var wg sync.WaitGroup
		for u := range users {
			wg.Go(func() { register(b, s.r, fmt.Sprintf("t%d", u)) })
		}
		wg.Wait()
		s.r.Now = func() time.Time { return now }
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		now = now.Add(24 * time.Hour) // every timer due again, on both sides
		for _, s := range sides {
			start := time.Now()
			n, err := s.r.FireDue(ctx)
			s.took += time.Since(start)
			s.fired += n
			if err != nil || n < users && i == 0 {
				b.Fatalf("%s: fired %d of %d: %v", s.name, n, users, err)
			}
		}
	}
	b.StopTimer()
	rate := map[string]float64{}
	for _, s := range sides {
		rate[s.name] = float64(s.fired) / s.took.Seconds()
		b.ReportMetric(rate[s.name], s.name+"-timers/s")
	}
	b.ReportMetric(rate["parallel"]/rate["sequential"], "parallel/sequential")
}
