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

// TestQueuedPromptIsNotQueuedAgain: when the platform's rate holds a
// check-in prompt back for longer than remind_after (a crowded hour at a
// million registrants), the ladder's timer must not queue a second copy of
// the same question every remind_after — the citizen would get it twice,
// and the backlog would grow by one copy of every unsent prompt an hour.
// Once the held prompt is accepted, the ladder goes on from its delivery.
func TestQueuedPromptIsNotQueuedAgain(t *testing.T) {
	r, _ := newRunner(t)
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC) // 09:00 in Phnom Penh
	r.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	delivered := 0
	bot.SetAfterInput(r, func(in dialogs.Input) {
		if in.Kind == dialogs.KindPromptDelivered {
			mu.Lock()
			delivered++
			mu.Unlock()
		}
	})
	const addr = "4242"
	register(t, r, addr)
	key := store.UserKey(testkit.Pepper, "telegram", addr)

	held := &slowPlatform{} // the platform's rate holds everything back for now
	r.Register("telegram", held)
	prompts := func() int {
		t.Helper()
		items, err := r.Store.PendingSends(key)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, it := range items {
			if it.Prompt {
				n++
			}
		}
		return n
	}
	fire := func() {
		t.Helper()
		if _, err := r.FireDue(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	advance(24*time.Hour + time.Minute) // the next day's check-in is due
	fire()
	if n := prompts(); n != 1 {
		t.Fatalf("%d prompts queued at the due time, want 1", n)
	}
	remind := r.Engine.Policy.RemindAfter
	for i := range 5 {
		advance(remind + time.Minute)
		fire()
		if n := prompts(); n != 1 {
			t.Fatalf("%d remind_after periods later: %d copies of the prompt queued, want 1", i+1, n)
		}
	}
	st, _, err := r.Store.Registrant(key)
	if err != nil {
		t.Fatal(err)
	}
	if !st.PromptPending {
		t.Fatal("the ladder stopped waiting for the prompt's delivery")
	}

	// The platform takes it: the delivery is reported and the ladder runs
	// from it, asking again after remind_after as usual.
	held.release()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		d := delivered
		mu.Unlock()
		if d == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prompt delivery reported %d times, want 1", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	advance(remind + time.Minute)
	fire()
	if held.queued() != 1 {
		t.Fatalf("after the delivery and remind_after: %d messages on the platform, want the reminder", held.queued())
	}
}

// slowPlatform is a channel whose send rate holds every response back
// until release, which the platform then accepts.
type slowPlatform struct {
	mu   sync.Mutex
	held []bot.Response
}

func (p *slowPlatform) Send(_ context.Context, _ string, r bot.Response) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = append(p.held, r)
	return nil
}

func (p *slowPlatform) queued() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.held) }

func (p *slowPlatform) release() {
	p.mu.Lock()
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for i, r := range held {
		r.Report(bot.Receipt{SentIDs: []string{fmt.Sprint(i + 1)}})
	}
}
