package bot_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// recorder is a channel that remembers what was sent to whom.
type recorder struct {
	mu   sync.Mutex
	sent map[string][]dialogs.Reply
}

func (r *recorder) Send(_ context.Context, address string, resp bot.Response) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent[address] = append(r.sent[address], resp.Replies...)
	return nil
}

func (r *recorder) count(address string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent[address])
}

func newRunner(tb testing.TB) (*bot.Runner, *recorder) {
	tb.Helper()
	r := testkit.Runner(tb) // no reply floor: behaviour and raw throughput; pacing has its own test
	rec := &recorder{sent: map[string][]dialogs.Reply{}}
	r.Register("telegram", rec)
	return r, rec
}

var registration = []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
	"24h", "09:00", "blue mango", "blue mango", "1"}

func register(tb testing.TB, r *bot.Runner, address string) {
	tb.Helper()
	for _, text := range registration {
		if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: address,
			Kind: dialogs.KindText, Text: text}); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestRedeliveredUpdateIsProcessedOnce(t *testing.T) {
	r, rec := newRunner(t)
	register(t, r, "1001")
	before := rec.count("1001")
	in := bot.Inbound{Channel: "telegram", Address: "1001", MessageID: "update-77", Kind: dialogs.KindText, Text: "sos"}
	var events []store.Event
	r.OnEvents = func(evs []store.Event) { events = append(events, evs...) }
	for i := 0; i < 3; i++ {
		if err := r.Handle(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.count("1001") - before; got != 2 { // "alerted" + the location question
		t.Errorf("replies to a thrice-delivered SOS: %d, want 2", got)
	}
	if len(events) != 1 || events[0].Type != dialogs.EventSOSRaised {
		t.Errorf("events %+v", events)
	}
}

// TestEventsOfOneUserAreSerialised: many concurrent messages of one user
// and of others lose no update (run with -race).
func TestEventsOfOneUserAreSerialised(t *testing.T) {
	r, _ := newRunner(t)
	users := []string{"2001", "2002", "2003", "2004"}
	for _, u := range users {
		register(t, r, u)
	}
	const perUser = 25
	var wg sync.WaitGroup
	for _, u := range users {
		for i := 0; i < perUser; i++ {
			wg.Add(1)
			go func(u string, i int) {
				defer wg.Done()
				if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: u,
					MessageID: fmt.Sprintf("%s-%d", u, i), Kind: dialogs.KindText, Text: "ok"}); err != nil {
					t.Error(err)
				}
			}(u, i)
		}
	}
	wg.Wait()
	entries, err := r.Store.(*boltstore.Store).Audit()
	if err != nil {
		t.Fatal(err)
	}
	checkins := map[string]int{}
	for _, e := range entries {
		if e.Action == store.AuditRegistrantUpdated && e.Reason == "checkin" {
			checkins[e.Subject]++
		}
	}
	if len(checkins) != len(users) {
		t.Fatalf("check-ins for %d users, want %d", len(checkins), len(users))
	}
	for subject, n := range checkins {
		if n != perUser {
			t.Errorf("%s: %d check-ins recorded, want %d", subject, n, perUser)
		}
	}
	if _, err := r.Store.(*boltstore.Store).VerifyAudit(); err != nil {
		t.Error(err)
	}
}

// TestSchedulerPromptsWhenDue: the scheduler loop wakes for the due time
// and the prompt reaches the citizen through the channel.
func TestSchedulerPromptsWhenDue(t *testing.T) {
	r, rec := newRunner(t)
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)
	r.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	register(t, r, "3001")
	before := rec.count("3001")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.RunScheduler(ctx); close(done) }()
	mu.Lock()
	now = now.Add(25 * time.Hour) // past the 09:00 check-in of the next day
	mu.Unlock()
	// Any commit wakes the scheduler; a message from another user does.
	r.Handle(ctx, bot.Inbound{Channel: "telegram", Address: "3999", Kind: dialogs.KindText, Text: "hi"})
	deadline := time.After(10 * time.Second)
	for rec.count("3001") == before {
		select {
		case <-deadline:
			t.Fatal("the due prompt never arrived")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	<-done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := rec.sent["3001"][before].Text; !strings.Contains(got, "Are you safe?") {
		t.Errorf("prompt %q", got)
	}
}

// TestRepliesArePaced: with a reply floor, no reply to a message leaves
// before it, duress check-in or not.
func TestRepliesArePaced(t *testing.T) {
	r, rec := newRunner(t)
	register(t, r, "4001")
	r.ReplyFloor = 40 * time.Millisecond
	for _, text := range []string{"ok", "fine, blue mango", "what?"} {
		before := rec.count("4001")
		start := time.Now()
		if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "4001", Kind: dialogs.KindText, Text: text}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < r.ReplyFloor || rec.count("4001") == before {
			t.Errorf("%q: reply after %s, floor %s", text, took, r.ReplyFloor)
		}
	}
}

func TestLanguageForPhone(t *testing.T) {
	for phone, want := range map[string]string{
		"+60 12 345 6789": "ms", "+6281234567890": "id", "+63 917 123 4567": "fil", "+66812345678": "th",
		"+84 912 345 678": "vi", "+95 9 123 456 789": "my", "+855 12 345 678": "km", "+856 20 5555 5555": "lo",
		"+86 138 0013 8000": "zh", "+65 8123 4567": "en", "+44 20 7946 0000": "en", "0060123456789": "ms", "": "en",
	} {
		if got := bot.LanguageForPhone(phone); got != want {
			t.Errorf("LanguageForPhone(%q) = %q, want %q", phone, got, want)
		}
	}
}

// TestNoRecordForSomeoneUnknown: a report that is not from a citizen (here
// an unreachable notice; delivered prompts and timers take the same path)
// about someone with no record — erased meanwhile — leaves no record.
func TestNoRecordForSomeoneUnknown(t *testing.T) {
	r := testkit.Runner(t)
	key := store.UserKey(testkit.Pepper, "telegram", "9999")
	if err := r.Unreachable(context.Background(), "telegram", "9999"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := r.Store.Registrant(key); found {
		t.Error("an unreachable notice about someone unknown stored a record")
	}
}
