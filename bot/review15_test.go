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

// acceptingChannel is a channel whose platform accepts every response at once
// (Done from another goroutine, as a real channel reports), remembering
// every response it was handed per address.
type acceptingChannel struct {
	mu   sync.Mutex
	sent map[string][][]dialogs.Reply
}

func (a *acceptingChannel) Send(_ context.Context, address string, resp bot.Response) error {
	a.mu.Lock()
	a.sent[address] = append(a.sent[address], resp.Replies)
	n := len(a.sent[address])
	a.mu.Unlock()
	go resp.Report(bot.Receipt{SentIDs: []string{fmt.Sprintf("%s-%d", address, n)}})
	return nil
}

func (a *acceptingChannel) responses(address string) [][]dialogs.Reply {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]dialogs.Reply(nil), a.sent[address]...)
}

// TestReplyNotSentTwiceWhenResendRunsBeforeDispatch: between an event's
// commit and the runner handing its reply to the channel (the reply floor
// is paced in that window), the outbox's periodic Resend may read the
// fresh row, send it, and commit its acknowledgement — which releases the
// row from flight. The runner's own dispatch of the row it just wrote
// ("fresh", so not checked against the queue) must then not send it a
// second time: a citizen would see every such reply twice.
func TestReplyNotSentTwiceWhenResendRunsBeforeDispatch(t *testing.T) {
	r := testkit.Runner(t)
	ch := &acceptingChannel{sent: map[string][][]dialogs.Reply{}}
	r.Register("telegram", ch)
	const addr = "5151"
	for _, text := range registration {
		if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: addr, Kind: dialogs.KindText, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	key := store.UserKey(testkit.Pepper, "telegram", addr)
	settled := func() bool {
		items, err := r.Store.PendingSends(key)
		if err != nil {
			t.Fatal(err)
		}
		return len(items) == 0
	}
	waitSettled := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !settled(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the citizen's rows were never acknowledged", what)
			}
		}
	}
	waitSettled("registration")

	resent := 0
	bot.SetAfterInput(r, func(in dialogs.Input) {
		if in.Kind != dialogs.KindText || in.Text != "ok" {
			return
		}
		// The check-in is committed; its reply not yet handed over. The
		// minute's Resend comes now, and its acknowledgement commits.
		n, err := r.Resend(context.Background())
		if err != nil {
			t.Error(err)
		}
		resent = n
		waitSettled("resend")
	})
	before := len(ch.responses(addr))
	if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: addr, MessageID: "m-ok", Kind: dialogs.KindText, Text: "ok"}); err != nil {
		t.Fatal(err)
	}
	bot.SetAfterInput(r, nil)
	waitSettled("check-in")
	got := ch.responses(addr)[before:]
	if resent != 1 {
		t.Fatalf("Resend handed over %d rows, want the check-in's reply (the window was not reached)", resent)
	}
	if len(got) != 1 {
		t.Errorf("the check-in's reply was handed to the channel %d times, want once: %v", len(got), got)
	}
}
