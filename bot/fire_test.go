package bot_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
)

// watchedStore is a real store that watches, per registrant, what the
// runner does with it: a Registrant read or a write (ProcessSend) running
// alongside another one of the same registrant is a violation, and each
// registrant's operations are logged in the order they began. Small random
// pauses widen every window a race could slip through. After failAfter
// successful timer writes (when set), every write fails as a full disk
// would, until heal.
type watchedStore struct {
	bot.Store
	jitter bool

	mu         sync.Mutex
	active     map[string]int
	log        map[string][]string
	violations []string

	failAfter atomic.Int64 // 0: never fail
	timerOK   atomic.Int64
	failing   atomic.Bool
}

func newWatchedStore(s bot.Store) *watchedStore {
	return &watchedStore{Store: s, jitter: true, active: map[string]int{}, log: map[string][]string{}}
}

func (w *watchedStore) begin(key, op string) {
	w.mu.Lock()
	w.active[key]++
	if w.active[key] > 1 {
		w.violations = append(w.violations, fmt.Sprintf("%s of %s… alongside another operation of theirs", op, key[:8]))
	}
	w.log[key] = append(w.log[key], op)
	w.mu.Unlock()
	if w.jitter {
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
	}
}

func (w *watchedStore) end(key string) {
	w.mu.Lock()
	w.active[key]--
	w.mu.Unlock()
}

func (w *watchedStore) Registrant(key string) (dialogs.State, bool, error) {
	w.begin(key, "read")
	defer w.end(key)
	return w.Store.Registrant(key)
}

func (w *watchedStore) ProcessSend(key, inboundID string, now time.Time, to *store.Envelope, h store.Handler) (store.Outcome, error) {
	timer := to != nil && to.Scheduled
	op := "input"
	if timer {
		op = "timer"
	}
	w.begin(key, op)
	defer w.end(key)
	if w.failing.Load() {
		return store.Outcome{}, errors.New("disk full")
	}
	out, err := w.Store.ProcessSend(key, inboundID, now, to, h)
	if err == nil && timer {
		if n := w.failAfter.Load(); n > 0 && w.timerOK.Add(1) >= n {
			w.failing.Store(true)
		}
	}
	return out, err
}

// fireRig is a runner over a watched real store with n registered
// citizens whose timers are all due at now.
type fireRig struct {
	r         *bot.Runner
	w         *watchedStore
	addresses []string
	now       time.Time
	timers    map[string]int // user key → timer inputs committed
	mu        sync.Mutex
}

func newFireRig(t *testing.T, n int) *fireRig {
	t.Helper()
	w := newWatchedStore(testkit.Store(t))
	w.jitter = false // registering is not under test
	r := bot.NewRunner(testkit.Engine(t), w, testkit.Pepper)
	r.ReplyFloor = 0
	r.Register("telegram", &recorder{sent: map[string][]dialogs.Reply{}})
	g := &fireRig{r: r, w: w, timers: map[string]int{}}
	var wg sync.WaitGroup
	for i := range n {
		a := fmt.Sprint(880000 + i)
		g.addresses = append(g.addresses, a)
		wg.Go(func() { register(t, r, a) })
	}
	wg.Wait()
	g.now = time.Now().Add(3 * 24 * time.Hour) // every check-in time has passed
	r.Now = func() time.Time { return g.now }
	bot.SetAfterInput(r, func(in dialogs.Input) {
		if in.Kind == dialogs.KindTimer {
			g.mu.Lock()
			g.timers[in.Key]++
			g.mu.Unlock()
		}
	})
	w.mu.Lock()
	w.log, w.violations = map[string][]string{}, nil
	w.mu.Unlock()
	w.jitter = true
	return g
}

// TestFireDueInParallelKeepsEachCitizensOrder is the property of parallel
// timers, over seeds: while FireDue fires every due timer with bounded
// concurrency and citizens keep writing at random, (1) nothing of one
// citizen ever runs alongside anything else of theirs, (2) a timer's read
// of the record is followed by that timer's own write, with no message of
// the citizen in between (the timer never races their inbound message),
// (3) every due timer fired exactly once in the round and none is due
// after it. Run it with -race.
func TestFireDueInParallelKeepsEachCitizensOrder(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			g := newFireRig(t, 24)
			bot.SetFireInFlight(g.r, 8)
			rng := rand.New(rand.NewPCG(seed, 7))
			due, err := g.w.DueFirst(g.now, 0)
			if err != nil || len(due) != len(g.addresses) {
				t.Fatalf("due before the round: %d of %d, %v", len(due), len(g.addresses), err)
			}
			ctx := context.Background()
			var dones []<-chan error
			var fired int
			var fireErr error
			var wg sync.WaitGroup
			wg.Go(func() { fired, fireErr = g.r.FireDue(ctx) })
			for range 60 { // citizens writing during the round, in random order
				a := g.addresses[rng.IntN(len(g.addresses))]
				dones = append(dones, g.r.Submit(ctx, bot.Inbound{Channel: "telegram", Address: a, Kind: dialogs.KindText, Text: "hello"}))
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
			}
			wg.Wait()
			for _, d := range dones {
				if err := <-d; err != nil {
					t.Fatal(err)
				}
			}
			if fireErr != nil || fired != len(due) {
				t.Fatalf("FireDue fired %d of %d: %v", fired, len(due), fireErr)
			}
			g.w.mu.Lock()
			defer g.w.mu.Unlock()
			for _, v := range g.w.violations {
				t.Error(v)
			}
			for key, ops := range g.w.log {
				for i, op := range ops {
					if op == "read" && (i+1 == len(ops) || ops[i+1] != "timer") {
						t.Errorf("%s…: a timer's read was not followed by its own write: %v", key[:8], ops)
					}
				}
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			for _, key := range due {
				if g.timers[key] != 1 {
					t.Errorf("%s…: timer fired %d times in the round, want 1", key[:8], g.timers[key])
				}
			}
			if len(g.timers) != len(due) {
				t.Errorf("%d citizens' timers fired, %d were due", len(g.timers), len(due))
			}
			if left, err := g.w.DueFirst(g.now, 0); err != nil || len(left) != 0 {
				t.Errorf("still due after the round: %d, %v", len(left), err)
			}
		})
	}
}

