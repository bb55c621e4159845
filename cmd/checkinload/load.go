package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/bot/telegram"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
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
	Workers int           // concurrent registrations while seeding
	Seed    uint64        // random seed of the roles and times
	Dir     string        // data directory (default: a new temporary one, removed)
	Grace   time.Duration // how long after the day to wait for the last webhooks
	Log     io.Writer     // progress lines (nil: none)
}

// The check-in answers every seeded citizen gives: a registration that fills
// every optional field (passport, employer, trusted contact, phone through
// /status), the same words bot/fair_bench_test.go uses.
var fullRegistration = []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah binti Abdullah",
	"A12345678", "Golden Star Garments Co., Ltd.", "Aunty Mei +60 12 345 6789", "24h", "09:00", "blue mango",
	"blue mango", "1", "/status", "3", "+855 12 345 678"}

const keyword = "blue mango"

// popular are the hours people choose, with weights: most pick 08:00 or
// 09:00 (issue 15), some noon, evening or other hours.
var popular = []struct {
	hour   float64
	weight float64
}{{8, 0.35}, {9, 0.30}, {12, 0.10}, {18, 0.10}, {20, 0.05}, {7, 0.05}, {21, 0.05}}

type role int

const (
	roleAnswer role = iota
	roleMiss
	roleSOS
	roleDuress
)

// citizen is one seeded registrant as the load driver plays them.
type citizen struct {
	chat   int64
	user   fakeapi.User
	role   role
	status bool
	offset time.Duration // prompt time within the compressed day

	prompt chan struct{} // a message arrived in the chat

	mu     sync.Mutex
	sentAt time.Time // the citizen's last message, awaiting its reply
}

// Report is what one run measured.
type Report struct {
	N                 int     `json:"registrants"`
	SeedSeconds       float64 `json:"seed_seconds"`
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
}

