package bot_test

import (
	"context"
	"fmt"
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
	bad map[string]bool
}

func (b badTimerStore) ProcessSend(key, inboundID string, now time.Time, to *store.Envelope, h store.Handler) (store.Outcome, error) {
	if b.bad[key] && to != nil && to.Scheduled {
		return store.Outcome{}, fmt.Errorf("%w: registrant record is corrupt (test)", store.ErrBadEvent)
	}
	return b.Store.ProcessSend(key, inboundID, now, to, h)
}

// TestReview16PoisonedBatchStarvesEveryOtherTimer shows a defect of the
// FireBatch change (eace874): timers that fail for good (ErrBadEvent: a
// corrupt record, an engine panic on a state shape) stay the earliest due,
// so they fill every batch; once a whole batch of them sits at the front
// of the due index, DueFirst returns the same keys every pass and no other
// timer ever fires — missed check-ins are never escalated. Before the
// change (FireDue took every due timer) the healthy ones fired on the first
// pass. Here: 12 due, batches of 5, the 5 earliest poisoned; after 20
// passes none of the 7 healthy timers has fired. (With fewer poisoned than
// a batch, each pass still moves batch-minus-poisoned, so the effect is a
// slowdown plus an error log line per pass.)
func TestReview16PoisonedBatchStarvesEveryOtherTimer(t *testing.T) {
	g := newFireRig(t, 12)
	due, err := g.w.DueFirst(g.now, 0)
	if err != nil || len(due) != 12 {
		t.Fatalf("due: %d, %v", len(due), err)
	}
	bad := map[string]bool{}
	for _, k := range due[:5] {
		bad[k] = true
	}
	r := bot.NewRunner(testkit.Engine(t), badTimerStore{Store: g.w, bad: bad}, testkit.Pepper)
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
}
