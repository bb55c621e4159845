package bot_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// fakeClocks are a wall clock (the runner's Now) and a monotonic clock
// that tests move separately: a downtime or normal running moves both, a
// clock step only the wall.
type fakeClocks struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
}

func (c *fakeClocks) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.wall }

func (c *fakeClocks) Mono() time.Duration { c.mu.Lock(); defer c.mu.Unlock(); return c.mono }

func (c *fakeClocks) run(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall, c.mono = c.wall.Add(d), c.mono+d
}

func (c *fakeClocks) step(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.wall = c.wall.Add(d) }

// confirmAll reports every pending prompt as delivered, standing in for
// the runner (which reports it when the platform accepts the reply).
func confirmAll(t *testing.T, r *bot.Runner, addresses []string) {
	t.Helper()
	for _, a := range addresses {
		if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: a, Kind: dialogs.KindPromptDelivered}); err != nil {
			t.Fatal(err)
		}
	}
}

func eventsOf(t *testing.T, s *boltstore.Store, typ string) []store.Event {
	t.Helper()
	box, err := s.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Event
	for _, e := range box {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestClockStepForward48h: a +48 h wall-clock step escalates nobody — not
// the 20 citizens prompted (delivery confirmed) just before it, not the 20
// whose due time the step jumped over. Each embassy gets one
// service.resumed; the prompts go out; the ladder then runs its normal
// course from after the step, and the first checkin.missed of each says
// escalation 1. (Before the ladder ran from delivered prompts, all 40 were
// escalated in the same second, the first saying escalation 4.)
func TestClockStepForward48h(t *testing.T) {
	r, rec := newRunner(t)
	clk := &fakeClocks{wall: time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)}
	r.Now = clk.Now
	ctx := context.Background()
	var prompted, unprompted []string
	for i := 0; i < 20; i++ {
		prompted = append(prompted, fmt.Sprint(7000+i))
		register(t, r, prompted[i]) // due 03/03 09:00 Phnom Penh (02:00Z)
	}
	sched := bot.StartScheduler(r, clk.Mono)
	clk.run(23 * time.Hour)
	for i := 0; i < 20; i++ {
		unprompted = append(unprompted, fmt.Sprint(8000+i))
		register(t, r, unprompted[i]) // at 03/03 01:00Z: due 04/03 02:00Z
	}
	clk.run(time.Hour)
	counts := map[string]int{}
	for _, a := range prompted {
		counts[a] = rec.count(a)
	}
	sched.Pass(ctx)
	confirmAll(t, r, prompted)
	for _, a := range prompted {
		if rec.count(a) != counts[a]+1 {
			t.Fatalf("%s: the due prompt did not go out", a)
		}
	}
	clk.run(30 * time.Minute)
	sched.Pass(ctx)

	clk.step(48 * time.Hour)
	before := map[string]int{}
	for _, a := range append(prompted, unprompted...) {
		before[a] = rec.count(a)
	}
	sched.Pass(ctx)
	if n := len(eventsOf(t, r.Store.(*boltstore.Store), dialogs.EventCheckinMissed)); n != 0 {
		t.Fatalf("%d checkin.missed at the moment of a +48 h clock step", n)
	}
	resumed := eventsOf(t, r.Store.(*boltstore.Store), dialogs.EventServiceResumed)
	if len(resumed) != len(r.Engine.Directory.Embassies) {
		t.Fatalf("%d service.resumed, want one per embassy (%d)", len(resumed), len(r.Engine.Directory.Embassies))
	}
	if d := resumed[0].Details; d["kind"] != store.GapClockStep || d["seconds"] != float64(48*3600) {
		t.Errorf("service.resumed details %v", d)
	}
	for _, a := range unprompted {
		if rec.count(a) != before[a]+1 {
			t.Errorf("%s: no prompt after the step jumped over the due time", a)
		}
	}
	for _, a := range prompted {
		if rec.count(a) != before[a] {
			t.Errorf("%s: a message at the step, though the reminder's wait restarts", a)
		}
	}
	confirmAll(t, r, unprompted)

	// The ladder runs its normal course from after the step: nothing for
	// three hours, then the first escalation of each, numbered 1.
	for i := 0; i < 35; i++ {
		clk.run(5 * time.Minute)
		sched.Pass(ctx)
		confirmAll(t, r, append(prompted, unprompted...))
	}
	if n := len(eventsOf(t, r.Store.(*boltstore.Store), dialogs.EventCheckinMissed)); n != 0 {
		t.Fatalf("%d checkin.missed within 2h55m of the step", n)
	}
	clk.run(10 * time.Minute)
	sched.Pass(ctx)
	missed := eventsOf(t, r.Store.(*boltstore.Store), dialogs.EventCheckinMissed)
	if len(missed) != 40 {
		t.Fatalf("%d checkin.missed 3h05m after the step, want 40", len(missed))
	}
	for _, e := range missed {
		if e.Details["escalation"] != float64(1) {
			t.Errorf("first checkin.missed says escalation %v", e.Details["escalation"])
		}
	}
	if n := len(eventsOf(t, r.Store.(*boltstore.Store), dialogs.EventServiceResumed)); n != len(r.Engine.Directory.Embassies) {
		t.Errorf("%d service.resumed in all, want one per embassy", n)
	}
}

// TestServiceResumedOncePerEmbassyPerGap: over random histories of normal
// running, small clock jitter, clock steps forward and backward while
// running, restarts after short and long downtimes, and restarts with the
// clock set back, every embassy gets exactly one service.resumed per gap
// beyond the thresholds — of the right kind, stating the gap — and none
// otherwise.
func TestServiceResumedOncePerEmbassyPerGap(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 8))
	for history := 0; history < 12; history++ {
		r, _ := newRunner(t)
		clk := &fakeClocks{wall: time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)}
		r.Now = clk.Now
		register(t, r, "9001") // timers to fire along the way
		ctx := context.Background()
		sched := bot.StartScheduler(r, clk.Mono)
		var want []string // kinds of the gaps, in order
		var wantSeconds []int64
		var script []string
		for op := 0; op < 25; op++ {
			switch k := rng.IntN(6); k {
			case 0: // run for a while, passing at least once a minute
				for i := 0; i < 1+rng.IntN(30); i++ {
					clk.run(time.Duration(1+rng.IntN(60)) * time.Second)
					sched.Pass(ctx)
				}
				script = append(script, "run")
			case 1: // jitter below the threshold
				d := time.Duration(rng.IntN(100)-50) * time.Second
				clk.step(d)
				sched.Pass(ctx)
				script = append(script, "jitter "+d.String())
			case 2: // a step while running
				d := []time.Duration{10 * time.Minute, 4 * time.Hour, 48 * time.Hour}[rng.IntN(3)]
				if rng.IntN(2) == 0 {
					d = -d
				}
				clk.step(d)
				sched.Pass(ctx)
				want, wantSeconds = append(want, store.GapClockStep), append(wantSeconds, int64(d/time.Second))
				script = append(script, "step "+d.String())
			case 3, 4: // a restart after downtime, short or long
				d := []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute, 26 * time.Hour, 72 * time.Hour}[rng.IntN(5)]
				last, _, _ := r.Store.LastAlive()
				clk.run(d)
				sched = bot.StartScheduler(r, clk.Mono)
				if gap := clk.Now().Sub(last); gap > bot.DowntimeThreshold {
					want, wantSeconds = append(want, store.GapDowntime), append(wantSeconds, int64(gap/time.Second))
				}
				sched.Pass(ctx)
				script = append(script, "restart after "+d.String())
			case 5: // a restart with the clock set back
				d := []time.Duration{20 * time.Second, 3 * time.Hour}[rng.IntN(2)]
				last, _, _ := r.Store.LastAlive()
				clk.step(-d)
				sched = bot.StartScheduler(r, clk.Mono)
				if gap := clk.Now().Sub(last); gap < -bot.ClockStepThreshold {
					want, wantSeconds = append(want, store.GapClockStep), append(wantSeconds, int64(gap/time.Second))
				}
				sched.Pass(ctx)
				script = append(script, "restart set back "+d.String())
			}
		}
		resumed := eventsOf(t, r.Store.(*boltstore.Store), dialogs.EventServiceResumed)
		n := len(r.Engine.Directory.Embassies)
		if len(resumed) != n*len(want) {
			t.Fatalf("history %d %v: %d service.resumed, want %d gaps × %d embassies", history, script, len(resumed), len(want), n)
		}
		for i, kind := range want {
			seen := map[string]bool{}
			for _, e := range resumed[i*n : (i+1)*n] {
				seen[e.EmbassyID] = true
				if e.Details["kind"] != kind || e.Registrant != nil {
					t.Errorf("history %d gap %d: %v, want kind %s", history, i, e.Details, kind)
				}
				// A step is measured against the monotonic clock, which
				// moved a little since the last pass; a downtime from the mark.
				if s, _ := e.Details["seconds"].(float64); int64(s) < wantSeconds[i]-1 || int64(s) > wantSeconds[i]+61 {
					t.Errorf("history %d gap %d: seconds %v, want about %d", history, i, e.Details["seconds"], wantSeconds[i])
				}
			}
			if len(seen) != n {
				t.Errorf("history %d gap %d: embassies %v, want each of %d once", history, i, seen, n)
			}
		}
		if n := len(eventsOf(t, r.Store.(*boltstore.Store), dialogs.EventCheckinMissed)); n != 0 {
			t.Errorf("history %d %v: %d checkin.missed, though no prompt was ever confirmed", history, script, n)
		}
	}
}
