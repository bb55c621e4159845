package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// Endpoint is one receiver of events.
type Endpoint struct {
	// ID names the endpoint in the store and in logs: the embassy id for its
	// primary URL, "<embassy>/secondary", "<embassy>/partner/<partner id>".
	ID      string
	URL     string
	Secrets [][]byte
	Embassy string
	// Events limits the types a partner receives; nil means every type.
	Events []string
	// Secondary is the ID of the endpoint that critical events also go to
	// when this one has failed for Policy.SecondaryAfter.
	Secondary string
	// Backup marks a secondary endpoint: it receives events only through
	// its primary's failures (and its own heartbeat).
	Backup bool
}

// Policy is how hard delivery tries (DESIGN §4).
type Policy struct {
	// Retry is the delay before each retry after a failure: the first entry
	// after the first failure, and so on; the last repeats for ever.
	Retry []time.Duration
	// Jitter spreads retries by up to this fraction (0.2 = ±20%).
	Jitter float64
	// SecondaryAfter: a critical event failing this long also goes to the
	// embassy's secondary URL.
	SecondaryAfter time.Duration
	// GiveUpAfter: a non-critical event failing this long is given up and
	// the operator alerted. Critical events never give up.
	GiveUpAfter time.Duration
	// MaxRetryAfter caps a receiver's Retry-After.
	MaxRetryAfter time.Duration
	// Timeout bounds one request.
	Timeout time.Duration
	// HeartbeatEvery: a signed endpoint.heartbeat to every endpoint this
	// often, so a dead endpoint is found before a real alert. Zero: none.
	HeartbeatEvery time.Duration
	// KeepDelivered: how long delivered events are kept for audit.
	KeepDelivered time.Duration
	// Poll is the longest the loop sleeps: the guarantee behind the
	// immediate attempt after each commit.
	Poll time.Duration
	// ReportEvery is the cadence of the endpoint health report, the only
	// place delivery problems are logged. Zero: one minute.
	ReportEvery time.Duration
}

// DefaultPolicy is DESIGN §4: retries at 0, 5 s, 15 s, 30 s, 1 m, 2 m,
// 5 m, then every 10 m.
func DefaultPolicy() Policy {
	return Policy{
		Retry: []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute,
			2 * time.Minute, 5 * time.Minute, 10 * time.Minute},
		Jitter:         0.2,
		SecondaryAfter: 2 * time.Minute,
		GiveUpAfter:    72 * time.Hour,
		MaxRetryAfter:  time.Hour,
		Timeout:        15 * time.Second,
		HeartbeatEvery: 24 * time.Hour,
		KeepDelivered:  30 * 24 * time.Hour,
		Poll:           10 * time.Second,
		ReportEvery:    time.Minute,
	}
}

// Deliverer moves events from the outbox to their endpoints. Network I/O
// never happens inside a store transaction: it reads due deliveries, sends,
// then records the outcomes.
//
// What it logs does not depend on which events are waiting (DESIGN §3): a
// delivery problem is kept as the state of its endpoint and reported by
// ReportHealth on a fixed cadence, never per event, so a failing endpoint
// logs the same lines whether or not a duress event waits for it.
type Deliverer struct {
	Store     *store.Store
	Endpoints []Endpoint
	Policy    Policy
	Client    *http.Client
	Now       func() time.Time
	Log       *slog.Logger

	once  sync.Once
	nudge chan struct{}
	byID  map[string]*Endpoint
	mu    sync.Mutex
	// health is the state of every configured endpoint this process has
	// tried; waiting that of every endpoint id with pending rows and no
	// configuration (an embassy with no URL).
	health    map[string]*health
	waiting   map[string]*unconfigured
	reportAt  time.Time
	lastPrune time.Time
	// lastHold is when holdBack last read the failing endpoints' rows: it
	// decides on thresholds of minutes and hours, not on every round.
	lastHold time.Time
	// heartbeatCheck is when to next ask the store about heartbeats.
	heartbeatCheck time.Time
}

