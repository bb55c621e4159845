package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/bot/telegram"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/webhook"
)

// Params is one load run's shape (the flags of main).
type Params struct {
	N       int           // registrants seeded
	Day     time.Duration // the 24 h day compressed into this much real time
	Rate    float64       // the Telegram sender's global limit, msgs/s (Telegram: 30; paid broadcast: 1,000)
	PerChat time.Duration // the sender's per-chat interval (Telegram: about 1 msg/s per chat)
	Miss    float64       // share of citizens who do not answer their prompt
	SOS     float64       // share who answer with /sos
	Duress  float64       // share who answer with their duress keyword
	Status  float64       // share who also send /status
	Workers int           // concurrent registrations while seeding and scheduling
	Seed    uint64        // random seed of the roles and times
	// Dir is the data directory. Empty: a temporary one, removed. Given:
	// the seed is made there once (seed.db, seed.json) and every later run
	// with the same -n reuses it, each day on a fresh copy.
	Dir        string
	Grace      time.Duration // how long after the day to wait for the last webhooks
	CPUProfile string        // file for a CPU profile of the day ("" none)
	SeedOnly   bool          // make (or check) the seed and stop
	Log        io.Writer     // progress lines (nil: none)
}

// The check-in answers every seeded citizen gives: a registration that fills
// every optional field (passport, employer, trusted contact, phone through
// /status), the same words bot/fair_bench_test.go uses.
var fullRegistration = []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah binti Abdullah",
	"A12345678", "Golden Star Garments Co., Ltd.", "Aunty Mei +60 12 345 6789", "24h", "09:00", "blue mango",
	"blue mango", "1", "/status", "3", "+855 12 345 678"}

const keyword = "blue mango"

// chatBase is citizen 0's chat id; citizen i's is chatBase+i.
const chatBase = 1_000_000_000

// popular are the hours people choose, with weights: most pick 08:00 or
// 09:00 (issue 15), some noon, evening or other hours.
var popular = []struct {
	hour   float64
	weight float64
}{{8, 0.35}, {9, 0.30}, {12, 0.10}, {18, 0.10}, {20, 0.05}, {7, 0.05}, {21, 0.05}}

type role uint8

const (
	roleAnswer role = iota
	roleMiss
	roleSOS
	roleDuress
)

// The phases of a citizen's day (citizen.phase).
const (
	phaseWaiting  int32 = iota // for the prompt
	phaseReading               // the prompt came; answering soon
	phaseAnswered              // answered; /status goes after the reply
	phaseDone
)

// citizen is one seeded registrant as the load driver plays them: 40 bytes,
// no goroutine until their prompt arrives.
type citizen struct {
	chat   int64
	offset time.Duration // prompt time within the compressed day
	sentAt atomic.Int64  // unix ns of the message awaiting its reply; 0 none
	phase  atomic.Int32
	role   role
	status bool
}

