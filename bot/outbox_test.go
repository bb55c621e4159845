package bot_test

import (
	"context"
	"errors"
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
	bolt "go.etcd.io/bbolt"
)

// channel is a fake platform behind the Sender and Deleter contracts: it
// accepts, holds (the process dies before the platform answers), or fails
// each response as its mode says, and records what it sent and deleted.
type channel struct {
	mu      sync.Mutex
	mode    string // "accept", "hold", "unreachable", "rejected", "later"
	sent    map[string][]string
	held    int
	deleted []string
	next    int
}

func newChannel(mode string) *channel { return &channel{mode: mode, sent: map[string][]string{}} }

func (c *channel) setMode(m string) { c.mu.Lock(); c.mode = m; c.mu.Unlock() }

func (c *channel) Send(_ context.Context, address string, r bot.Response) error {
	var texts []string
	for _, rep := range r.Replies {
		texts = append(texts, rep.Text)
	}
	c.mu.Lock()
	var rc bot.Receipt
	switch c.mode {
	case "hold":
		c.held++
		c.mu.Unlock()
		return nil
	case "accept":
		c.next++
		c.sent[address] = append(c.sent[address], strings.Join(texts, "\n\n"))
		rc.SentIDs = []string{fmt.Sprint(c.next)}
	case "unreachable":
		rc.Err = bot.ErrUnreachable
	case "rejected":
		rc.Err = bot.ErrRejected
	case "later":
		rc.Err = errors.New("platform down")
	}
	c.mu.Unlock()
	r.Report(rc)
	return nil
}

func (c *channel) Delete(_ context.Context, address, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted = append(c.deleted, address+"/"+id)
	return nil
}

func (c *channel) texts(address string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.sent[address]...)
}

func (c *channel) heldCount() int { c.mu.Lock(); defer c.mu.Unlock(); return c.held }

func (c *channel) deletes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.deleted...)
}

func drain(tb testing.TB, r *bot.Runner) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Drain(ctx); err != nil {
		tb.Fatalf("drain: %v", err)
	}
}

func countContaining(texts []string, s string) int {
	n := 0
	for _, t := range texts {
		if strings.Contains(t, s) {
			n++
		}
	}
	return n
}

const alerted = "Your embassy has been alerted"

// crashAfterCommit registers a citizen, then commits an SOS whose reply the
// platform never confirms, and "kills" the process: the store is closed
// with the reply unsent. It returns the data file and the SOS update.
func crashAfterCommit(t *testing.T, address string) (string, bot.Inbound) {
	t.Helper()
	r1 := testkit.Runner(t)
	path := r1.Store.(*boltstore.Store).Path()
	ch1 := newChannel("accept")
	r1.Register("telegram", ch1)
	register(t, r1, address)
	drain(t, r1)
	ch1.setMode("hold")
	sos := bot.Inbound{Channel: "telegram", Address: address, MessageID: "u900", Kind: dialogs.KindText, Text: "sos"}
	if err := r1.Handle(context.Background(), sos); err != nil {
		t.Fatal(err)
	}
	// Telegram redelivers while the first reply is still in flight: it is
	// not handed over twice.
	if err := r1.Handle(context.Background(), sos); err != nil {
		t.Fatal(err)
	}
	if n := ch1.heldCount(); n != 1 {
		t.Fatalf("a reply in flight was handed to the channel %d times", n)
	}
	if got := countContaining(ch1.texts(address), alerted); got != 0 {
		t.Fatalf("the SOS reply was sent before the crash")
	}
	r1.Store.(*boltstore.Store).Close()
	return path, sos
}

// TestUnsentReplyGoesOutAfterRestart: killed between commit and send, the
// reply goes out at the next start — once — and nothing sent before is
// repeated.
func TestUnsentReplyGoesOutAfterRestart(t *testing.T) {
	path, _ := crashAfterCommit(t, "5001")
	r2 := testkit.RunnerOn(t, testkit.StoreAt(t, path))
	ch2 := newChannel("accept")
	r2.Register("telegram", ch2)
	if _, err := r2.Resend(context.Background()); err != nil {
		t.Fatal(err)
	}
	drain(t, r2)
	got := ch2.texts("5001")
	if len(got) != 1 || !strings.Contains(got[0], alerted) {
		t.Fatalf("after restart the citizen got %q, want only the SOS reply", got)
	}
	r2.Store.(*boltstore.Store).Close()

	r3 := testkit.RunnerOn(t, testkit.StoreAt(t, path))
	ch3 := newChannel("accept")
	r3.Register("telegram", ch3)
	if n, err := r3.Resend(context.Background()); err != nil || n != 0 {
		t.Errorf("a reply accepted before the restart was sent again (%d, %v)", n, err)
	}
}

