package webhook_test

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/webhook"
)

// timedSender records when each reply was handed to the channel.
type timedSender struct {
	mu   sync.Mutex
	sent map[string]time.Time
}

func (s *timedSender) Send(_ context.Context, address string, _ bot.Response) error {
	s.mu.Lock()
	s.sent[address] = time.Now()
	s.mu.Unlock()
	return nil
}

// rig is the whole path: runner and store, a deliverer, and a sink on
// loopback receiving real signed HTTP.
type rig struct {
	runner    *bot.Runner
	sender    *timedSender
	mu        sync.Mutex
	arrived   map[string]time.Time // event id → when the sink accepted it
	byAddress map[string]string    // last duress event id per address
	cancel    func()
}

func newRig(b *testing.B, users int, floor time.Duration) *rig {
	cfg := config.Default()
	key := make([]byte, 32)
	rand.Read(key)
	r := &rig{sender: &timedSender{sent: map[string]time.Time{}}, arrived: map[string]time.Time{}, byAddress: map[string]string{}}
	sink := &webhook.Sink{Secrets: [][]byte{key}, OnEvent: func(ev webhook.Event) {
		r.mu.Lock()
		r.arrived[ev.ID] = time.Now()
		r.mu.Unlock()
	}}
	srv := httptest.NewServer(sink)
	var eps []webhook.Endpoint
	for _, e := range cfg.Embassies {
		eps = append(eps, webhook.Endpoint{ID: e.ID, URL: srv.URL, Secrets: [][]byte{key}, Embassy: e.ID})
	}
	policy := webhook.DefaultPolicy()
	policy.HeartbeatEvery = 0
	r.runner = testkit.Runner(b)
	r.runner.ReplyFloor = floor
	s := r.runner.Store.(*boltstore.Store)
	d := &webhook.Deliverer{Store: s, Endpoints: eps, Policy: policy}
	r.runner.Register("telegram", r.sender)
	r.runner.OnEvents = func(evs []store.Event) {
		r.mu.Lock()
		for _, ev := range evs {
			if ev.Type == dialogs.EventDuressTriggered {
				r.byAddress[ev.Registrant.Address] = ev.ID
			}
		}
		r.mu.Unlock()
		if os.Getenv("NO_NUDGE") == "" {
			d.Nudge()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	r.cancel = func() { cancel(); <-done; srv.Close() }
	b.Cleanup(r.cancel)
	var wg sync.WaitGroup
	for u := 0; u < users; u++ {
		wg.Add(1)
		go func(u int) {
			defer wg.Done()
			for _, text := range []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip",
				"skip", "24h", "09:00", "blue mango", "blue mango", "1"} {
				r.say(b, fmt.Sprintf("u%d", u), text)
			}
		}(u)
	}
	wg.Wait()
	return r
}

func (r *rig) say(b *testing.B, address, text string) time.Duration {
	start := time.Now()
	if err := r.runner.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: address, Kind: dialogs.KindText, Text: text}); err != nil {
		b.Fatal(err)
	}
	r.sender.mu.Lock()
	defer r.sender.mu.Unlock()
	return r.sender.sent[address].Sub(start)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// BenchmarkDuressToWebhook: from a duress message arriving at the runner to