// health is what the deliverer knows of one endpoint. Backoff is the
// endpoint's, counted in its consecutive failed requests, not in the
// attempts of whichever event happened to be tried: how often a failing
// endpoint is probed does not depend on what waits for it.
type health struct {
	since    time.Time // failing since (zero: healthy)
	fails    int       // consecutive failed requests
	until    time.Time // no request before (after a failure)
	status   string    // class of the last failure: "5xx", "timeout", …
	reported bool      // the last report said failing
	probed   bool      // its secondary was sent a probe in this outage
	// Since the last report:
	blip     bool   // failed and recovered without being reported
	rejected string // class of a 4xx that refused one event
	givenUp  bool   // non-critical events were given up
}

// unconfigured is an endpoint id that events wait for with no URL.
type unconfigured struct {
	since    time.Time
	present  bool // seen in the last round
	reported bool
}

// maxBatch bounds the deliveries one round reads (with their bodies).
const maxBatch = 1024

func (d *Deliverer) init() {
	d.once.Do(func() {
		d.nudge = make(chan struct{}, 1)
		d.byID = map[string]*Endpoint{}
		for i := range d.Endpoints {
			d.byID[d.Endpoints[i].ID] = &d.Endpoints[i]
		}
		d.health = map[string]*health{}
		d.waiting = map[string]*unconfigured{}
		if d.Client == nil {
			d.Client = &http.Client{Timeout: d.Policy.Timeout,
				// A redirected POST becomes a bodiless GET that may answer 200:
				// never follow; a 3xx is a failure the operator must fix.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
		if d.Now == nil {
			d.Now = time.Now
		}
		if d.Log == nil {
			d.Log = slog.Default()
		}
		if d.Policy.ReportEvery <= 0 {
			d.Policy.ReportEvery = time.Minute
		}
	})
}

// Nudge asks for an immediate round, after a commit recorded events. It
// never blocks.
func (d *Deliverer) Nudge() {
	d.init()
	select {
	case d.nudge <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, and reports endpoint health every
// Policy.ReportEvery from a goroutine of its own, so when a report is
// written never depends on when events arrive or how long a round takes.
func (d *Deliverer) Run(ctx context.Context) error {
	d.init()
	var reporter sync.WaitGroup
	reporter.Go(func() {
		tick := time.NewTicker(d.Policy.ReportEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				d.ReportHealth()
			}
		}
	})
	defer reporter.Wait()
	for {
		next, err := d.Round(ctx)
		if err != nil {
			d.Log.Error("webhook round failed", "err", err)
		}
		sleep := d.Policy.Poll
		if err == nil && !next.IsZero() {
			// next at or before now: more is due at once (a productive
			// round, a batch cut at maxBatch): go round again without
			// sleeping.
			sleep = min(max(next.Sub(d.Now()), 0), sleep)
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-d.nudge:
			t.Stop()
		case <-t.C:
		}
	}
}

// Round does one pass: heartbeats, routing of new events, every due
// attempt, the outcomes, and pruning. Each case's events go out one after
// the other in the same round, each as soon as the one before it is
// delivered. It returns when the next attempt is due (zero if nothing
// waits); a time not after now means go again at once.
func (d *Deliverer) Round(ctx context.Context) (time.Time, error) {
	d.init()
	now := d.Now()
	if d.Policy.HeartbeatEvery > 0 && now.After(d.heartbeatCheck) {
		// The store decides (it remembers the last heartbeat across
		// restarts); asking it once a minute spares a write per round.
		d.heartbeatCheck = now.Add(time.Minute)
		for _, ep := range d.Endpoints {
			if _, err := d.Store.Heartbeat(ep.ID, ep.Embassy, now, d.Policy.HeartbeatEvery); err != nil {
				return time.Time{}, err
			}
		}
	}
	if err := d.probeSecondaries(now); err != nil {
		return time.Time{}, err
	}
	if _, err := d.Store.Route(now, d.targets); err != nil {
		return time.Time{}, err
	}
	var next time.Time
	d.mu.Lock()
	backingOff := map[string]bool{}
	for id, h := range d.health {
		if now.Before(h.until) {
			backingOff[id] = true
			next = earliest(next, h.until)
		}
	}
	d.mu.Unlock()
	batch, err := d.Store.DueChains(now, func(id string) bool { return backingOff[id] || d.byID[id] == nil }, maxBatch)
	if err != nil {
		return time.Time{}, err
	}
	if !batch.More {
		d.noteUnconfigured(now, batch.Endpoints) // a cut batch does not list them all
	}
	next = earliest(next, batch.Next)
	if batch.More {
		next = earliest(next, now)
	}
	byEndpoint := map[string][]store.Chain{}
	var order []string
	for _, c := range batch.Chains {
		if _, ok := byEndpoint[c.Endpoint]; !ok {
			order = append(order, c.Endpoint)
		}
		byEndpoint[c.Endpoint] = append(byEndpoint[c.Endpoint], c)
	}

	// Endpoints in parallel; within one endpoint case by case in waves
	// (every case's first event, then every case's second, …), stopping
	// at the first failure so a dead endpoint is not hammered. Each wave's
	// outcomes are recorded before the next wave is sent.
	var wg sync.WaitGroup
	results := make([][]store.Attempt, len(order))
	errs := make([]error, len(order))
	for i, id := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = d.deliverChains(ctx, id, byEndpoint[id])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return time.Time{}, err
	}
	var attempts []store.Attempt
	for i := range results {
		attempts = append(attempts, results[i]...)
	}
	for _, a := range attempts {
		if !a.OK && !a.GiveUp {
			next = earliest(next, a.NextAt)
		}
		if a.Secondary != "" {
			next = earliest(next, now) // the new secondary row is due at once
		}
	}
	if ctx.Err() == nil && now.Sub(d.lastHold) >= min(d.Policy.SecondaryAfter/10, 10*time.Second) {
		d.lastHold = now
		held, err := d.holdBack()
		if err != nil {
			return time.Time{}, err
		}
		if len(held) > 0 {
			if err := d.Store.RecordAttempts(d.Now(), held); err != nil {
				return time.Time{}, err
			}
			for _, a := range held {
				if a.Secondary != "" {
					next = earliest(next, now)
				}
			}
		}
	}
	if d.Policy.KeepDelivered > 0 && now.Sub(d.lastPrune) > time.Hour {
		d.lastPrune = now
		if _, err := d.Store.Prune(now.Add(-d.Policy.KeepDelivered)); err != nil {
			return next, err
		}
	}
	return next, nil
}

// probeSecondaries records a heartbeat for the secondary endpoint of every
// primary that has failed for SecondaryAfter, once per outage. Critical
// events then go there too; without the probe the secondary would be tried
// — and its failure logged — only when a critical event waits, which is
// what a reader of the log must not learn.
func (d *Deliverer) probeSecondaries(now time.Time) error {
	type probe struct {
		ep      *Endpoint
		failing time.Duration
	}
	var probes []probe
	d.mu.Lock()
	for id, h := range d.health {
		ep := d.byID[id]
		if ep == nil || ep.Secondary == "" || d.byID[ep.Secondary] == nil || h.since.IsZero() || h.probed {
			continue
		}
		if f := now.Sub(h.since); f >= d.Policy.SecondaryAfter {
			h.probed = true
			probes = append(probes, probe{d.byID[ep.Secondary], f})
		}
	}
	d.mu.Unlock()
	for _, p := range probes {
		// "None recorded within the outage so far": one per outage, also
		// across a restart.
		if _, err := d.Store.Heartbeat(p.ep.ID, p.ep.Embassy, now, p.failing); err != nil {
			return err
		}
	}
	return nil
}

// noteUnconfigured keeps, for the health report, which endpoint ids have
// events waiting and no configuration.
func (d *Deliverer) noteUnconfigured(now time.Time, ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.waiting {
		u.present = false
	}
	for _, id := range ids {
		if d.byID[id] != nil {
			continue
		}
		u := d.waiting[id]
		if u == nil {
			u = &unconfigured{since: now}
			d.waiting[id] = u
		}
		u.present = true
	}
}

// ReportHealth logs the state of every endpoint with a delivery problem,
// at most once per Policy.ReportEvery (Run calls it on that cadence; a
// caller driving Round with its own clock calls it too). Lines name the
// endpoint, how long it has failed and the class of the last failure —
// never an event, its type, severity or case, nor counts of waiting events,
// which a duress event would move by one.
func (d *Deliverer) ReportHealth() {
	d.init()
	now := d.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.reportAt.IsZero() && now.Before(d.reportAt) {
		return
	}
	d.reportAt = now.Add(d.Policy.ReportEvery)
	for _, id := range slices.Sorted(maps.Keys(d.health)) {
		h := d.health[id]
		switch {
		case !h.since.IsZero() && !h.reported:
			h.reported = true
			d.Log.Warn("webhook endpoint failing; events for it wait and are retried",
				"endpoint", id, "failing_for", now.Sub(h.since).Round(time.Second), "last_status", h.status)
		case !h.since.IsZero():
			d.Log.Warn("webhook endpoint still failing; events for it wait and are retried",
				"endpoint", id, "failing_for", now.Sub(h.since).Round(time.Second), "last_status", h.status)
		case h.reported:
			h.reported = false
			d.Log.Info("webhook endpoint recovered", "endpoint", id)
		case h.blip:
			d.Log.Warn("webhook endpoint failed and recovered since the last report",
				"endpoint", id, "last_status", h.status)
		}
		if h.rejected != "" {
			d.Log.Warn("webhook endpoint refused events (4xx); they are retried: check its URL and secret",
				"endpoint", id, "last_status", h.rejected)
		}
		if h.givenUp {
			d.Log.Error("webhook endpoint failing too long: informational events given up (kept in the audit archive)",
				"endpoint", id)
		}
		h.blip, h.rejected, h.givenUp = false, "", false
	}
	for _, id := range slices.Sorted(maps.Keys(d.waiting)) {
		u := d.waiting[id]
		switch {
		case u.present:
			u.reported = true
			d.Log.Warn("webhook events wait for an embassy with no webhook URL; set its webhook_url",
				"embassy", id, "waiting_for", now.Sub(u.since).Round(time.Second))
		case u.reported:
			d.Log.Info("webhook events for an embassy with no webhook URL: none waiting any more", "embassy", id)
			delete(d.waiting, id)
		default:
			delete(d.waiting, id)
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// targets routes an event: the embassy's primary endpoint gets every type,
// partners the types they chose, a heartbeat only its own endpoint.
//
// An embassy with no endpoint configured still gets a row under its id:
// the event waits (and the operator is told) until a URL is configured,
// instead of being routed to nobody. Events of high and critical severity
// never give up and also go to a secondary URL.
func (d *Deliverer) targets(ev store.Event) []store.Target {
	critical := ev.Severity != dialogs.SeverityInfo
	if ev.Type == dialogs.EventEndpointHeartbeat {
		if id, _ := ev.Details["endpoint"].(string); d.byID[id] != nil {
			return []store.Target{{Endpoint: id}}
		}
		return nil
	}
	var out []store.Target
	primary := false
	for _, ep := range d.Endpoints {
		if ep.Embassy != ev.EmbassyID || ep.Backup {
			continue
		}
		primary = primary || ep.Events == nil
		if ep.Events != nil && !slices.Contains(ep.Events, ev.Type) {
			continue
		}
		out = append(out, store.Target{Endpoint: ep.ID, Critical: critical})
	}
	if !primary {
		id := ev.EmbassyID
		if id == "" {
			id = "unrouted" // no embassy serves this citizen: configuration error
		}
		out = append(out, store.Target{Endpoint: id, Critical: critical})
	}
	return out
}

// holdBack decides about everything owed to failing endpoints, attempted
// or waiting its turn: a critical event also goes to the secondary URL once
// the endpoint has failed for SecondaryAfter; a non-critical one is given
// up after GiveUpAfter. Only failing endpoints' rows are read.
func (d *Deliverer) holdBack() ([]store.Attempt, error) {
	d.mu.Lock()
	failing := map[string]time.Time{}
	for id, h := range d.health {
		if !h.since.IsZero() && d.byID[id] != nil {
			failing[id] = h.since
		}
	}
	d.mu.Unlock()
	now := d.Now()
	var out []store.Attempt
	for _, id := range slices.Sorted(maps.Keys(failing)) {
		ep, since := d.byID[id], failing[id]
		rows, err := d.Store.PendingOf(id)
		if err != nil {
			return nil, err
		}
		for _, dd := range rows {
			switch {
			case dd.Critical && ep.Secondary != "" && !dd.SecondaryQueued && now.Sub(since) >= d.Policy.SecondaryAfter:
				out = append(out, store.Attempt{Endpoint: ep.ID, Seq: dd.Seq, NotAttempted: true, Secondary: ep.Secondary})
			case !dd.Critical && d.Policy.GiveUpAfter > 0 && !dd.FirstFailure.IsZero() && now.Sub(dd.FirstFailure) >= d.Policy.GiveUpAfter:
				out = append(out, store.Attempt{Endpoint: ep.ID, Seq: dd.Seq, NotAttempted: true, GiveUp: true,
					Err: "endpoint failing"})
				d.mu.Lock()
				d.health[id].givenUp = true
				d.mu.Unlock()
			}
		}
	}
	return out, nil
}

// deliverChains attempts one endpoint's chains in waves: the first event
// of every chain (critical ones first), then the second of every chain
// whose first was delivered, and so on, recording each wave's outcomes
// before the next. A refused event ends its own chain (its case waits); any
// other failure ends the endpoint's turn.
func (d *Deliverer) deliverChains(ctx context.Context, id string, chains []store.Chain) ([]store.Attempt, error) {
	ep := d.byID[id]
	var all []store.Attempt
	if ep == nil {
		return nil, nil // not configured: reported by ReportHealth, never attempted
	}
	live := slices.Clone(chains)
	for wave := 0; len(live) > 0; wave++ {
		// Critical first: only one event per case is in a wave, so this
		// keeps per-case order.
		slices.SortStableFunc(live, func(a, b store.Chain) int {
			switch ca, cb := a.Items[wave].Critical, b.Items[wave].Critical; {
			case ca == cb:
				return 0
			case ca:
				return -1
			}
			return 1
		})
		var out []store.Attempt
		var cont []store.Chain
		stop := false
		for _, c := range live {
			a := d.attempt(ctx, ep, c.Items[wave])
			if !a.OK && ctx.Err() != nil {
				stop = true // shutting down: not the endpoint's failure, record nothing
				break
			}
			out = append(out, a)
			if a.OK {
				if wave+1 < len(c.Items) {
					cont = append(cont, c)
				}
				continue
			}
			if strings.HasPrefix(a.Err, errRejected.Error()) {
				continue // this event's problem, not the endpoint's: go on with the next case
			}
			stop = true
			break
		}
		if len(out) > 0 {
			if err := d.Store.RecordAttempts(d.Now(), out); err != nil {
				return all, err
			}
			all = append(all, out...)
		}
		if stop {
			break
		}
		live = cont
	}
	return all, nil
}

// attempt sends one event, signed with a fresh timestamp, and decides what
// follows a failure. It keeps the endpoint's health; it logs nothing.
func (d *Deliverer) attempt(ctx context.Context, ep *Endpoint, dd store.DueDelivery) store.Attempt {
	a := store.Attempt{Endpoint: ep.ID, Seq: dd.Seq}
	retryAfter, class, err := d.post(ctx, ep, dd)
	now := d.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.health[ep.ID]
	if h == nil {
		h = &health{}
		d.health[ep.ID] = h
	}
	rejected := errors.Is(err, errRejected)
	if err == nil || rejected {
		// Delivered, or refused as malformed: either way the endpoint
		// answers, so it is healthy.
		if !h.since.IsZero() {
			h.blip = !h.reported
		}
		h.since, h.fails, h.until, h.probed = time.Time{}, 0, time.Time{}, false
		if err == nil {
			a.OK = true
			return a
		}
	}
	if ctx.Err() != nil {
		return a
	}
	a.Err = err.Error()
	// The retry delay: a refused event counts its own attempts (the
	// endpoint is up); an endpoint failure counts the endpoint's.
	n := dd.Attempts
	if !rejected {
		if h.since.IsZero() {
			h.since = now
		}
		h.fails++
		h.status = class
		n = h.fails - 1
	} else {
		h.rejected = class
	}
	delay := d.Policy.Retry[min(n, len(d.Policy.Retry)-1)]
	if d.Policy.Jitter > 0 {
		delay = time.Duration(float64(delay) * (1 + d.Policy.Jitter*(2*rand.Float64()-1)))
	}
	if retryAfter > delay {
		delay = min(retryAfter, d.Policy.MaxRetryAfter)
	}
	a.NextAt = now.Add(delay)
	if !rejected {
		h.until = a.NextAt
	}
	// Giving up counts this event's own failures; the secondary URL counts
	// the endpoint's too (an event queued behind an outage waited as long).
	eventSince := dd.FirstFailure
	if eventSince.IsZero() {
		eventSince = now
	}
	failingSince := eventSince
	if !h.since.IsZero() && h.since.Before(failingSince) {
		failingSince = h.since
	}
	switch {
	case dd.Critical && ep.Secondary != "" && !dd.SecondaryQueued && now.Sub(failingSince) >= d.Policy.SecondaryAfter:
		a.Secondary = ep.Secondary
	case !dd.Critical && d.Policy.GiveUpAfter > 0 && now.Sub(eventSince) >= d.Policy.GiveUpAfter:
		a.GiveUp = true
		h.givenUp = true
	}
	return a
}

// errRejected marks a failure particular to one event (a 4xx other than
// 408 and 429): the endpoint is up, so later events need not wait for it.
var errRejected = errors.New("rejected")

// post sends the request. It returns the receiver's Retry-After, if any,
// and the class of a failure for the health report ("5xx", "4xx", "3xx",
// "timeout", "connection"): never the URL, which may carry a token.
func (d *Deliverer) post(ctx context.Context, ep *Endpoint, dd store.DueDelivery) (time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.Policy.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(dd.Body))
	if err != nil {
		return 0, "invalid URL", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "checkinbot-webhooks/1")
	Sign(req.Header, ep.Secrets, dd.EventID, d.Now(), dd.Body)
	resp, err := d.Client.Do(req)
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return 0, "timeout", fmt.Errorf("timed out after %s", d.Policy.Timeout)
		}
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // drop the URL: it may carry a token
		}
		return 0, "connection", fmt.Errorf("connection failed: %v", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, "", nil
	}
	class := fmt.Sprintf("%dxx", resp.StatusCode/100)
	err = fmt.Errorf("HTTP %d", resp.StatusCode)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout &&
		resp.StatusCode != http.StatusTooManyRequests {
		err = fmt.Errorf("%w: HTTP %d", errRejected, resp.StatusCode)
	}
	return parseRetryAfter(resp.Header.Get("Retry-After"), d.Now()), class, err
}

// parseRetryAfter reads seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