// TestRedeliveryResendsUnsentReply: killed between commit and send, the
// platform redelivers the update; it is a duplicate for the store, but
// its unsent reply goes out — once.
func TestRedeliveryResendsUnsentReply(t *testing.T) {
	path, sos := crashAfterCommit(t, "5002")
	r2 := testkit.RunnerOn(t, testkit.StoreAt(t, path))
	ch2 := newChannel("accept")
	r2.Register("telegram", ch2)
	for range 3 {
		if err := r2.Handle(context.Background(), sos); err != nil {
			t.Fatal(err)
		}
		drain(t, r2)
	}
	got := ch2.texts("5002")
	if len(got) != 1 || !strings.Contains(got[0], alerted) {
		t.Fatalf("redeliveries gave the citizen %q, want the SOS reply once", got)
	}
	out, _ := r2.Store.(*boltstore.Store).Outbox()
	sosEvents := 0
	for _, ev := range out {
		if ev.Type == dialogs.EventSOSRaised {
			sosEvents++
		}
	}
	if sosEvents != 1 {
		t.Errorf("%d sos.raised events, want 1", sosEvents)
	}
}

// TestStaleScheduledPromptsAreDropped: after downtime, scheduled prompts
// older than StaleAfter are dropped; the SOS flow and replies to the
// citizen's own messages go out however old.
func TestStaleScheduledPromptsAreDropped(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	type item struct {
		name              string
		scheduled, urgent bool
		age               time.Duration
		wantSent          bool
	}
	var cases []item
	for _, scheduled := range []bool{false, true} {
		for _, urgent := range []bool{false, true} {
			for _, age := range []time.Duration{time.Hour, 7 * time.Hour, 48 * time.Hour} {
				cases = append(cases, item{fmt.Sprintf("scheduled=%v/urgent=%v/age=%s", scheduled, urgent, age),
					scheduled, urgent, age, !scheduled || urgent || age <= bot.DefaultStaleAfter})
			}
		}
	}
	r1 := testkit.Runner(t)
	now := t0.Add(72 * time.Hour)
	for i, c := range cases {
		_, err := r1.Store.ProcessSend(fmt.Sprintf("k%d", i), "", now.Add(-c.age),
			&store.Envelope{Channel: "telegram", Address: c.name, Scheduled: c.scheduled},
			func(prev dialogs.State, _ bool) dialogs.Result {
				return dialogs.Result{State: prev, Urgent: c.urgent, Replies: []dialogs.Reply{{Text: c.name}}}
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	r1.Now = func() time.Time { return now }
	ch := newChannel("accept")
	r1.Register("telegram", ch)
	if _, err := r1.Resend(context.Background()); err != nil {
		t.Fatal(err)
	}
	drain(t, r1)
	for _, c := range cases {
		if sent := len(ch.texts(c.name)) == 1; sent != c.wantSent {
			t.Errorf("%s: sent %v, want %v", c.name, sent, c.wantSent)
		}
	}
	if left, _ := r1.Store.PendingSends(""); len(left) != 0 {
		t.Errorf("%d rows left in the send queue; dropped and sent rows must both be settled", len(left))
	}
}

// TestReceipts: what a channel reports decides what happens to the row:
// accepted, unreachable (the embassy is told) and rejected settle it; a
// passing failure keeps it for the next resend.
func TestReceipts(t *testing.T) {
	for _, c := range []struct {
		mode        string
		wantLeft    int
		unreachable bool
	}{
		{"accept", 0, false},
		{"unreachable", 0, true},
		{"rejected", 0, false},
		{"later", 1, false},
	} {
		t.Run(c.mode, func(t *testing.T) {
			r := testkit.Runner(t)
			ch := newChannel("accept")
			r.Register("telegram", ch)
			register(t, r, "6001")
			drain(t, r)
			ch.setMode(c.mode)
			if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "6001", Kind: dialogs.KindText, Text: "ok"}); err != nil {
				t.Fatal(err)
			}
			drain(t, r)
			deadline := time.Now().Add(5 * time.Second)
			for {
				left, _ := r.Store.PendingSends("")
				found := false
				out, _ := r.Store.(*boltstore.Store).Outbox()
				for _, ev := range out {
					found = found || ev.Type == dialogs.EventRegistrationUnreachable
				}
				if len(left) == c.wantLeft && found == c.unreachable {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("rows left %d (want %d), embassy told unreachable %v (want %v)", len(left), c.wantLeft, found, c.unreachable)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if c.wantLeft > 0 {
				ch.setMode("accept")
				if _, err := r.Resend(context.Background()); err != nil {
					t.Fatal(err)
				}
				drain(t, r)
				if got := countContaining(ch.texts("6001"), "Check-in received"); got != 1 {
					t.Errorf("the kept reply was sent %d times on resend, want 1", got)
				}
			}
		})
	}
}

// TestPromptDeliveredIsReported: when a response that carries a check-in
// prompt is accepted, the engine hears of it (KindPromptDelivered) for that
// citizen; other responses do not cause it. What the engine then does is
// the engine's business and not asserted here.
func TestPromptDeliveredIsReported(t *testing.T) {
	r := testkit.Runner(t)
	ch := newChannel("accept")
	r.Register("telegram", ch)
	var mu sync.Mutex
	delivered := map[string]int{}
	bot.SetAfterInput(r, func(in dialogs.Input) {
		if in.Kind == dialogs.KindPromptDelivered {
			mu.Lock()
			delivered[in.Key]++
			mu.Unlock()
		}
	})
	for _, key := range []string{"with-prompt", "without-prompt"} {
		prompt := key == "with-prompt"
		_, err := r.Store.ProcessSend(key, "", time.Now(), &store.Envelope{Channel: "telegram", Address: key, Scheduled: true},
			func(prev dialogs.State, _ bool) dialogs.Result {
				return dialogs.Result{State: prev, Prompt: prompt, Replies: []dialogs.Reply{{Text: "Are you safe?"}}}
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Resend(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := delivered["with-prompt"]
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prompt delivery reported %d times, want 1", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	drain(t, r)
	mu.Lock()
	defer mu.Unlock()
	if delivered["without-prompt"] != 0 {
		t.Error("a response without a prompt was reported as a prompt delivery")
	}
}

// TestStoreFailureIsNotPoison: while the store cannot write, an update
// fails as ErrStoreUnavailable (so channels hold it), the runner reports
// unhealthy, and the citizen is told once per outage, in their language,
// to send again. Once the store recovers, the same update is processed and
// the SOS reaches the outbox.
func TestStoreFailureIsNotPoison(t *testing.T) {
	r := testkit.Runner(t)
	ch := newChannel("accept")
	r.Register("telegram", ch)
	register(t, r, "7001")
	drain(t, r)
	before := len(ch.texts("7001"))
	r.Store.(*boltstore.Store).SetWriteFault(errors.New("no space left on device"))
	sos := bot.Inbound{Channel: "telegram", Address: "7001", MessageID: "u700", Kind: dialogs.KindText, Text: "sos", LangHint: "th"}
	for range 3 { // polling retries: told once
		if err := r.Handle(context.Background(), sos); !errors.Is(err, bot.ErrStoreUnavailable) || errors.Is(err, bot.ErrUpdateFailed) {
			t.Fatalf("handle during the outage: %v, want ErrStoreUnavailable", err)
		}
	}
	// Someone unknown writes too: told in the language of their phone.
	stranger := bot.Inbound{Channel: "telegram", Address: "7002", MessageID: "u701", Kind: dialogs.KindText, Text: "hello", LangHint: "th"}
	if err := r.Handle(context.Background(), stranger); !errors.Is(err, bot.ErrStoreUnavailable) {
		t.Fatalf("stranger: %v", err)
	}
	if r.Healthy() == nil {
		t.Error("healthy while the store cannot write")
	}
	got := ch.texts("7001")[before:]
	want := r.Engine.Catalog.Text("en", bot.NotSavedMessage, nil) // the stored language
	if len(got) != 1 || got[0] != want {
		t.Fatalf("during the outage the citizen got %q, want once %q", got, want)
	}
	if s := ch.texts("7002"); len(s) != 1 || s[0] != r.Engine.Catalog.Text("th", bot.NotSavedMessage, nil) {
		t.Errorf("the stranger got %q", s)
	}
	if r.GivenUp() != 0 {
		t.Error("an update was given up because the store could not write")
	}

	r.Store.(*boltstore.Store).SetWriteFault(nil)
	if err := r.Handle(context.Background(), sos); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	drain(t, r)
	if r.Healthy() != nil {
		t.Errorf("still unhealthy after a successful write: %v", r.Healthy())
	}
	if n := countContaining(ch.texts("7001"), alerted); n != 1 {
		t.Errorf("SOS reply sent %d times after recovery", n)
	}
	out, _ := r.Store.(*boltstore.Store).Outbox()
	if len(out) == 0 || out[len(out)-1].Type != dialogs.EventSOSRaised {
		t.Errorf("the SOS did not reach the outbox after recovery")
	}

	// A new outage is a new window: told again.
	r.Store.(*boltstore.Store).SetWriteFault(errors.New("no space left on device"))
	r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "7001", MessageID: "u702", Kind: dialogs.KindText, Text: "ok"})
	if n := countContaining(ch.texts("7001"), want); n != 2 {
		t.Errorf("told %d times over two outages, want 2", n)
	}
	r.Store.(*boltstore.Store).SetWriteFault(nil)
}

// TestDeterministicFailureIsGivenUp: an update that can never be processed
// (here: the registrant's record is unreadable) fails as ErrUpdateFailed,
// is counted, and does not mark the store unhealthy or tell the citizen
// the store failed.
func TestDeterministicFailureIsGivenUp(t *testing.T) {
	r1 := testkit.Runner(t)
	path := r1.Store.(*boltstore.Store).Path()
	r1.Store.(*boltstore.Store).Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	key := store.UserKey(testkit.Pepper, "telegram", "8001")
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("registrants")).Put([]byte(key), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r := testkit.RunnerOn(t, testkit.StoreAt(t, path))
	ch := newChannel("accept")
	r.Register("telegram", ch)
	err = r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "8001", MessageID: "u800", Kind: dialogs.KindText, Text: "ok"})
	if !errors.Is(err, bot.ErrUpdateFailed) || errors.Is(err, bot.ErrStoreUnavailable) {
		t.Fatalf("err %v, want ErrUpdateFailed", err)
	}
	if r.GivenUp() != 1 || r.Healthy() != nil || len(ch.texts("8001")) != 0 {
		t.Errorf("given up %d, healthy %v, citizen got %q", r.GivenUp(), r.Healthy(), ch.texts("8001"))
	}
}

// TestPurgeList: the citizen's message asked to be deleted is deleted at
// once; the bot's sensitive messages when a later result asks for the
// purge; an abandoned one AbandonedAfter after it was sent; none after the
// platform's deadline.
func TestPurgeList(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r := testkit.Runner(t)
	r.Now = clock
	// advance moves the fake clock and nudges the purger, which otherwise
	// sleeps in real time until the row falls due.
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
		if _, err := r.Resend(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ch := newChannel("accept")
	r.Register("telegram", ch)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.RunOutbox(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	commit := func(key string, del string, res dialogs.Result) {
		t.Helper()
		if _, err := r.Store.ProcessSend(key, "", clock(), &store.Envelope{Channel: "telegram", Address: key, DeleteID: del, DeleteBy: clock().Add(bot.PurgeWindow)},
			func(prev dialogs.State, _ bool) dialogs.Result { res.State = prev; return res }); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Resend(context.Background()); err != nil {
			t.Fatal(err)
		}
		drain(t, r)
	}
	waitDeleted := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := strings.Join(ch.deletes(), ",")
			if got == strings.Join(want, ",") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("deleted %q, want %q", got, strings.Join(want, ","))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	sensitive := []dialogs.Reply{{Text: "secret word?", Sensitive: true}}
	// 1: the citizen's typed keyword is deleted at once.
	commit("a", "m-a1", dialogs.Result{DeleteInbound: true, Replies: sensitive}) // bot message 1
	waitDeleted("a/m-a1")
	// 2: the purge at the end of the exchange deletes the bot's prompt.
	commit("a", "", dialogs.Result{PurgeSensitive: true, Replies: []dialogs.Reply{{Text: "done"}}}) // bot message 2
	waitDeleted("a/m-a1", "a/1")
	// 3: an abandoned exchange: nothing asks for the purge; an hour later
	// the prompt goes anyway.
	commit("b", "", dialogs.Result{Replies: sensitive}) // bot message 3
	time.Sleep(50 * time.Millisecond)
	if len(ch.deletes()) != 2 {
		t.Fatalf("an abandoned prompt was deleted early: %q", ch.deletes())
	}
	advance(bot.AbandonedAfter + time.Second)
	waitDeleted("a/m-a1", "a/1", "b/3")
	// 4: past the platform's deadline nothing is attempted, and the row goes.
	commit("c", "", dialogs.Result{Replies: sensitive}) // bot message 4
	advance(bot.PurgeWindow + time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for rows, _ := r.Store.(*boltstore.Store).PurgeRows(); len(rows) > 0; rows, _ = r.Store.(*boltstore.Store).PurgeRows() {
		if time.Now().After(deadline) {
			t.Fatalf("%d purge rows left past the deadline", len(rows))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := ch.deletes(); len(got) != 3 {
		t.Errorf("a message past the platform's deadline was deleted: %q", got)
	}
}