// the signed webhook accepted by a sink on loopback, over 1,000 events.
func BenchmarkDuressToWebhook(b *testing.B) {
	r := newRig(b, 16, 0) // latency to the embassy, not to the phone
	const events = 1000
	for b.Loop() {
		var lat []time.Duration
		for i := 0; i < events; i++ {
			addr := fmt.Sprintf("u%d", i%16)
			start := time.Now()
			r.say(b, addr, "I'm fine, really. Blue mango")
			r.mu.Lock()
			id := r.byAddress[addr]
			r.mu.Unlock()
			for {
				r.mu.Lock()
				at, ok := r.arrived[id]
				r.mu.Unlock()
				if ok {
					lat = append(lat, at.Sub(start))
					break
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
		slices.Sort(lat)
		b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkCovertTiming: reply latency of duress check-ins against normal
// check-ins, 10,000 of each from 100 citizens at once, interleaved at
// random so drift hits both alike, with the production reply floor. Reports the ratio of medians and the two-sample
// Kolmogorov–Smirnov statistic D (0: identical distributions).
func BenchmarkCovertTiming(b *testing.B) {
	const users, each = 100, 10000
	r := newRig(b, users, bot.DefaultReplyFloor)
	for b.Loop() {
		var normal, duress []time.Duration
		var mu sync.Mutex
		var wg sync.WaitGroup
		for u := 0; u < users; u++ {
			wg.Add(1)
			go func(u int) {
				defer wg.Done()
				kinds := make([]bool, 0, 2*each/users)
				for i := 0; i < each/users; i++ {
					kinds = append(kinds, false, true)
				}
				mrand.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
				addr := fmt.Sprintf("u%d", u)
				for _, isDuress := range kinds {
					if isDuress {
						d := r.say(b, addr, "all good blue mango")
						mu.Lock()
						duress = append(duress, d)
						mu.Unlock()
					} else {
						d := r.say(b, addr, "all good")
						mu.Lock()
						normal = append(normal, d)
						mu.Unlock()
					}
				}
			}(u)
		}
		wg.Wait()
		slices.Sort(normal)
		slices.Sort(duress)
		b.ReportMetric(float64(percentile(duress, 0.5))/float64(percentile(normal, 0.5)), "median-ratio")
		b.ReportMetric(ks(normal, duress), "KS-D")
		b.ReportMetric(float64(percentile(normal, 0.5).Microseconds())/1000, "normal-p50-ms")
		b.ReportMetric(float64(percentile(duress, 0.5).Microseconds())/1000, "duress-p50-ms")
	}
}

// ks is the two-sample Kolmogorov–Smirnov statistic of sorted samples.
func ks(a, b []time.Duration) float64 {
	i, j, d := 0, 0, 0.0
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		if diff := float64(i)/float64(len(a)) - float64(j)/float64(len(b)); diff > d {
			d = diff
		} else if -diff > d {
			d = -diff
		}
	}
	return d
}

// BenchmarkBacklogDrain: 1,000 pending events over 50 cases (20 each, as
// after an outage) drain to a healthy sink on loopback. The deliverer runs
// with the production policy (10 s poll) and one nudge, as after a restart;
// drain-s is from that nudge to the last event accepted. Per-case order is
// checked on every run.
func BenchmarkBacklogDrain(b *testing.B) {
	const cases, perCase = 50, 20
	key := make([]byte, 32)
	rand.Read(key)
	for b.Loop() {
		b.StopTimer()
		s := testkit.Store(b)
		for c := 0; c < cases; c++ {
			escs := make([]dialogs.Escalation, perCase)
			for i := range escs {
				sev, typ := dialogs.SeverityInfo, dialogs.EventCaseUpdated
				if i == perCase-1 {
					sev, typ = dialogs.SeverityCritical, dialogs.EventSOSRaised // the SOS behind the queue
				}
				escs[i] = dialogs.Escalation{Type: typ, Severity: sev, EmbassyID: "my-mekong", Case: dialogs.CaseOpen,
					Registrant: dialogs.RegistrantView{ID: fmt.Sprintf("reg_%d", c)}}
			}
			if _, err := s.Process(fmt.Sprintf("k%d", c), "", time.Now(), func(prev dialogs.State, _ bool) dialogs.Result {
				return dialogs.Result{State: prev, Escalations: escs}
			}); err != nil {
				b.Fatal(err)
			}
		}
		var mu sync.Mutex
		last := map[string]int{}
		got := 0
		done := make(chan struct{})
		sink := &webhook.Sink{Secrets: [][]byte{key}, OnEvent: func(ev webhook.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ev.CaseSeq <= last[ev.CaseID] {
				b.Errorf("case %s: seq %d after %d", ev.CaseID, ev.CaseSeq, last[ev.CaseID])
			}
			last[ev.CaseID] = ev.CaseSeq
			if got++; got == cases*perCase {
				close(done)
			}
		}}
		srv := httptest.NewServer(sink)
		policy := webhook.DefaultPolicy()
		policy.HeartbeatEvery = 0
		d := &webhook.Deliverer{Store: s, Policy: policy,
			Endpoints: []webhook.Endpoint{{ID: "my-mekong", URL: srv.URL, Secrets: [][]byte{key}, Embassy: "my-mekong"}}}
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		b.StartTimer()
		start := time.Now()
		go func() { d.Run(ctx); close(stopped) }()
		d.Nudge()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("only %d of %d events arrived in 5 minutes", got, cases*perCase)
		}
		b.ReportMetric(time.Since(start).Seconds(), "drain-s")
		cancel()
		<-stopped
		srv.Close()
	}
}