// Report is what one run measured.
type Report struct {
	N                 int     `json:"registrants"`
	SeedSeconds       float64 `json:"seed_seconds"`
	SeedPerSec        float64 `json:"seed_registrants_per_second"`
	SeedDeliverSecs   float64 `json:"seed_deliver_seconds"`
	SeedReused        bool    `json:"seed_reused"`
	CopySeconds       float64 `json:"copy_seconds"`
	ScheduleSeconds   float64 `json:"schedule_seconds"`
	FileMB            float64 `json:"data_file_mb"`
	DaySeconds        float64 `json:"day_seconds"`
	Inbound           int     `json:"inbound_messages"`
	InboundPerSec     float64 `json:"inbound_per_second"`
	ReplyP50ms        float64 `json:"reply_latency_p50_ms"`
	ReplyP95ms        float64 `json:"reply_latency_p95_ms"`
	ReplyP99ms        float64 `json:"reply_latency_p99_ms"`
	Replies           int     `json:"replies_measured"`
	WebhookP50ms      float64 `json:"webhook_latency_p50_ms"`
	WebhookP99ms      float64 `json:"webhook_latency_p99_ms"`
	Webhooks          int     `json:"webhooks_received"`
	DuressP99ms       float64 `json:"duress_to_webhook_p99_ms"`
	Sends             int     `json:"telegram_sends"`
	MaxSendsPerSec    int     `json:"max_sends_per_second"`
	SendLimit         float64 `json:"send_limit_per_second"`
	MaxChatPerSec     int     `json:"max_sends_per_chat_per_second"`
	MinChatGapMs      float64 `json:"min_gap_per_chat_ms"`
	ChatLimitGapMs    float64 `json:"per_chat_interval_ms"`
	LimitsKept        bool    `json:"limits_kept"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	DayCPUSeconds     float64 `json:"day_cpu_seconds"`
	PeakRSSMB         float64 `json:"peak_rss_mb"`
	Commits           int     `json:"commits"`
	CommitP50ms       float64 `json:"commit_p50_ms"`
	CommitP99ms       float64 `json:"commit_p99_ms"`
	CommitMaxms       float64 `json:"commit_max_ms"`
	CommitsOver50ms   int     `json:"commits_over_50ms"`
	DuressSent        int     `json:"duress_sent"`
	DuressArrived     int     `json:"duress_arrived"`
	SOSSent           int     `json:"sos_sent"`
	SOSArrived        int     `json:"sos_arrived"`
	MissedExpected    int     `json:"missed_expected"`
	MissedArrived     int     `json:"missed_arrived"`
	DuplicateWebhooks int     `json:"duplicate_webhooks"`
	// DuplicateTypes counts the duplicates by event type, to tell a retry
	// after a slow answer from a deliverer bug.
	DuplicateTypes map[string]int `json:"duplicate_types,omitempty"`
	Lost           int            `json:"lost_events"`
	// Finished: every citizen who answers did, and every escalation the
	// day must produce arrived, before -day + -grace ran out. A run cut
	// off counts what had not arrived yet as lost.
	Finished   bool `json:"finished"`
	Unanswered int  `json:"unanswered"` // citizens who answer but had not, at the end
	// LongCommits is every commit over 50 ms with what ran meanwhile.
	LongCommits []LongCommit `json:"long_commits,omitempty"`
}

// Run seeds p.N registrants (or reuses the seed in p.Dir), plays the
// compressed day against the real App and returns the measurements.
func Run(ctx context.Context, p Params) (*Report, error) {
	if p.N < 1 || p.Day <= 0 || p.Rate <= 0 || p.Workers < 1 {
		return nil, fmt.Errorf("checkinload: -n, -day, -rate and -workers must be positive")
	}
	if p.Miss+p.SOS+p.Duress > 1 {
		return nil, fmt.Errorf("checkinload: -miss + -sos + -duress exceed 1")
	}
	logf := func(format string, a ...any) {
		if p.Log != nil {
			fmt.Fprintf(p.Log, "checkinload: %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
		}
	}
	dir := p.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "checkinload-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("-dir: %w", err)
	}
	meta, reuse, err := loadMeta(dir, p.N)
	if err != nil {
		return nil, err
	}
	if !reuse {
		meta = newMeta(p.N)
	}
	keyring, err := meta.keyring()
	if err != nil {
		return nil, err
	}
	sinkRec := newSinkRecorder(meta.WebhookKey)
	sink := httptest.NewServer(sinkRec)
	defer sink.Close()

	c := config.Default()
	c.ClearEndpoints()
	c.Telegram.Mode, c.Telegram.WebhookURL, c.Telegram.WebhookSecretEnv = "webhook", "https://bot.example/telegram", "LOAD_WEBHOOK_SECRET"
	// The fake API keeps nothing per call: the day's observer aggregates
	// what the report needs (it is built before the day exists).
	var current atomic.Pointer[dayRun]
	api := fakeapi.NewWith("4242:checkinload", fakeapi.Options{Forget: true, Observe: func(call fakeapi.Call) {
		if d := current.Load(); d != nil {
			d.onCall(call)
		}
	}})
	defer api.Close()
	env := map[string]string{config.EnvPepper: meta.Pepper, config.EnvTelegramToken: api.Token,
		config.EnvTelegramAPIURL: api.URL, "LOAD_WEBHOOK_SECRET": randomText(24)}
	secrets, err := config.LoadSecrets(c, func(k string) string { return env[k] }, config.SecretNeeds{Pepper: true})
	if err != nil {
		return nil, err
	}
	for _, e := range c.Embassies {
		secrets.Endpoints = append(secrets.Endpoints, webhook.Endpoint{ID: e.ID, Embassy: e.ID, URL: sink.URL, Secrets: [][]byte{meta.WebhookKey}})
	}
	secrets.Keyring = keyring

	rep := &Report{N: p.N, SendLimit: p.Rate, ChatLimitGapMs: ms(p.PerChat)}
	if p.CPUProfile != "" {
		// The day's profile, or with -seed-only the seed's.
		stopProfile, err := startProfile(p.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer stopProfile()
		if !p.SeedOnly {
			stopProfile() // restarted for the day below
		}
	}
	if !reuse {
		// Seed through the real engine and store API, then keep the seed.
		// Its secrets are saved first: without them seed.db is unreadable.
		os.Remove(filepath.Join(dir, seedFile))
		if err := meta.write(dir); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		if meta.SeedSeconds, err = seedStore(ctx, p, c, secrets, filepath.Join(dir, seedFile), logf); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		meta.Written = true
		if err := meta.write(dir); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
	}
	if !meta.Complete {
		if reuse {
			logf("resuming the delivery of the seed in %s", dir)
		}
		if meta.DeliverSecs, err = deliverSeed(ctx, p, c, secrets, sinkRec, filepath.Join(dir, seedFile), logf); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		meta.FileMB, meta.Complete = fileMB(filepath.Join(dir, seedFile)), true
		if err := meta.write(dir); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		reuse = false
	} else {
		logf("reusing the seed of %d registrants in %s (made %s)", meta.N, dir, meta.Created.Format(time.RFC3339))
	}
	rep.SeedReused = reuse
	rep.SeedSeconds, rep.SeedDeliverSecs = meta.SeedSeconds, meta.DeliverSecs
	rep.SeedPerSec = float64(p.N) / meta.SeedSeconds
	if p.SeedOnly {
		rep.FileMB = meta.FileMB
		return rep, nil
	}
	start := time.Now()
	if p.Dir == "" {
		err = os.Rename(filepath.Join(dir, seedFile), filepath.Join(dir, appFile))
	} else {
		err = copyFile(filepath.Join(dir, seedFile), filepath.Join(dir, appFile))
	}
	if err != nil {
		return nil, fmt.Errorf("the day's copy of the seed: %w", err)
	}
	rep.CopySeconds = time.Since(start).Seconds()

	rng := mrand.New(mrand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	citizens := make([]citizen, p.N)
	for i := range citizens {
		cz := &citizens[i]
		cz.chat, cz.offset = chatBase+int64(i), pickOffset(rng, p.Day)
		switch x := rng.Float64(); {
		case x < p.Miss:
			cz.role = roleMiss
		case x < p.Miss+p.SOS:
			cz.role = roleSOS
		case x < p.Miss+p.SOS+p.Duress:
			cz.role = roleDuress
		}
		cz.status = cz.role == roleAnswer && rng.Float64() < p.Status
	}
	lim := newLimitMeter(p.N)

	scale := float64(p.Day) / float64(24*time.Hour)
	opt := app.Options{Config: c, Secrets: secrets, DataDir: dir, Listen: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), // the measurement, not the App's log, is the output
		Policy: func(pol dialogs.Policy) dialogs.Policy {
			sc := func(d time.Duration) time.Duration { return max(time.Duration(float64(d)*scale), 200*time.Millisecond) }
			pol.RemindAfter, pol.FinalReminderAfter = sc(pol.RemindAfter), sc(pol.FinalReminderAfter)
			pol.EscalateAfter, pol.ReescalateEvery = sc(pol.EscalateAfter), sc(pol.ReescalateEvery)
			return pol
		},
		Channels: []app.ChannelFunc{func(env app.ChannelEnv) (bot.Channel, error) {
			return telegram.New(telegram.Options{Token: secrets.TelegramToken, APIURL: secrets.TelegramAPIURL,
				PerChat: p.PerChat, GlobalRate: p.Rate, Workers: 8,
				Webhook: &telegram.Webhook{URL: c.Telegram.WebhookURL, Secret: secrets.TelegramWebhookSecret}, Log: env.Log}, env.Inbox)
		}},
		Delivery: func(pol webhook.Policy) webhook.Policy { pol.HeartbeatEvery = 0; return pol }}
	openStart := time.Now()
	a, err := app.Open(opt)
	if err != nil {
		return nil, err
	}
	logf("the App opened the %.0f MiB data file in %.1fs", fileMB(filepath.Join(dir, appFile)), time.Since(openStart).Seconds())
	closed := false
	defer func() {
		if !closed {
			a.Close()
		}
	}()
	// Each citizen's prompt is moved to their hour in the compressed day,
	// on the App's store before it runs: the day starts once that is done.
	start = time.Now()
	// About 0.25 ms a citizen on an idle 2-core machine; if scheduling
	// overruns, the earliest prompts come at once when the App starts.
	dayStart := start.Add(5*time.Second + time.Duration(p.N)*300*time.Microsecond)
	if err := schedule(a.Store, secrets.Pepper, citizens, dayStart, max(p.Workers, 512)); err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	rep.ScheduleSeconds = time.Since(start).Seconds()
	if late := time.Since(dayStart); late > 0 {
		logf("scheduling took %.1fs, %.1fs past the day's start: the first prompts come at once", rep.ScheduleSeconds, late.Seconds())
	}
	logf("scheduled %d prompts in %.1fs", p.N, rep.ScheduleSeconds)

	ops := &opTracker{}
	a.Deliverer.Store = trackedOutbox{Outbox: a.Deliverer.Store, ops: ops}
	probe := startDiskProbe(dir)
	defer probe.close()
	commits := &commitLog{ops: ops, probe: probe}
	commits.dayStart.Store(dayStart.UnixNano())
	prevObs := a.Ops.ObserveCommit // the App's ops observer keeps working: wrap it
	a.Store.SetCommitObserver(func(took time.Duration, writes int) {
		commits.observe(took, writes)
		prevObs(took, writes)
	})

	if p.CPUProfile != "" {
		stopProfile, err := startProfile(p.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer stopProfile()
	}
	// The day: the citizens listen before the App runs (a prompt may
	// come at once).
	drv := &driver{api: api, url: "http://" + a.Addr() + "/telegram", secret: secrets.TelegramWebhookSecret,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}}
	dayCtx, dayCancel := context.WithTimeout(ctx, time.Until(dayStart)+p.Day+p.Grace)
	defer dayCancel()
	day := &dayRun{ctx: dayCtx, drv: drv, citizens: citizens, lim: lim}
	for i := range citizens {
		if citizens[i].role != roleMiss {
			day.outstanding.Add(1)
		} else {
			day.missed.Add(1)
		}
	}
	current.Store(day)
	defer current.Store(nil)
	sinkRec.startDay(time.Now())
	lim.start(time.Now())
	cpu0 := cpuSeconds()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		err := <-done
		if cerr := a.Close(); err == nil {
			err = cerr
		}
		closed = true
		return err
	}
	defer stop()

	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	d0 := time.Now()
	// Every citizen who answers has answered, and then every SOS, duress
	// and missed check-in reached the embassy.
	want := func() bool {
		if day.outstanding.Load() > 0 {
			return false
		}
		d, s, m := sinkRec.counts()
		return d >= int(day.duress.Load()) && s >= int(day.sos.Load()) && m >= int(day.missed.Load())
	}
	for !want() && dayCtx.Err() == nil {
		select {
		case <-progress.C:
			d, s, m := sinkRec.counts()
			logf("day %.0fs: %d inbound, %d sends, %d still to answer; arrived duress %d/%d, SOS %d/%d, missed %d/%d; RSS %.0f MiB",
				time.Since(d0).Seconds(), drv.accepted.Load(), lim.count(), day.outstanding.Load(), d, day.duress.Load(), s, day.sos.Load(),
				m, day.missed.Load(), rssMB())
		case <-time.After(50 * time.Millisecond):
		}
	}
	rep.Finished = want()
	rep.Unanswered = int(day.outstanding.Load())
	dayEnd := time.Now()
	time.Sleep(500 * time.Millisecond) // let a duplicate delivery show itself
	day.wg.Wait()
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("app: %w", err)
	}

	// The day counts from its start (the App ran from a little before,
	// unless scheduling overran it).
	from := sinkRec.dayStart
	if dayStart.After(from) {
		from = dayStart
	}
	rep.DaySeconds = dayEnd.Sub(from).Seconds()
	rep.Inbound = int(drv.accepted.Load())
	rep.InboundPerSec = float64(rep.Inbound) / rep.DaySeconds
	rep.Replies = day.replies.len()
	rep.ReplyP50ms, rep.ReplyP95ms, rep.ReplyP99ms = day.replies.pct(50), day.replies.pct(95), day.replies.pct(99)
	sinkRec.fill(rep)
	rep.DuressSent, rep.SOSSent, rep.MissedExpected = int(day.duress.Load()), int(day.sos.Load()), int(day.missed.Load())
	// Lost: a duress or SOS sent whose event never reached the embassy,
	// or a missed check-in the ladder never escalated.
	rep.Lost = max(rep.DuressSent-rep.DuressArrived, 0) + max(rep.SOSSent-rep.SOSArrived, 0) +
		max(rep.MissedExpected-rep.MissedArrived, 0)
	lim.fill(rep)
	rep.LimitsKept = float64(rep.MaxSendsPerSec) <= p.Rate && (rep.Sends == 0 || rep.MinChatGapMs < 0 || rep.MinChatGapMs >= ms(p.PerChat)*0.95)
	rep.CPUSeconds = cpuSeconds()
	rep.DayCPUSeconds = rep.CPUSeconds - cpu0
	rep.PeakRSSMB = peakRSSMB()
	rep.FileMB = fileMB(filepath.Join(dir, appFile))
	rep.Commits = commits.durs.len()
	rep.CommitP50ms, rep.CommitP99ms, rep.CommitMaxms = commits.durs.pct(50), commits.durs.pct(99), commits.durs.pct(100)
	rep.CommitsOver50ms = commits.durs.over(longCommit)
	time.Sleep(1100 * time.Millisecond) // the last disk probe attributions
	rep.LongCommits = commits.longCommits()
	return rep, nil
}

// startProfile starts a CPU profile into path; the function it returns
// stops it (once).
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}, nil
}

// dayRun is the citizens' side of the day: each citizen acts when a
// message reaches their chat, as Telegram's users do.
type dayRun struct {
	ctx      context.Context
	drv      *driver
	citizens []citizen
	lim      *limitMeter
	replies  latencies
	wg       sync.WaitGroup

	outstanding atomic.Int64 // citizens who answer and have not finished
	duress      atomic.Int64 // sent and accepted
	sos         atomic.Int64
	missed      atomic.Int64
}

// onCall sees every call the App makes to the fake API: each successful
// sendMessage is counted against the send limits, times the reply to the
// citizen's last message, and wakes the citizen.
func (d *dayRun) onCall(c fakeapi.Call) {
	if c.Method != "sendMessage" || c.Status != http.StatusOK {
		return
	}
	chat, err := strconv.ParseInt(c.Params["chat_id"], 10, 64)
	if err != nil {
		return
	}
	i := int(chat - chatBase)
	if i < 0 || i >= len(d.citizens) {
		d.lim.add(c.At, chat, -1)
		return
	}
	d.lim.add(c.At, chat, i)
	cz := &d.citizens[i]
	if t := cz.sentAt.Swap(0); t != 0 {
		d.replies.add(c.At.Sub(time.Unix(0, t)))
	}
	switch {
	case cz.role == roleMiss:
	case cz.phase.CompareAndSwap(phaseWaiting, phaseReading):
		d.wg.Go(func() { d.answer(cz) })
	case cz.status && cz.phase.CompareAndSwap(phaseAnswered, phaseDone):
		d.wg.Go(func() {
			d.drv.say(cz, "/status")
			d.outstanding.Add(-1)
		})
	}
}

// answer is a citizen reading their prompt (0–200 ms) and answering.
func (d *dayRun) answer(cz *citizen) {
	select {
	case <-time.After(time.Duration(rng2(cz.chat) * float64(200*time.Millisecond))):
	case <-d.ctx.Done():
		return
	}
	text := "ok"
	switch cz.role {
	case roleSOS:
		text = "/sos"
	case roleDuress:
		text = keyword
	}
	if cz.status {
		cz.phase.Store(phaseAnswered) // before posting: the reply may come at once
	} else {
		cz.phase.Store(phaseDone)
	}
	if d.drv.say(cz, text) {
		switch cz.role {
		case roleSOS:
			d.sos.Add(1)
		case roleDuress:
			d.duress.Add(1)
		}
	}
	if !cz.status {
		d.outstanding.Add(-1)
	}
}

// pickOffset is a prompt time in the compressed day: a popular hour, spread
// by up to ±20 minutes.
func pickOffset(rng *mrand.Rand, day time.Duration) time.Duration {
	x, h := rng.Float64(), popular[0].hour
	for _, p := range popular {
		if x < p.weight {
			h = p.hour
			break
		}
		x -= p.weight
	}
	h += (rng.Float64()*40 - 20) / 60
	// The day starts at 07:00 minus the spread, so the run begins busy.
	frac := (h - 6.5) / 24
	return time.Duration(frac * float64(day))
}

// rng2 is a citizen's reading delay fraction, fixed by their chat id.
func rng2(chat int64) float64 {
	return float64(uint64(chat)*0x9e3779b97f4a7c15>>40) / float64(1<<24)
}

// driver posts citizens' messages to the App's Telegram webhook, as
// Telegram does.
type driver struct {
	api      *fakeapi.Server
	url      string
	secret   string
	client   *http.Client
	accepted atomic.Int64
}

// say sends text from cz and reports whether the App accepted it.
func (d *driver) say(cz *citizen, text string) bool {
	u := fakeapi.User{ID: cz.chat, Username: "load" + strconv.FormatInt(cz.chat-chatBase, 10), Lang: "en"}
	body, _ := json.Marshal(d.api.TextUpdate(u, text))
	req, _ := http.NewRequest(http.MethodPost, d.url, bytes.NewReader(body))
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", d.secret)
	req.Header.Set("Content-Type", "application/json")
	cz.sentAt.Store(time.Now().UnixNano())
	resp, err := d.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	d.accepted.Add(1)
	return true
}

// DuplicatesTolerated is how many duplicate deliveries a run may see
// without failing: delivery is at least once (Standard Webhooks; receivers
// de-duplicate by webhook-id, docs/webhooks.md), and a delivery answered
// after the attempt's timeout on a loaded machine is sent again. One in a
// hundred, plus one, still catches a deliverer that sends events twice.
func DuplicatesTolerated(webhooks int) int { return webhooks/100 + 1 }