// TestFireDueStopsAtAnOutageLosingNothing: when the store stops writing
// in the middle of a round, FireDue reports the outage, starts no further
// timer (at most the ones in flight fail), and every timer that did not
// commit is still due; the next round fires exactly those.
func TestFireDueStopsAtAnOutageLosingNothing(t *testing.T) {
	g := newFireRig(t, 30)
	g.w.jitter = false
	bot.SetFireInFlight(g.r, 2)
	due, err := g.w.DueFirst(g.now, 0)
	if err != nil || len(due) != 30 {
		t.Fatalf("due: %d, %v", len(due), err)
	}
	g.w.failAfter.Store(5)
	ctx := context.Background()
	started, err := g.r.FireDue(ctx)
	if !errors.Is(err, bot.ErrStoreUnavailable) {
		t.Fatalf("round during an outage: %v, want ErrStoreUnavailable", err)
	}
	if started >= len(due) || started > 5+2+1 {
		t.Errorf("started %d of %d timers during an outage after 5 commits (2 in flight): it went on", started, len(due))
	}
	left, err := g.w.DueFirst(g.now, 0)
	committed := int(g.w.timerOK.Load())
	if err != nil || len(left) != len(due)-committed {
		t.Fatalf("after the outage %d due, want %d (%d committed): timers lost: %v", len(left), len(due)-committed, committed, err)
	}
	g.w.failing.Store(false)
	g.w.failAfter.Store(0)
	if n, err := g.r.FireDue(ctx); err != nil || n != len(left) {
		t.Fatalf("next round fired %d, want %d: %v", n, len(left), err)
	}
	if rest, err := g.w.DueFirst(g.now, 0); err != nil || len(rest) != 0 {
		t.Errorf("due after the next round: %d, %v", len(rest), err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, key := range due {
		if g.timers[key] != 1 {
			t.Errorf("%s…: timer committed %d times, want 1", key[:8], g.timers[key])
		}
	}
}

// TestFireDueStartsNothingAfterShutdown: a round whose context has ended
// (serve stopping) starts no timer and reports no error; every timer
// stays due for the next start.
func TestFireDueStartsNothingAfterShutdown(t *testing.T) {
	g := newFireRig(t, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := g.r.FireDue(ctx); n != 0 || err != nil {
		t.Fatalf("after shutdown: started %d, %v", n, err)
	}
	if due, err := g.w.DueFirst(g.now, 0); err != nil || len(due) != 5 {
		t.Errorf("due after a cancelled round: %d, %v; want 5", len(due), err)
	}
}

// TestFireDueTakesTheEarliestBatch: with more timers due than one batch,
// FireDue fires the earliest batch only, and the scheduler goes round again
// at once until fewer than a batch were due — so a timer that comes due
// meanwhile (the next step of a missed check-in's ladder) takes its place
// in due order in the next batch instead of waiting for the whole backlog.
// With the batch bound removed, the first round fires all 12; with the
// scheduler sleeping after a full batch, the second pass waits.
func TestFireDueTakesTheEarliestBatch(t *testing.T) {
	g := newFireRig(t, 12)
	bot.SetFireBatch(g.r, 5)
	want, err := g.w.DueFirst(g.now, 0)
	if err != nil || len(want) != 12 {
		t.Fatalf("due: %d, %v; want 12", len(want), err)
	}
	ctx := context.Background()
	sc := bot.StartScheduler(g.r, func() time.Duration { return 0 })
	for pass, wantFired := range []int{5, 10, 12} {
		sleep := sc.Pass(ctx)
		g.mu.Lock()
		fired := len(g.timers)
		for _, k := range want[:wantFired] {
			if g.timers[k] != 1 {
				t.Errorf("pass %d: the %d earliest due should have fired once each; %.8s… fired %d times", pass+1, wantFired, k, g.timers[k])
			}
		}
		g.mu.Unlock()
		if fired != wantFired {
			t.Fatalf("pass %d: %d timers fired in all, want %d (batches of 5, earliest first)", pass+1, fired, wantFired)
		}
		if full := wantFired%5 == 0; full != (sleep == 0) {
			t.Fatalf("pass %d: sleep %v after %d fired: want none after a full batch, some after the last", pass+1, sleep, wantFired)
		}
	}
	if left, err := g.w.DueFirst(g.now, 0); err != nil || len(left) != 0 {
		t.Fatalf("due after the batches: %d, %v", len(left), err)
	}
}
