package telegram

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
)

// nopSender accepts every response at once: the template citizen's
// registration goes through it, before the Telegram channel runs.
type nopSender struct{}

func (nopSender) Send(_ context.Context, _ string, r bot.Response) error {
	r.Report(bot.Receipt{SentIDs: []string{"1"}})
	return nil
}

// seedRegistrants registers one citizen in Phnom Penh through the runner,
// then writes n copies of that record, each its own Telegram chat
// (firstChat, firstChat+1 …), straight through the store's Process (the
// registrant index kept as in production), 64 at a time: what n
// registrations leave, without n × 15 messages.
func seedRegistrants(b *testing.B, r *bot.Runner, n int, firstChat int64) {
	b.Helper()
	r.Register(Name, nopSender{})
	tmpl := strconv.FormatInt(firstChat-1, 10)
	for _, text := range []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
		"24h", "09:00", "blue mango", "blue mango", "1"} {
		if err := r.Handle(context.Background(), bot.Inbound{Channel: Name, Address: tmpl, Kind: dialogs.KindText, Text: text}); err != nil {
			b.Fatal(err)
		}
	}
	st, found, err := r.Store.Registrant(store.UserKey(r.Pepper, Name, tmpl))
	if err != nil || !found || st.Status != dialogs.StatusActive {
		b.Fatalf("template citizen: found %v, status %q, %v", found, st.Status, err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				addr := strconv.FormatInt(firstChat+i, 10)
				key := store.UserKey(r.Pepper, Name, addr)
				clone := st
				clone.Key, clone.Address, clone.Handle = key, addr, ""
				if _, err := r.Store.Process(key, "", time.Now(), func(dialogs.State, bool) dialogs.Result {
					return dialogs.Result{State: clone}
				}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRollCallSOS: a roll call of every registrant in Phnom Penh
// (10,000 and 100,000 of them) through the real runner, a real bbolt store
// and this channel, sending to the fake Bot API at Telegram's own pace (30
// messages a second overall, one a second per chat). It reports
//
//   - enqueue-s: how long StartRollCall takes to commit every prompt and
//     hand it to the channel's queue (prompts/s likewise);
//   - sos-enq-p50-ms, sos-enq-p99-ms (over sos-enq-n samples): members
//     sending "sos", five a second, while StartRollCall is still
//     committing prompts (the store busy);
//   - sos-p50-ms, sos-p99-ms, sos-max-ms: while those prompts drain (at
//     30/s a drain of 100,000 takes about an hour), 100 other members
//     send "sos", five a second.
//
// Each latency runs from the update's arrival at the fake Bot API to the
// sendMessage of "Your embassy has been alerted" to that chat. The target
// is p99 < 2 s. The runner keeps its production reply floor (50 ms),
// which every SOS reply waits.
//
// Run one size at a time, with one iteration:
//
//	go test -run '^$' -bench 'BenchmarkRollCallSOS/registrants=100000' -benchtime=1x -timeout 30m ./bot/telegram
func BenchmarkRollCallSOS(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("registrants=%d", n), func(b *testing.B) { rollCallSOS(b, n) })
	}
}

func rollCallSOS(b *testing.B, n int) {
	const firstChat, sosers, sosEvery = int64(7_000_000), 100, 200 * time.Millisecond
	s := testkit.Store(b)
	eng := testkit.Engine(b)
	if err := s.IndexWith(eng.Directory.EmbassyFor, "bench"); err != nil {
		b.Fatal(err)
	}
	r := testkit.RunnerOn(b, s)
	r.ReplyFloor = bot.DefaultReplyFloor
	seedRegistrants(b, r, n, firstChat)

	api := fakeapi.New("1:bench")
	defer api.Close()
	c, err := New(Options{Token: api.Token, APIURL: api.URL, PollTimeout: time.Second, GlobalRate: 30, PerChat: time.Second}, r)
	if err != nil {
		b.Fatal(err)
	}
	r.Register(c.Name(), c)
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	running.Add(2)
	go func() { defer running.Done(); c.Run(ctx) }()
	go func() { defer running.Done(); _ = r.RunOutbox(ctx) }()
	defer func() { cancel(); running.Wait() }()

	embassy := eng.Directory.EmbassyFor("MY", "KH")
	var enqueueMu sync.Mutex
	var enqueue time.Duration
	var lat, latEnq []time.Duration
	for b.Loop() {
		// Phase 1: SOS while StartRollCall commits the prompts (the
		// store busy with 32 prompting workers).
		type result struct {
			lat []time.Duration
			err error
		}
		during := make(chan result, 1)
		go func() {
			l, err := sosWhileDraining(api, firstChat, n, 0, sosers, sosEvery, func() bool { enqueueMu.Lock(); defer enqueueMu.Unlock(); return enqueue > 0 })
			during <- result{l, err}
		}()
		start := time.Now()
		rc, err := r.StartRollCall(ctx, bot.RollCallRequest{EmbassyID: embassy, Country: "KH", City: "Phnom Penh",
			Deadline: time.Now().Add(24 * time.Hour)})
		enqueueMu.Lock()
		enqueue = time.Since(start)
		enqueueMu.Unlock()
		if err != nil || len(rc.Members) != n+1 { // the seeded n and the template
			b.Fatalf("roll call: %d members, want %d: %v", len(rc.Members), n+1, err)
		}
		if q := c.out.queued(); q < n/2 {
			b.Fatalf("only %d prompts queued at the channel after StartRollCall", q)
		}
		d := <-during
		if d.err != nil {
			b.Fatal(d.err)
		}
		latEnq = append(latEnq, d.lat...)
		// Phase 2: SOS while the queued prompts drain.
		l, err := sosWhileDraining(api, firstChat, n, 1, sosers, sosEvery, nil)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, l...)
		if q := c.out.queued(); q == 0 {
			b.Fatal("the roll call's prompts drained before the SOS measurement ended: it did not measure a backlog")
		}
	}
	pct := func(lat []time.Duration, p float64) float64 {
		slices.Sort(lat)
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(enqueue.Seconds(), "enqueue-s")
	b.ReportMetric(float64(n+1)/enqueue.Seconds(), "prompts/s")
	b.ReportMetric(float64(len(latEnq)), "sos-enq-n")
	if len(latEnq) > 0 {
		b.ReportMetric(pct(latEnq, 0.50), "sos-enq-p50-ms")
		b.ReportMetric(pct(latEnq, 0.99), "sos-enq-p99-ms")
	}
	b.ReportMetric(pct(lat, 0.50), "sos-p50-ms")
	b.ReportMetric(pct(lat, 0.99), "sos-p99-ms")
	b.ReportMetric(pct(lat, 1), "sos-max-ms")
	b.ReportMetric(float64(c.out.queued()), "still-queued")
}

// sosWhileDraining has up to sosers members, spread over the roll call
// (phase 0 and 1 pick different ones), send "sos", one every `every`,
// stopping early once stop says so; it returns each one's latency to the
// SOS acknowledgement at the fake Bot API.
func sosWhileDraining(api *fakeapi.Server, firstChat int64, n, phase, sosers int, every time.Duration, stop func() bool) ([]time.Duration, error) {
	type sent struct {
		chat int64
		at   time.Time
	}
	var all []sent
	step := n / sosers
	for i := range sosers {
		if stop != nil && stop() {
			break
		}
		chat := firstChat + int64(i*step+phase*step/2)
		all = append(all, sent{chat, time.Now()})
		api.Text(fakeapi.User{ID: chat, Lang: "en"}, "sos")
		time.Sleep(every)
	}
	out := make([]time.Duration, len(all))
	deadline := time.Now().Add(2 * time.Minute)
	for i, s := range all {
		for {
			if at, ok := alertedAt(api, s.chat); ok {
				out[i] = at.Sub(s.at)
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("chat %d: no SOS acknowledgement within two minutes", s.chat)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return out, nil
}

// alertedAt is when the fake Bot API accepted the SOS acknowledgement to chat.
func alertedAt(api *fakeapi.Server, chat int64) (time.Time, bool) {
	for _, c := range api.Sent(chat) {
		if strings.Contains(c.Params["text"], "Your embassy has been alerted") {
			return c.At, true
		}
	}
	return time.Time{}, false
}
