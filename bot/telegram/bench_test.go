package telegram

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/internal/testkit"
)

func benchChannel(b testing.TB, opt Options) (*Channel, *fakeapi.Server, func()) {
	api := fakeapi.New("1:bench")
	r := testkit.Runner(b)
	r.ReplyFloor = bot.DefaultReplyFloor // as in production
	opt.Token, opt.APIURL, opt.PollTimeout = api.Token, api.URL, time.Second
	c, err := New(opt, r)
	if err != nil {
		b.Fatal(err)
	}
	r.Register(c.Name(), c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	return c, api, func() { cancel(); <-done; api.Close() }
}

// BenchmarkThousandUsers: 1,000 citizens writing at once through polling,
// the runner (with its 50 ms reply floor) and the store; messages handled
// per second end to end, measured at the fake Bot API. The send limits are
// lifted here to measure the pipeline; BenchmarkLimits measures them.
func BenchmarkThousandUsers(b *testing.B) {
	_, api, stop := benchChannel(b, Options{GlobalRate: 1e6, PerChat: time.Microsecond, Workers: 32})
	defer stop()
	const users, each = 1000, 3
	for b.Loop() {
		start := time.Now()
		before := len(api.Calls("sendMessage"))
		for round := 0; round < each; round++ {
			for u := 0; u < users; u++ {
				api.Text(fakeapi.User{ID: int64(100000 + u), Lang: "en"}, "hello")
			}
		}
		for len(api.Calls("sendMessage"))-before < users*each {
			time.Sleep(5 * time.Millisecond)
		}
		b.ReportMetric(float64(users*each)/time.Since(start).Seconds(), "msgs/s")
	}
}

// BenchmarkLimits: chats each owed several messages, at 30 a second
// overall and one a second per chat; from the fake server's timestamps, the
// most messages in any one-second window and the shortest gap between two
// messages to one chat. With 200 chats the global rate binds; with 20 the
// per-chat interval does (30/s would give each chat 1.5/s).
func BenchmarkLimits(b *testing.B) {
	for _, tc := range []struct {
		name        string
		chats, each int
	}{{"global-binds", 200, 5}, {"per-chat-binds", 20, 15}} {
		b.Run(tc.name, func(b *testing.B) {
			c, api, stop := benchChannel(b, Options{GlobalRate: 30, PerChat: time.Second})
			defer stop()
			for b.Loop() {
				for i := 0; i < tc.each; i++ {
					for chat := 0; chat < tc.chats; chat++ {
						c.out.enqueue(int64(500000+chat), bot.PriorityReply, "x", nil, nil)
					}
				}
				time.Sleep(10 * time.Second) // measure ten seconds of sending
				calls := api.Calls("sendMessage")
				var at []time.Time
				last := map[string]time.Time{}
				minGap := time.Hour
				for _, call := range calls {
					at = append(at, call.At)
					if prev, ok := last[call.Params["chat_id"]]; ok {
						minGap = min(minGap, call.At.Sub(prev))
					}
					last[call.Params["chat_id"]] = call.At
				}
				maxWindow := 0
				for i := range at {
					j := i
					for j < len(at) && at[j].Sub(at[i]) < time.Second {
						j++
					}
					maxWindow = max(maxWindow, j-i)
				}
				b.ReportMetric(float64(len(calls))/10, "sent/s")
				b.ReportMetric(float64(maxWindow), "max-in-1s-window")
				b.ReportMetric(minGap.Seconds(), "min-per-chat-gap-s")
			}
		})
	}
}

// BenchmarkSafetyUnderReminderFlood: 100,000 reminders queued for 100,000
// chats at 30 messages a second; 200 SOS replies enqueued meanwhile, one
// every 50 ms. Reports the p50 and p99 wait of the SOS replies (enqueue to
// the fake server receiving them).
func BenchmarkSafetyUnderReminderFlood(b *testing.B) {
	c, api, stop := benchChannel(b, Options{GlobalRate: 30, PerChat: time.Second})
	defer stop()
	for b.Loop() {
		for i := 0; i < 100000; i++ {
			c.out.enqueue(int64(1000000+i), bot.PriorityReminder, "reminder", nil, nil)
		}
		enqueued := map[string]time.Time{}
		for i := 0; i < 200; i++ {
			chat := int64(9000000 + i)
			enqueued[strconv.FormatInt(chat, 10)] = time.Now()
			c.out.enqueue(chat, bot.PrioritySafety, fmt.Sprintf("sos %d", i), nil, nil)
			time.Sleep(50 * time.Millisecond)
		}
		var waits []time.Duration
		deadline := time.Now().Add(30 * time.Second)
		for len(waits) < 200 && time.Now().Before(deadline) {
			waits = waits[:0]
			for _, call := range api.Calls("sendMessage") {
				if at, ok := enqueued[call.Params["chat_id"]]; ok {
					waits = append(waits, call.At.Sub(at))
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(waits) < 200 {
			b.Fatalf("only %d SOS replies sent", len(waits))
		}
		slices.Sort(waits)
		b.ReportMetric(float64(waits[100].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(waits[197].Milliseconds()), "p99-ms")
		b.ReportMetric(float64(c.out.queued()), "reminders-still-queued")
	}
}
