package telegram

import (
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
)

// TestSenderForgetsIdleChats: after thousands of chats were each written
// to once, the pacing map holds about the chats written to recently, not
// all of them — and a chat written to over and over meanwhile still gets
// its messages at least the per-chat interval apart. (With forget not
// called, the map holds every chat and this fails.)
func TestSenderForgetsIdleChats(t *testing.T) {
	const perChat, chats = 50 * time.Millisecond, 5000
	c, api, stop := benchChannel(t, Options{GlobalRate: 1e6, PerChat: perChat, Workers: 16})
	defer stop()
	const busy = int64(42)
	wait := func(n int) {
		deadline := time.Now().Add(60 * time.Second) // generous: shared, slow machines
		for len(api.Calls("sendMessage")) < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d messages sent", len(api.Calls("sendMessage")), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	sent, peak := 0, 0
	for wave := range 5 {
		for i := range chats / 5 {
			c.out.enqueue(int64(1_000_000+wave*chats+i), bot.PriorityReminder, "x", nil, nil)
		}
		for range 3 {
			c.out.enqueue(busy, bot.PriorityReply, "y", nil, nil)
		}
		sent += chats/5 + 3
		wait(sent)
		peak = max(peak, c.out.chats())
		time.Sleep(2 * perChat) // every chat idle longer than the interval
	}
	if peak > 2*minSweep+1 {
		t.Errorf("the pacing map peaked at %d chats after %d distinct chats: idle chats are not forgotten", peak, chats+1)
	}
	if n := c.out.chats(); n >= chats {
		t.Errorf("the pacing map holds %d chats", n)
	}
	// Pacing still holds for the chat written to in every wave.
	var last time.Time
	n := 0
	for _, call := range api.Sent(busy) {
		if n > 0 && call.At.Sub(last) < perChat-5*time.Millisecond {
			t.Errorf("chat %d: two messages %s apart, want at least %s", busy, call.At.Sub(last), perChat)
		}
		last, n = call.At, n+1
	}
	if n != 15 {
		t.Errorf("chat %d got %d messages, want 15", busy, n)
	}
}

// TestForgetKeepsLivePacing: a sweep drops exactly the chats whose pacing
// time has passed, and keeps every chat still paced (by the interval, a
// 429 or a retry) or being sent to, over generated mixes. (With a sweep
// that drops live entries, a chat could get two messages too close: this
// fails naming it.)
func TestForgetKeepsLivePacing(t *testing.T) {
	now := time.Now()
	for _, n := range []int{0, 1, 10, 3000} {
		s := newSender(&Channel{})
		want, until := map[int64]bool{}, map[int64]time.Time{}
		for i := range 3000 + n {
			chat := int64(i)
			at := now.Add(time.Duration(i%7-3) * time.Second) // past, now, and future
			s.chatNext[chat] = at
			if i%11 == 0 {
				s.busy[chat] = true
			}
			want[chat], until[chat] = at.After(now) || s.busy[chat], at
		}
		s.forget(now)
		for chat, keep := range want {
			if _, ok := s.chatNext[chat]; ok != keep {
				t.Fatalf("chat %d (paced until %s, busy %v): kept %v, want %v", chat, until[chat].Sub(now), s.busy[chat], ok, keep)
			}
		}
		if s.sweepAt < 2*len(s.chatNext) || s.sweepAt < minSweep {
			t.Errorf("next sweep at %d with %d chats left", s.sweepAt, len(s.chatNext))
		}
	}
}
