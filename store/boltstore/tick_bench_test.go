package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// tickDue is how many timers one measured scheduler tick fires.
const tickDue = 1000

// dueTaken is the store with the keys its last Due returned remembered.
type dueTaken struct {
	*boltstore.Store
	keys []string
}

func (d *dueTaken) DueFirst(now time.Time, n int) ([]string, error) {
	keys, err := d.Store.DueFirst(now, n)
	d.keys = keys
	return keys, err
}

// silent is a platform that queues every response and never reports:
// a tick costs its own writes only.
type silent struct{}

func (silent) Send(context.Context, string, bot.Response) error { return nil }

// tickFile returns an encrypted data file holding n registered citizens
// (one real registration's record, copied with its own key, address,
// data key and due time), their due times spread evenly over a day. A
// file of more than 100,000 is kept in the temp dir under a name keyed by
// n, so a second run reuses it (seeding a million takes minutes; each run
// uses up 15 of its 1,000 ticks of spread): remove
// os.TempDir()/checkinbot-tick-* to seed again. A smaller one (10 ticks of
// spread at 10,000) is seeded afresh for every run.
func tickFile(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("checkinbot-tick-%d.db", n))
	if n <= 100_000 {
		path = filepath.Join(b.TempDir(), "tick.db")
	} else if _, err := os.Stat(path); err == nil {
		return path
	}
	// The template: one citizen registered through the engine.
	r := testkit.Runner(b)
	r.Register("telegram", silent{})
	for _, text := range []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
		"24h", "09:00", "blue mango", "blue mango", "1"} {
		if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "7000000000", Kind: dialogs.KindText, Text: text}); err != nil {
			b.Fatal(err)
		}
	}
	tmpl, found, err := r.Store.Registrant(store.UserKey(testkit.Pepper, "telegram", "7000000000"))
	if err != nil || !found || tmpl.DueAt().IsZero() {
		b.Fatalf("template registration: found %v, due %v, %v", found, tmpl.DueAt(), err)
	}
	tmp := path + ".seeding"
	os.Remove(tmp)
	s, err := boltstore.OpenWith(tmp, boltstore.Options{Keyring: testkit.MasterKey})
	if err != nil {
		b.Fatal(err)
	}
	eng := testkit.Engine(b)
	if err := s.IndexWith(eng.Directory.EmbassyFor, "bench"); err != nil {
		b.Fatal(err)
	}
	start := tmpl.DueAt()
	const batch = 20_000
	for from := 0; from < n; from += batch {
		var states []dialogs.State
		for i := from; i < min(from+batch, n); i++ {
			st := tmpl
			st.Address = strconv.Itoa(7_100_000_000 + i)
			st.Key = store.UserKey(testkit.Pepper, "telegram", st.Address)
			st.Timer = start.Add(time.Duration(i) * 24 * time.Hour / time.Duration(n))
			states = append(states, st)
		}
		if err := boltstore.SeedRegistrants(s, states, start.Add(-time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkSchedulerTick: one scheduler tick that finds and fires 1,000
// due timers — Due at the clock, then FireDue through the runner and the
// engine (each timer: its record read, the engine, one write in a shared
// group commit) — on an encrypted file of 10,000 registrants and on one of
// CHECKIN_SCALE registrants (default 100,000; 1,000,000 for the issue's
// target), in the same run and binary, ticks interleaved (small, large,
// small …). Due times are spread over a day, so each tick's 1,000 are the
// next 1,000 in the due index: each a citizen's first prompt (the timers a
// tick re-armed are taken out of the due index between ticks, untimed).
// At most 10 ticks per run at 10,000 (-benchtime 3x -count 3 is 9). Both
// files' pages are read once before the ticks, as a server's memory map is
// after its first day (a fresh start pays a page fault for each page it
// first touches: at 1,000,000 that was most of a tick's time).
// Reported: ms per 1,000 timers on each, their ratio, the page bytes the
// ticks' commits wrote per 1,000 timers, and the B-tree depth of the
// registrants and due buckets.
//
//	CHECKIN_SCALE=1000000 go test ./store/boltstore -run '^$' -bench SchedulerTick -benchtime 3x -count 3
func BenchmarkSchedulerTick(b *testing.B) {
	large := 100_000
	if v, err := strconv.Atoi(os.Getenv("CHECKIN_SCALE")); err == nil && v > 10_000 {
		large = v
	}
	type side struct {
		n     int
		s     *boltstore.Store
		d     *dueTaken
		r     *bot.Runner
		took  time.Duration
		fired int
		alloc int64 // page bytes the ticks' commits allocated
	}
	var sides []*side
	for _, n := range []int{10_000, large} {
		path := tickFile(b, n)
		s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: testkit.MasterKey})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		// As serve opens it: with the registrant index's router, so each
		// timer keeps the embassy's list exact (without it every timer
		// would drop its registrant from the index instead).
		if err := s.IndexWith(testkit.Engine(b).Directory.EmbassyFor, "bench"); err != nil {
			b.Fatal(err)
		}
		if err := boltstore.Warm(s); err != nil {
			b.Fatal(err)
		}
		d := &dueTaken{Store: s}
		r := bot.NewRunner(testkit.Engine(b), d, testkit.Pepper)
		r.Register("telegram", silent{})
		sides = append(sides, &side{n: n, s: s, d: d, r: r})
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		for _, sd := range sides {
			b.StopTimer()
			at, ok := boltstore.NthDue(sd.s, tickDue)
			if !ok {
				b.Fatalf("%d registrants: fewer than %d timers armed", sd.n, tickDue)
			}
			sd.r.Now = func() time.Time { return at }
			before := boltstore.PageAllocBytes(sd.s)
			b.StartTimer()
			start := time.Now()
			fired, err := sd.r.FireDue(ctx)
			sd.took += time.Since(start)
			sd.alloc += boltstore.PageAllocBytes(sd.s) - before
			sd.fired += fired
			if err != nil || fired < tickDue {
				b.Fatalf("%d registrants: fired %d of %d: %v", sd.n, fired, tickDue, err)
			}
			b.StopTimer()
			// The timers just fired were re-armed (all at one instant,
			// some within the next ticks' window): out of the way, so the
			// next tick fires the next 1,000 of the spread — first prompts
			// on both sides, like for like.
			if err := boltstore.Disarm(sd.s, sd.d.keys); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	for _, sd := range sides {
		name := strconv.Itoa(sd.n)
		b.ReportMetric(sd.took.Seconds()*1000/float64(sd.fired)*tickDue, "ms/1000-timers-"+name)
		b.ReportMetric(float64(sd.alloc)/float64(sd.fired)*tickDue/(1<<20), "MB-written/1000-timers-"+name)
		b.ReportMetric(float64(boltstore.Depth(sd.s, "registrants")), "depth-registrants-"+name)
		b.ReportMetric(float64(boltstore.Depth(sd.s, "due")), "depth-due-"+name)
	}
	per := func(sd *side) float64 { return sd.took.Seconds() / float64(sd.fired) }
	b.ReportMetric(per(sides[1])/per(sides[0]), "large/small")
}