// Run seeds p.N registrants, plays the compressed day against the real App
// and returns the measurements.
func Run(ctx context.Context, p Params) (*Report, error) {
	if p.N < 1 || p.Day <= 0 || p.Rate <= 0 || p.Workers < 1 {
		return nil, fmt.Errorf("checkinload: -n, -day, -rate and -workers must be positive")
	}
	if p.Miss+p.SOS+p.Duress > 1 {
		return nil, fmt.Errorf("checkinload: -miss + -sos + -duress exceed 1")
	}
	logf := func(format string, a ...any) {
		if p.Log != nil {
			fmt.Fprintf(p.Log, "checkinload: "+format+"\n", a...)
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
	}
	rng := mrand.New(mrand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))

	// Secrets: a generated master key (the file is encrypted as serve runs
	// it), pepper, webhook signing key.
	master, _ := seal.GenerateMasterKey()
	keyring := &seal.Keyring{Current: master}
	pepper := randomText(32)
	whKey := make([]byte, 32)
	rand.Read(whKey)

	api := fakeapi.New("4242:checkinload")
	defer api.Close()
	lim := &limitMeter{}
	citizens := make([]*citizen, p.N)
	byChat := make(map[int64]*citizen, p.N)
	for i := range citizens {
		c := &citizen{chat: 1_000_000_000 + int64(i), prompt: make(chan struct{}, 1), offset: pickOffset(rng, p.Day)}
		c.user = fakeapi.User{ID: c.chat, Username: "load" + strconv.Itoa(i), Lang: "en"}
		switch x := rng.Float64(); {
		case x < p.Miss:
			c.role = roleMiss
		case x < p.Miss+p.SOS:
			c.role = roleSOS
		case x < p.Miss+p.SOS+p.Duress:
			c.role = roleDuress
		}
		c.status = c.role == roleAnswer && rng.Float64() < p.Status
		citizens[i] = c
		byChat[c.chat] = c
	}
	var replies latencies
	front := httptest.NewServer(frontAPI(api, lim, byChat, &replies))
	defer front.Close()

	sinkRec := newSinkRecorder(whKey)
	sink := httptest.NewServer(sinkRec)
	defer sink.Close()

	c := config.Default()
	c.ClearEndpoints()
	c.Telegram.Mode, c.Telegram.WebhookURL, c.Telegram.WebhookSecretEnv = "webhook", "https://bot.example/telegram", "LOAD_WEBHOOK_SECRET"
	env := map[string]string{config.EnvPepper: pepper, config.EnvTelegramToken: api.Token,
		config.EnvTelegramAPIURL: front.URL, "LOAD_WEBHOOK_SECRET": randomText(24)}
	secrets, err := config.LoadSecrets(c, func(k string) string { return env[k] }, config.SecretNeeds{Pepper: true})
	if err != nil {
		return nil, err
	}
	for _, e := range c.Embassies {
		secrets.Endpoints = append(secrets.Endpoints, webhook.Endpoint{ID: e.ID, Embassy: e.ID, URL: sink.URL, Secrets: [][]byte{whKey}})
	}
	secrets.Keyring = keyring

	// Seed through the real store API: each citizen registers through the
	// runner and engine (every optional field), then their first prompt is
	// moved into the compressed day.
	seedStart := time.Now()
	dayStart, err := seed(ctx, p, c, secrets, sinkRec, dir, citizens, logf)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	rep := &Report{N: p.N, SeedSeconds: time.Since(seedStart).Seconds(), SendLimit: p.Rate,
		ChatLimitGapMs: ms(p.PerChat)}
	logf("seeded %d registrants in %.1fs", p.N, rep.SeedSeconds)

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
	a, err := app.Open(opt)
	if err != nil {
		return nil, err
	}
	var commits latencies
	observe := a.Store // the App's ops observer keeps working: wrap it
	prevObs := a.Ops.ObserveCommit
	observe.SetCommitObserver(func(took time.Duration, writes int) {
		commits.add(took)
		prevObs(took, writes)
	})
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
		return err
	}
	defer stop()

	// The day.
	drv := &driver{api: api, url: "http://" + a.Addr() + "/telegram", secret: secrets.TelegramWebhookSecret,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}}
	sinkRec.startDay(time.Now())
	lim.start(time.Now())
	var wg sync.WaitGroup
	dayCtx, dayCancel := context.WithTimeout(ctx, time.Until(dayStart)+p.Day+p.Grace)
	defer dayCancel()
	var sent struct{ duress, sos, missed atomic.Int64 }
	for _, cz := range citizens {
		wg.Go(func() {
			switch cz.role {
			case roleMiss:
				sent.missed.Add(1)
				return
			}
			// Wait for the prompt (the first message in the chat of the day).
			select {
			case <-cz.prompt:
			case <-dayCtx.Done():
				return
			}
			time.Sleep(time.Duration(rng2(cz.chat) * float64(200*time.Millisecond))) // reading it
			text := "ok"
			switch cz.role {
			case roleSOS:
				text = "/sos"
			case roleDuress:
				text = keyword
			}
			if drv.say(cz, text) {
				switch cz.role {
				case roleSOS:
					sent.sos.Add(1)
				case roleDuress:
					sent.duress.Add(1)
				}
			}
			if cz.status {
				select { // wait for the check-in's reply before the update
				case <-cz.prompt:
				case <-time.After(5 * time.Second):
				}
				drv.say(cz, "/status")
			}
		})
	}
	wg.Wait()
	// Wait for the escalations the day must produce: every SOS and duress,
	// and the ladder's checkin.missed for every citizen who did not answer.
	want := func() bool {
		d, s, m := sinkRec.counts()
		return d >= int(sent.duress.Load()) && s >= int(sent.sos.Load()) && m >= int(sent.missed.Load())
	}
	for !want() && dayCtx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	dayEnd := time.Now()
	time.Sleep(500 * time.Millisecond) // let a duplicate delivery show itself
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("app: %w", err)
	}

	rep.DaySeconds = dayEnd.Sub(sinkRec.dayStart).Seconds()
	rep.Inbound = int(drv.accepted.Load())
	rep.InboundPerSec = float64(rep.Inbound) / rep.DaySeconds
	rep.Replies = replies.len()
	rep.ReplyP50ms, rep.ReplyP95ms, rep.ReplyP99ms = replies.pct(50), replies.pct(95), replies.pct(99)
	sinkRec.fill(rep)
	rep.DuressSent, rep.SOSSent, rep.MissedExpected = int(sent.duress.Load()), int(sent.sos.Load()), int(sent.missed.Load())
	// Lost: a duress or SOS sent whose event never reached the embassy,
	// or a missed check-in the ladder never escalated.
	rep.Lost = max(rep.DuressSent-rep.DuressArrived, 0) + max(rep.SOSSent-rep.SOSArrived, 0) +
		max(rep.MissedExpected-rep.MissedArrived, 0)
	lim.fill(rep)
	rep.LimitsKept = float64(rep.MaxSendsPerSec) <= p.Rate && (rep.Sends == 0 || rep.MinChatGapMs >= ms(p.PerChat)*0.95)
	rep.CPUSeconds = cpuSeconds()
	rep.PeakRSSMB = peakRSSMB()
	rep.Commits = commits.len()
	rep.CommitP50ms, rep.CommitP99ms, rep.CommitMaxms = commits.pct(50), commits.pct(99), commits.pct(100)
	rep.CommitsOver50ms = commits.over(50 * time.Millisecond)
	return rep, nil
}

