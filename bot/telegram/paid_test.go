package telegram

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
)

// TestPaidBroadcastOnTheWire: with paid broadcast enabled, scheduled
// prompts and reminders — and nothing else — carry allow_paid_broadcast
// on the wire to the fake Bot API, and may go at the paid rate, while
// replies keep the free global rate; disabled, no message carries it.
// Rates are checked from below only (messages never closer than the
// limits allow), so a slow machine cannot fail it.
func TestPaidBroadcastOnTheWire(t *testing.T) {
	const free, paid, n = 20.0, 200.0, 20
	for _, tc := range []struct {
		name string
		on   bool
	}{{"disabled", false}, {"enabled", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, api, stop := benchChannel(t, Options{GlobalRate: free, PaidBroadcast: tc.on, PaidRate: paid, PerChat: time.Millisecond, Workers: 8})
			defer stop()
			want := free
			if tc.on {
				want = paid
			}
			if got := c.SendRate(); got != want {
				t.Errorf("SendRate() = %v, want %v", got, want)
			}
			for i := range n {
				c.out.enqueue(int64(5000+i), bot.PriorityReminder, fmt.Sprint("prompt-", i), nil, nil)
				c.out.enqueue(int64(6000+i), bot.PriorityReply, fmt.Sprint("reply-", i), nil, nil)
			}
			c.out.enqueue(7000, bot.PrioritySafety, "sos-0", nil, nil)
			deadline := time.Now().Add(60 * time.Second) // generous: shared, slow machines
			for len(api.Calls("sendMessage")) < 2*n+1 {
				if time.Now().After(deadline) {
					t.Fatalf("only %d of %d messages sent", len(api.Calls("sendMessage")), 2*n+1)
				}
				time.Sleep(5 * time.Millisecond)
			}
			var unpaid, all []fakeapi.Call
			for _, call := range api.Calls("sendMessage") {
				flag, sent := call.Params["allow_paid_broadcast"]
				prompt := strings.HasPrefix(call.Params["text"], "prompt-")
				if wantFlag := tc.on && prompt; sent != wantFlag || (sent && flag != "true") {
					t.Errorf("%q: allow_paid_broadcast %q (sent %v), want sent %v", call.Params["text"], flag, sent, wantFlag)
				}
				if !sent {
					unpaid = append(unpaid, call)
				}
				all = append(all, call)
			}
			keepsRate(t, "every message", all, want)
			keepsRate(t, "messages without paid broadcast", unpaid, free)
		})
	}
}

// keepsRate fails when calls came faster than rate a second overall: n
// calls span at least (n−1)/rate, less a little for request jitter.
func keepsRate(t *testing.T, what string, calls []fakeapi.Call, rate float64) {
	t.Helper()
	if len(calls) < 2 {
		t.Fatalf("%s: %d calls, too few to measure", what, len(calls))
	}
	span := calls[len(calls)-1].At.Sub(calls[0].At)
	least := time.Duration(float64(len(calls)-1)/rate*float64(time.Second)) - 50*time.Millisecond
	if span < least {
		t.Errorf("%s: %d messages in %s, faster than %v a second (at least %s)", what, len(calls), span, rate, least)
	}
}

// TestPaidRateDefaults: the paid rate defaults to and is capped at
// Telegram's 1,000 a second, never slows sending below the free rate, and
// is the free rate when paid broadcast is off.
func TestPaidRateDefaults(t *testing.T) {
	for _, tc := range []struct {
		on         bool
		global     float64
		paid, want float64
	}{
		{false, 0, 0, 30}, {false, 25, 500, 25}, {true, 0, 0, MaxPaidRate}, {true, 30, 100, 100},
		{true, 30, 5000, MaxPaidRate}, {true, 30, 10, 30},
	} {
		c, err := New(Options{Token: "1:x", APIURL: "http://127.0.0.1:1", GlobalRate: tc.global, PaidBroadcast: tc.on, PaidRate: tc.paid}, bot.InboxOf(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.SendRate(); got != tc.want {
			t.Errorf("paid %v, global %v, paid rate %v: SendRate %v, want %v", tc.on, tc.global, tc.paid, got, tc.want)
		}
	}
}
