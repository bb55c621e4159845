package bot_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
)

// badTimerStore fails the timer writes of bad keys with store.ErrBadEvent,
// as a corrupt record or an engine panic on that registrant does (it will
// fail again however often it is retried, and stays due).
type badTimerStore struct {
	bot.Store
	bad   map[string]bool
	mu    *sync.Mutex
	tries map[string]int
}

func (b badTimerStore) ProcessSend(key, inboundID string, now time.Time, to *store.Envelope, h store.Handler) (store.Outcome, error) {
	if b.bad[key] && to != nil && to.Scheduled {
		b.mu.Lock()
		b.tries[key]++
		b.mu.Unlock()
		return store.Outcome{}, fmt.Errorf("%w: registrant record is corrupt (test)", store.ErrBadEvent)
	}
	return b.Store.ProcessSend(key, inboundID, now, to, h)
}

// TestFireDueStepsOverTimersThatFailForGood (found by review of the
// FireBatch change): timers that fail for good (ErrBadEvent: a corrupt
// record, an engine panic on a state shape) stay the earliest due, so they
// filled every batch; once a whole batch of them sat at the front of the
// due index, DueFirst returned the same keys every pass and no other timer
// ever fired — missed check-ins never escalated. Now a timer that failed
// so is stepped over until its retry time (stuckTimerRetry). Here: 12 due,
// batches of 5, the 5 earliest poisoned; after 20 passes all 7 healthy
// timers have fired. Without the stepping over, none does.
func TestFireDueStepsOverTimersThatFailForGood(t *testing.T) {
	g := newFireRig(t, 12)
	due, err := g.w.DueFirst(g.now, 0)
	if err != nil || len(due) != 12 {
		t.Fatalf("due: %d, %v", len(due), err)
	}
	bad := map[string]bool{}
	for _, k := range due[:5] {
		bad[k] = true
	}
	bs := badTimerStore{Store: g.w, bad: bad, mu: &sync.Mutex{}, tries: map[string]int{}}
	r := bot.NewRunner(testkit.Engine(t), bs, testkit.Pepper)
	r.ReplyFloor = 0
	r.Register("telegram", &recorder{sent: map[string][]dialogs.Reply{}})
	r.Now = g.r.Now
	bot.SetFireBatch(r, 5)
	fired := map[string]bool{}
	bot.SetAfterInput(r, func(in dialogs.Input) {
		if in.Kind == dialogs.KindTimer {
			g.mu.Lock()
			fired[in.Key] = true
			g.mu.Unlock()
		}
	})
	sc := bot.StartScheduler(r, func() time.Duration { return 0 })
	for range 20 {
		sc.Pass(context.Background())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(fired) != 7 {
		t.Fatalf("after 20 scheduler passes %d of the 7 healthy due timers fired: a batch of permanently failing timers at the front of the due index starves all the others", len(fired))
	}
	// Stepped over, not forgotten: each stuck timer was tried once in the
	// 20 passes, and is tried again once its retry time has come.
	for k := range bad {
		if bs.tries[k] != 1 {
			t.Fatalf("a stuck timer was tried %d times within its retry time, want 1", bs.tries[k])
		}
	}
	g.now = g.now.Add(2 * time.Minute)
	g.mu.Unlock()
	sc.Pass(context.Background())
	g.mu.Lock()
	for k := range bad {
		if bs.tries[k] != 2 {
			t.Fatalf("after its retry time a stuck timer was tried %d times in all, want 2", bs.tries[k])
		}
	}
}