// seed registers every citizen through a runner and store opened on the
// App's data file, as the App opens them, with a platform that accepts
// every reply at once, then moves each citizen's next prompt to their time
// in the compressed day. It returns when the day starts.
func seed(ctx context.Context, p Params, c *config.Config, secrets config.Secrets, sink *sinkRecorder, dir string,
	citizens []*citizen, logf func(string, ...any)) (time.Time, error) {
	pepper, ring := secrets.Pepper, secrets.Keyring
	cat, err := locales.Load()
	if err != nil {
		return time.Time{}, err
	}
	eng := &dialogs.Engine{Catalog: cat, Directory: c.Directory(), Policy: c.Policy(), Pepper: pepper}
	s, err := boltstore.OpenWith(filepath.Join(dir, "checkinbot.db"), boltstore.Options{Keyring: ring})
	if err != nil {
		return time.Time{}, err
	}
	defer s.Close()
	r := bot.NewRunner(eng, s, pepper)
	r.ReplyFloor = 0
	r.Register("telegram", acceptor{})
	// Update ids far above the fake API's (which count from 100), so no
	// message of the day is taken for a redelivered seed update.
	var next atomic.Int64
	next.Store(1 << 40)
	jobs := make(chan *citizen)
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range p.Workers {
		wg.Go(func() {
			for cz := range jobs {
				inputs := make([]bot.Inbound, 0, len(fullRegistration)+1)
				for _, text := range fullRegistration {
					inputs = append(inputs, bot.Inbound{Kind: dialogs.KindText, Text: text})
				}
				inputs = append(inputs, bot.Inbound{Kind: dialogs.KindLocation, Lat: 11.5564, Lon: 104.9282})
				for _, in := range inputs {
					n := next.Add(1)
					in.Channel, in.Address, in.Handle, in.LangHint = "telegram", strconv.FormatInt(cz.chat, 10), "@"+cz.user.Username, "en"
					in.MessageID, in.DeleteID = "u"+strconv.FormatInt(n, 10), strconv.FormatInt(n, 10)
					if err := r.Handle(ctx, in); err != nil {
						mu.Lock()
						firstErr = cmp(firstErr, err)
						mu.Unlock()
						break
					}
				}
			}
		})
	}
	for i, cz := range citizens {
		if i > 0 && i%10000 == 0 {
			logf("registered %d", i)
		}
		jobs <- cz
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return time.Time{}, firstErr
	}
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := r.Drain(dctx); err != nil {
		return time.Time{}, fmt.Errorf("drain: %w", err)
	}
	// The embassies receive the registrations before the day begins, so
	// the day's escalations do not queue behind the seed's backlog.
	pol := c.DeliveryPolicy()
	pol.HeartbeatEvery = 0
	d := &webhook.Deliverer{Store: s, Endpoints: secrets.Endpoints, Policy: pol,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	dctx2, stopDeliver := context.WithCancel(ctx)
	delivered := make(chan error, 1)
	go func() { delivered <- d.Run(dctx2) }()
	deadline := time.Now().Add(10 * time.Minute)
	for sink.registrations() < len(citizens) && time.Now().Before(deadline) && ctx.Err() == nil {
		d.Nudge()
		time.Sleep(100 * time.Millisecond)
	}
	stopDeliver()
	<-delivered
	if n := sink.registrations(); n < len(citizens) {
		return time.Time{}, fmt.Errorf("only %d of %d registration.created webhooks arrived", n, len(citizens))
	}
	logf("the embassy received %d registrations", len(citizens))
	// The day starts shortly after the App is up: the schedule of each
	// citizen is moved (the real store API, one transaction each) so the
	// prompt falls at their chosen hour in the compressed day.
	dayStart := time.Now().Add(3*time.Second + time.Duration(p.N)*500*time.Microsecond)
	jobs2 := make(chan *citizen)
	for range p.Workers {
		wg.Go(func() {
			for cz := range jobs2 {
				key := store.UserKey(pepper, "telegram", strconv.FormatInt(cz.chat, 10))
				at := dayStart.Add(cz.offset)
				_, err := s.Process(key, "", time.Now(), func(prev dialogs.State, found bool) dialogs.Result {
					st := prev
					st.NextDue, st.Timer, st.Ladder = at, at, 0
					return dialogs.Result{State: st}
				})
				if err != nil {
					mu.Lock()
					firstErr = cmp(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, cz := range citizens {
		jobs2 <- cz
	}
	close(jobs2)
	wg.Wait()
	if firstErr != nil {
		return time.Time{}, firstErr
	}
	return dayStart, nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// acceptor is a platform that accepts every reply at once (seeding only).
type acceptor struct{}

func (acceptor) Name() string                  { return "telegram" }
func (acceptor) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (acceptor) Send(_ context.Context, _ string, r bot.Response) error {
	r.Report(bot.Receipt{SentIDs: []string{"1"}})
	return nil
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

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
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
	id, _ := d.api.Text(cz.user, text)
	body, _ := json.Marshal(d.api.Update(id))
	req, _ := http.NewRequest(http.MethodPost, d.url, bytes.NewReader(body))
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", d.secret)
	req.Header.Set("Content-Type", "application/json")
	cz.mu.Lock()
	cz.sentAt = time.Now()
	cz.mu.Unlock()
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

// frontAPI stands in front of the fake Bot API: it notes the receive time
// and chat of every sendMessage (send limits, reply latency, the citizens'
// prompts) and passes the request on unchanged.
func frontAPI(api *fakeapi.Server, lim *limitMeter, byChat map[int64]*citizen, replies *latencies) http.Handler {
	inner := api.Config.Handler
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		if strings.HasSuffix(r.URL.Path, "/sendMessage") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if chat, ok := chatID(r.Header.Get("Content-Type"), body); ok {
				lim.add(now, chat)
				if cz := byChat[chat]; cz != nil {
					cz.mu.Lock()
					if !cz.sentAt.IsZero() {
						replies.add(now.Sub(cz.sentAt))
						cz.sentAt = time.Time{}
					}
					cz.mu.Unlock()
					select {
					case cz.prompt <- struct{}{}:
					default:
					}
				}
			}
		}
		inner.ServeHTTP(w, r)
	})
}

// chatID reads chat_id from a sendMessage body (multipart, JSON or form).
func chatID(ct string, body []byte) (int64, bool) {
	n, err := strconv.ParseInt(formField(ct, body, "chat_id"), 10, 64)
	return n, err == nil
}

// formField reads one parameter of a Bot API request body (multipart,
// JSON or form).
func formField(ct string, body []byte, name string) string {
	mt, params, _ := mime.ParseMediaType(ct)
	var v string
	switch mt {
	case "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			if part.FormName() == name {
				b, _ := io.ReadAll(part)
				v = string(b)
				break
			}
		}
	case "application/json":
		var m map[string]json.RawMessage
		json.Unmarshal(body, &m)
		if err := json.Unmarshal(m[name], &v); err != nil {
			v = string(m[name])
		}
	default:
		if q, err := url.ParseQuery(string(body)); err == nil {
			v = q.Get(name)
		}
	}
	return v
}

// limitMeter counts sends per second overall and per chat, and the
// shortest gap between two sends to one chat.
type limitMeter struct {
	mu     sync.Mutex
	t0     time.Time
	all    []time.Time
	last   map[int64]time.Time
	minGap time.Duration
	perSec map[[2]int64]int // (chat, second) → sends
}

func (l *limitMeter) start(t time.Time) {
	l.mu.Lock()
	l.t0 = t
	l.mu.Unlock()
}

func (l *limitMeter) add(at time.Time, chat int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t0.IsZero() {
		return // seeding and start-up are not the day
	}
	if l.last == nil {
		l.last, l.perSec, l.minGap = map[int64]time.Time{}, map[[2]int64]int{}, time.Duration(math.MaxInt64)
	}
	l.all = append(l.all, at)
	if prev, ok := l.last[chat]; ok {
		l.minGap = min(l.minGap, at.Sub(prev))
	}
	l.last[chat] = at
	l.perSec[[2]int64{chat, int64(at.Sub(l.t0) / time.Second)}]++
}

// fill reports the most sends in any one-second sliding window, the most to
// one chat in one second, and the shortest per-chat gap.
func (l *limitMeter) fill(rep *Report) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rep.Sends = len(l.all)
	sort.Slice(l.all, func(i, j int) bool { return l.all[i].Before(l.all[j]) })
	j := 0
	for i, t := range l.all {
		for t.Sub(l.all[j]) >= time.Second {
			j++
		}
		rep.MaxSendsPerSec = max(rep.MaxSendsPerSec, i-j+1)
	}
	for _, n := range l.perSec {
		rep.MaxChatPerSec = max(rep.MaxChatPerSec, n)
	}
	if l.last != nil && l.minGap != time.Duration(math.MaxInt64) {
		rep.MinChatGapMs = ms(l.minGap)
	} else {
		rep.MinChatGapMs = -1 // no chat received two messages
	}
}

// sinkRecorder is the embassies' receiver: webhook.Sink verifies every
// signature; around it, every accepted delivery is counted by webhook-id
// (exactly once) and timed against the event's created_at.
type sinkRecorder struct {
	sink webhook.Sink

	mu       sync.Mutex
	dayStart time.Time
	arrivals map[string]int
	types    map[string]string
	cases    map[string]bool // cases with a checkin.missed
	lat      latencies
	duress   latencies
	dupes    int
	dupTypes map[string]int
}

func newSinkRecorder(key []byte) *sinkRecorder {
	return &sinkRecorder{sink: webhook.Sink{Secrets: [][]byte{key}}, arrivals: map[string]int{}, types: map[string]string{}, cases: map[string]bool{}}
}

func (s *sinkRecorder) startDay(t time.Time) {
	s.mu.Lock()
	s.dayStart = t
	s.mu.Unlock()
}

func (s *sinkRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	s.sink.ServeHTTP(rw, r)
	if rw.code/100 != 2 {
		return
	}
	var ev struct {
		Type      string    `json:"type"`
		CaseID    string    `json:"case_id"`
		CreatedAt time.Time `json:"created_at"`
	}
	json.Unmarshal(body, &ev)
	id := r.Header.Get(webhook.HeaderID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrivals[id]++
	if s.arrivals[id] > 1 {
		if s.dupTypes == nil {
			s.dupTypes = map[string]int{}
		}
		s.dupTypes[ev.Type]++
		s.dupes++
		return
	}
	s.types[id] = ev.Type
	if ev.Type == string(escalation.TypeCheckinMissed) {
		s.cases[ev.CaseID] = true
	}
	if s.dayStart.IsZero() || ev.CreatedAt.Before(s.dayStart) {
		return // the seed's registration backlog is not the day's latency
	}
	d := now.Sub(ev.CreatedAt)
	s.lat.add(d)
	if ev.Type == string(escalation.TypeDuressTriggered) {
		s.duress.add(d)
	}
}

// registrations is how many registration.created events arrived.
func (s *sinkRecorder) registrations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.types {
		if t == string(escalation.TypeRegistrationCreated) {
			n++
		}
	}
	return n
}

func (s *sinkRecorder) counts() (duress, sos, missed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.types {
		switch escalation.Type(t) {
		case escalation.TypeDuressTriggered:
			duress++
		case escalation.TypeSOSRaised:
			sos++
		}
	}
	return duress, sos, len(s.cases)
}

func (s *sinkRecorder) fill(rep *Report) {
	rep.DuressArrived, rep.SOSArrived, rep.MissedArrived = s.counts()
	s.mu.Lock()
	defer s.mu.Unlock()
	rep.Webhooks = s.lat.len()
	rep.WebhookP50ms, rep.WebhookP99ms = s.lat.pct(50), s.lat.pct(99)
	rep.DuressP99ms = s.duress.pct(99)
	rep.DuplicateWebhooks, rep.DuplicateTypes = s.dupes, s.dupTypes
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// latencies is a concurrent list of durations with percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// pct is the p-th percentile in milliseconds (nearest rank); -1 if empty.
func (l *latencies) pct(p float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return -1
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return ms(s[min(max(i, 0), len(s)-1)])
}

func (l *latencies) over(d time.Duration) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.d {
		if x > d {
			n++
		}
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuSeconds is the process's user and system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// peakRSSMB is VmHWM from /proc/self/status, in MiB; -1 where unreadable.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return -1
}

// DuplicatesTolerated is how many duplicate deliveries a run may see
// without failing: delivery is at least once (Standard Webhooks; receivers
// de-duplicate by webhook-id, docs/webhooks.md), and a delivery answered
// after the attempt's timeout on a loaded machine is sent again. One in a
// hundred, plus one, still catches a deliverer that sends events twice.
func DuplicatesTolerated(webhooks int) int { return webhooks/100 + 1 }
