package dialogs_test

import (
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// BenchmarkEngine measures the pure engine — no store, no I/O — in events
// per second, per kind of event and for a mix. The mix is one of each
// kind, so the rare, expensive /mydata (twenty fields rendered) weighs as
// much as a check-in; real traffic is mostly check-ins and timers.
func BenchmarkEngine(b *testing.B) {
	e := newEngine(b)
	st := registered(b, e)
	now := testNow.Add(time.Hour)
	due := st
	due.Timer, due.NextDue = now, now
	kinds := []struct {
		name  string
		state dialogs.State
		in    dialogs.Input
	}{
		{"checkin", st, textInput("ok")},
		{"duress-in-sentence", st, textInput("I'm fine today, thanks. blue mango")},
		{"unknown-text", st, textInput("what is this?")},
		{"mydata", st, textInput("/mydata")},
		{"due-prompt", due, dialogs.Input{Kind: dialogs.KindTimer, Key: st.Key}},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e.Handle(k.state, k.in, now)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	b.Run("mix", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := kinds[i%len(kinds)]
			e.Handle(k.state, k.in, now)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
