package dialogs_test

import (
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// BenchmarkEngine measures the pure engine: events per second over a mix of
// what registered citizens send (check-ins, duress inside a sentence,
// unknown text, menus). No store, no I/O.
func BenchmarkEngine(b *testing.B) {
	e := newEngine(b)
	st := registered(b, e)
	inputs := []dialogs.Input{
		textInput("ok"),
		textInput("I'm fine today, thanks. blue mango"),
		textInput("what is this?"),
		textInput("/mydata"),
		textInput("safe"),
		{Kind: dialogs.KindTimer, Key: st.Key},
	}
	now := testNow.Add(time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e.Handle(st, inputs[i%len(inputs)], now)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
