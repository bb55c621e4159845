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
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
)

// Outbox is what the Deliverer needs from storage: the escalation outbox
// and its per-endpoint delivery rows (*boltstore.Store implements it; the
// tests also use an in-memory one). The Deliverer calls it outside any
// transaction and never does network I/O inside a call.
type Outbox interface {
	// Route gives every outbox event not yet routed a pending row for each
	// of targets(event), in one transaction; targets must be pure.
	Route(now time.Time, targets func(escalation.Event) []escalation.Target) (int, error)
	// DueChains returns the runs of pending deliveries that may be sent at
	// now, each case's in recording order from its head, skipping the
	// endpoints skip names, up to limit deliveries (0: no limit).
	DueChains(now time.Time, skip func(endpoint string) bool, limit int) (escalation.DueBatch, error)
	// DueOfType returns every pending delivery of one event type due at
	// now, with its body (the prober's heartbeats).
	DueOfType(typ escalation.Type, now time.Time) ([]escalation.DueDelivery, error)
	// PendingOf returns every delivery still owed to endpoint, in
	// recording order.
	PendingOf(endpoint string) ([]escalation.Delivery, error)
	// RecordAttempts stores the outcomes of one round in one transaction;
	// an attempt without an outcome is an error.
	RecordAttempts(now time.Time, attempts []escalation.Attempt) error
	// Heartbeat records an endpoint.heartbeat for endpoint unless one was
	// recorded within every, and reports whether it did.
	Heartbeat(endpoint, embassy string, now time.Time, every time.Duration) (bool, error)
	// Prune deletes archived deliveries and delivered events older than
	// cutoff.
	Prune(cutoff time.Time) (int, error)
}

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
	// often, so a dead endpoint, a wrong secret or a receiver that fails
	// every POST is found before a real alert. Zero: none. Heartbeats are
	// recorded and sent by the prober on its ReportEvery cadence, never by
	// the delivery loop, so their outcome (which is logged) cannot move
	// with the events that wait.
	HeartbeatEvery time.Duration
	// KeepDelivered: how long delivered events are kept for audit.
	KeepDelivered time.Duration
	// Poll is the longest the loop sleeps: the guarantee behind the
	// immediate attempt after each commit.
	Poll time.Duration
	// ReportEvery is the cadence of the prober: an unsigned HEAD to every
	// endpoint, the heartbeats that are due, then the health report, the
	// only place delivery problems are logged. Zero: one minute.
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
// What it logs does not depend on whether any event exists (DESIGN §3,
// issue 9 item 7). Event deliveries keep their retries, backoff and
// secondary URL but never write a log line, nor feed one: everything
// logged comes from the prober (ReportHealth), which on a fixed cadence
// sends every endpoint an unsigned HEAD — reachable or failing — and the
// signed endpoint.heartbeat when one is due, whatever waits. Learning an
// endpoint's health from event deliveries would tell a reader of the log
// that an event (a duress check-in, a wrong guess of the secret word) was
// recorded: only the duress session has one to deliver.
type Deliverer struct {
	// Store is where events wait and outcomes are recorded.
	Store     Outbox
	Endpoints []Endpoint
	Policy    Policy
	Client    *http.Client
	Now       func() time.Time
	Log       *slog.Logger

	once  sync.Once
	nudge chan struct{}
	byID  map[string]*Endpoint
	mu    sync.Mutex
	// health is what event deliveries taught about every configured
	// endpoint this process has tried (backoff, secondary URL; never
	// logged); reach what the prober learnt (the only source of log
	// lines); waiting is every endpoint id with pending rows and no
	// configuration (an embassy with no URL).
	health   map[string]*health
	reach    map[string]*reach
	waiting  map[string]*unconfigured
	reportAt time.Time
	// lastHold is when holdBack last read the failing endpoints' rows: it
	// decides on thresholds of minutes and hours, not on every round.
	lastHold time.Time
	// probing serialises the prober's ticks (Run's ticker, a caller's
	// ReportHealth).
	probing sync.Mutex
}

// health is what event deliveries taught about one endpoint: it paces
// retries and sends critical events to the secondary URL, and is never
// logged. Backoff is the endpoint's, counted in its consecutive failed
// requests, not in the attempts of whichever event happened to be tried.
type health struct {
	since time.Time // failing since (zero: healthy)
	fails int       // consecutive failed requests
	until time.Time // no request before (after a failure)
}

// reach is what the prober learnt about one endpoint, at fixed times
// whatever events exist: everything the health report says comes from
// here.
type reach struct {
	since    time.Time // the HEAD probe has failed since (zero: reachable)
	status   string    // class of the last failed probe: "5xx", "timeout", …
	reported bool      // the last report said failing
	// secondary: the endpoint's secondary URL was sent a heartbeat in this
	// outage (one per outage, decided by the probe's failing time).
	secondary bool
	// heartbeat is how the endpoint answered the last attempt of its
	// signed heartbeat when it did not accept it ("401", "5xx", …; "":
	// accepted, or none sent yet); heartbeatReported: the last report said
	// so.
	heartbeat         string
	heartbeatReported bool
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
		d.reach = map[string]*reach{}
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

// Run delivers until ctx ends, and probes and reports endpoint health every
// Policy.ReportEvery from a goroutine of its own, so when a probe is sent
// or a report written never depends on when events arrive or how long a
// round takes. Pruning (Policy.KeepDelivered) runs on a third goroutine,
// at start and hourly, so a round never waits for a whole prune.
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
				d.probeAndReport(ctx)
			}
		}
	})
	reporter.Go(func() { d.pruneLoop(ctx) })
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

// Round does one pass: routing of new events, every due attempt and the
// outcomes (pruning is Run's, on its own goroutine). Each case's events go out one after the other in
// the same round, each as soon as the one before it is delivered. It
// returns when the next attempt is due (zero if nothing waits); a time not
// after now means go again at once. Heartbeats are the prober's: a round
// leaves them alone. A round logs nothing but its own store errors.
func (d *Deliverer) Round(ctx context.Context) (time.Time, error) {
	d.init()
	now := d.Now()
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
	byEndpoint := map[string][]escalation.Chain{}
	var order []string
	for _, c := range batch.Chains {
		if c.Items[0].Type == escalation.TypeEndpointHeartbeat {
			continue // the prober sends it, on its own cadence (a heartbeat has no case: its chain is itself)
		}
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
	results := make([][]escalation.Attempt, len(order))
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
	var attempts []escalation.Attempt
	for i := range results {
		attempts = append(attempts, results[i]...)
	}
	for _, a := range attempts {
		if a.Outcome == escalation.AttemptFailed {
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
	return next, nil
}

// pruneEvery is how often Run's pruner deletes what KeepDelivered no
// longer keeps.
const pruneEvery = time.Hour

// pruneLoop prunes at start and every pruneEvery until ctx ends, on its
// own goroutine: a prune (batched in the store, but long at a million
// registrants) never holds up a delivery round, and a round never holds up
// a prune. Its errors are logged without any event detail.
func (d *Deliverer) pruneLoop(ctx context.Context) {
	if d.Policy.KeepDelivered <= 0 {
		return
	}
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		if _, err := d.Store.Prune(d.Now().Add(-d.Policy.KeepDelivered)); err != nil && ctx.Err() == nil {
			d.Log.Error("webhook prune failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
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

// ReportHealth probes every endpoint and logs the state of those with a
// problem, at most once per Policy.ReportEvery of the Deliverer's clock
// (Run probes on that cadence itself; a caller driving Round with its own
// clock calls this after each round).
func (d *Deliverer) ReportHealth() {
	d.init()
	d.mu.Lock()
	now := d.Now()
	if !d.reportAt.IsZero() && now.Before(d.reportAt) {
		d.mu.Unlock()
		return
	}
	d.reportAt = now.Add(d.Policy.ReportEvery)
	d.mu.Unlock()
	d.probeAndReport(context.Background())
}

// probeAndReport is one tick of the prober, the only source of delivery
// log lines. It does the same work at the same moments whether or not
// events wait, and reads nothing that event deliveries learnt:
//
//  1. an unsigned HEAD to every endpoint (primary, secondary, partner):
//     any answer below 500 but 3xx means reachable (a receiver that only
//     accepts signed POSTs answers 401 or 405, which is fine); a 5xx
//     other than 501, a 3xx (deliveries are never redirected), a timeout
//     or a connection error means failing;
//  2. the signed heartbeats: recorded in the outbox when due (every
//     HeartbeatEvery, and once per outage to the secondary URL of a primary
//     whose probe has failed for SecondaryAfter), then sent — with their
//     retries — by this tick and no one else;
//  3. the report: one line per endpoint with a problem.
//
// Lines name the endpoint, how long it has failed and the class of the
// last failure — never an event, its type, severity or case, nor counts of
// waiting events. Network I/O happens outside every store transaction.
func (d *Deliverer) probeAndReport(ctx context.Context) {
	d.init()
	d.probing.Lock()
	defer d.probing.Unlock()
	now := d.Now()

	classes := make([]string, len(d.Endpoints))
	var wg sync.WaitGroup
	for i := range d.Endpoints {
		wg.Go(func() { classes[i] = d.head(ctx, &d.Endpoints[i]) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // shutting down: a cancelled probe says nothing of the endpoint
	}
	d.mu.Lock()
	var outageBeats []*Endpoint
	for i := range d.Endpoints {
		ep := &d.Endpoints[i]
		r := d.reachOf(ep.ID)
		switch {
		case classes[i] == "":
			r.since, r.status, r.secondary = time.Time{}, "", false
		case r.since.IsZero():
			r.since, r.status = now, classes[i]
		default:
			r.status = classes[i]
		}
		if sec := d.byID[ep.Secondary]; sec != nil && !r.since.IsZero() && !r.secondary &&
			now.Sub(r.since) >= d.Policy.SecondaryAfter {
			r.secondary = true
			outageBeats = append(outageBeats, sec)
		}
	}
	d.mu.Unlock()
	if err := d.heartbeats(ctx, now, outageBeats); err != nil {
		d.Log.Error("webhook heartbeat failed", "err", err)
	}
	d.report(now)
}

// reachOf is the prober's state of endpoint id. d.mu must be held.
func (d *Deliverer) reachOf(id string) *reach {
	r := d.reach[id]
	if r == nil {
		r = &reach{}
		d.reach[id] = r
	}
	return r
}

// head sends the unsigned probe and returns "" if the endpoint is
// reachable, else the class of the failure.
func (d *Deliverer) head(ctx context.Context, ep *Endpoint) string {
	ctx, cancel := context.WithTimeout(ctx, d.Policy.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, ep.URL, nil)
	if err != nil {
		return "invalid URL"
	}
	req.Header.Set("User-Agent", "checkinbot-webhooks/1 probe")
	resp, err := d.Client.Do(req)
	if err != nil {
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			return "timeout"
		}
		return "connection"
	}
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 300 && c < 400:
		return "3xx"
	case c >= 500 && c != http.StatusNotImplemented:
		return "5xx"
	}
	return ""
}

// heartbeats records the heartbeats due at now — every endpoint's periodic
// one (the store remembers the last across restarts) and one for each
// secondary in outage — then sends every due heartbeat row, endpoints in
// parallel, and records the outcomes. A heartbeat that fails is retried on
// its own attempts' schedule, at the prober's next ticks.
func (d *Deliverer) heartbeats(ctx context.Context, now time.Time, outage []*Endpoint) error {
	if d.Policy.HeartbeatEvery > 0 {
		for _, ep := range d.Endpoints {
			if _, err := d.Store.Heartbeat(ep.ID, ep.Embassy, now, d.Policy.HeartbeatEvery); err != nil {
				return err
			}
		}
	}
	for _, ep := range outage {
		// "None recorded within the outage so far": one per outage, also
		// across a restart.
		d.mu.Lock()
		failing := now.Sub(d.reachOf(d.primaryOf(ep.ID)).since)
		d.mu.Unlock()
		if _, err := d.Store.Heartbeat(ep.ID, ep.Embassy, now, failing); err != nil {
			return err
		}
	}
	// Route them now, not at the next round: a tick sends what it recorded.
	if _, err := d.Store.Route(now, d.targets); err != nil {
		return err
	}
	due, err := d.Store.DueOfType(escalation.TypeEndpointHeartbeat, now)
	if err != nil {
		return err
	}
	byEndpoint := map[string][]escalation.DueDelivery{}
	for _, dd := range due {
		if d.byID[dd.Endpoint] != nil {
			byEndpoint[dd.Endpoint] = append(byEndpoint[dd.Endpoint], dd)
		}
	}
	var mu sync.Mutex
	var out []escalation.Attempt
	var wg sync.WaitGroup
	for id, rows := range byEndpoint {
		wg.Go(func() {
			for _, dd := range rows {
				a, ok := d.sendHeartbeat(ctx, d.byID[id], dd)
				if !ok {
					return // shutting down
				}
				mu.Lock()
				out = append(out, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(out) == 0 {
		return nil
	}
	return d.Store.RecordAttempts(d.Now(), out)
}

// primaryOf is the endpoint whose secondary is id ("" if none).
func (d *Deliverer) primaryOf(id string) string {
	for _, ep := range d.Endpoints {
		if ep.Secondary == id {
			return ep.ID
		}
	}
	return ""
}

// sendHeartbeat posts one heartbeat and notes how the endpoint answered.
// Its retry delay counts the heartbeat's own attempts, never the
// endpoint's backoff from event deliveries. ok is false when ctx ended.
func (d *Deliverer) sendHeartbeat(ctx context.Context, ep *Endpoint, dd escalation.DueDelivery) (escalation.Attempt, bool) {
	a := escalation.Attempt{Endpoint: ep.ID, Seq: dd.Seq}
	retryAfter, class, err := d.post(ctx, ep, dd)
	if err != nil && ctx.Err() != nil {
		return a, false
	}
	now := d.Now()
	d.mu.Lock()
	d.reachOf(ep.ID).heartbeat = class
	d.mu.Unlock()
	if err == nil {
		a.Outcome = escalation.AttemptDelivered
		return a, true
	}
	a.Err = err.Error()
	a.NextAt = now.Add(d.retryDelay(dd.Attempts, retryAfter))
	first := dd.FirstFailure
	if first.IsZero() {
		first = now
	}
	// A heartbeat is never critical: decide can only give it up. The
	// endpoint's backoff from events does not count (zero endpointSince).
	a.Outcome = escalation.AttemptFailed
	if d.Policy.decide(now, ep, dd.Delivery, first, time.Time{}) == giveUp {
		a.Outcome = escalation.AttemptGaveUp
	}
	return a, true
}

// report writes the health lines of one tick from the prober's state.
func (d *Deliverer) report(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(d.reach)) {
		r := d.reach[id]
		switch {
		case !r.since.IsZero() && !r.reported:
			r.reported = true
			d.Log.Warn("webhook endpoint failing; events for it wait and are retried",
				"endpoint", id, "failing_for", now.Sub(r.since).Round(time.Second), "last_status", r.status)
		case !r.since.IsZero():
			d.Log.Warn("webhook endpoint still failing; events for it wait and are retried",
				"endpoint", id, "failing_for", now.Sub(r.since).Round(time.Second), "last_status", r.status)
		case r.reported:
			r.reported = false
			d.Log.Info("webhook endpoint recovered", "endpoint", id)
		}
		switch {
		case r.heartbeat != "" && r.since.IsZero():
			// Reachable, yet the signed POST is not accepted: every event
			// fails the same way.
			r.heartbeatReported = true
			d.Log.Warn("webhook endpoint is reachable but did not accept the signed heartbeat; events for it wait and are retried: check its URL, secret and receiver",
				"endpoint", id, "last_status", r.heartbeat)
		case r.heartbeat == "" && r.heartbeatReported:
			r.heartbeatReported = false
			d.Log.Info("webhook endpoint accepted the signed heartbeat", "endpoint", id)
		}
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
// Targets is targets for the store's RouteOnRecord: the endpoints an event
// goes to, from the configuration alone (pure, no I/O), so the store can
// route an escalation in the transaction that records it.
func (d *Deliverer) Targets(ev escalation.Event) []escalation.Target {
	d.init()
	return d.targets(ev)
}

// targets returns the endpoints ev goes to.
// An embassy with no endpoint configured still gets a row under its id:
// the event waits (and the operator is told) until a URL is configured,
// instead of being routed to nobody. Events of high and critical severity
// never give up and also go to a secondary URL.
func (d *Deliverer) targets(ev escalation.Event) []escalation.Target {
	critical := ev.Severity.Critical()
	if ev.Type == escalation.TypeEndpointHeartbeat {
		if id, _ := ev.Details["endpoint"].(string); d.byID[id] != nil {
			return []escalation.Target{{Endpoint: id}}
		}
		return nil
	}
	var out []escalation.Target
	primary := false
	for _, ep := range d.Endpoints {
		if ep.Embassy != ev.EmbassyID || ep.Backup {
			continue
		}
		primary = primary || ep.Events == nil
		if ep.Events != nil && !slices.Contains(ep.Events, ev.Type) {
			continue
		}
		out = append(out, escalation.Target{Endpoint: ep.ID, Critical: critical})
	}
	if !primary {
		id := ev.EmbassyID
		if id == "" {
			id = "unrouted" // no embassy serves this citizen: configuration error
		}
		out = append(out, escalation.Target{Endpoint: id, Critical: critical})
	}
	return out
}

// holdBack decides about everything owed to failing endpoints, attempted
// or waiting its turn: a critical event also goes to the secondary URL once
// the endpoint has failed for SecondaryAfter; a non-critical one is given
// up after GiveUpAfter. Only failing endpoints' rows are read.
func (d *Deliverer) holdBack() ([]escalation.Attempt, error) {
	d.mu.Lock()
	failing := map[string]time.Time{}
	for id, h := range d.health {
		if !h.since.IsZero() && d.byID[id] != nil {
			failing[id] = h.since
		}
	}
	d.mu.Unlock()
	now := d.Now()
	var out []escalation.Attempt
	for _, id := range slices.Sorted(maps.Keys(failing)) {
		ep, since := d.byID[id], failing[id]
		rows, err := d.Store.PendingOf(id)
		if err != nil {
			return nil, err
		}
		for _, dd := range rows {
			switch d.Policy.decide(now, ep, dd, dd.FirstFailure, since) {
			case toSecondary:
				out = append(out, escalation.Attempt{Endpoint: ep.ID, Seq: dd.Seq, Outcome: escalation.AttemptHeld,
					Secondary: ep.Secondary})
			case giveUp:
				out = append(out, escalation.Attempt{Endpoint: ep.ID, Seq: dd.Seq, Outcome: escalation.AttemptAbandoned,
					Err: "endpoint failing"})
			}
		}
	}
	return out, nil
}

// decision is what the delivery policy says about an event that failed,
// or waits behind an endpoint that fails.
type decision int

const (
	// keepTrying: retry on the endpoint's schedule.
	keepTrying decision = iota
	// toSecondary: also queue the event for the embassy's secondary URL.
	toSecondary
	// giveUp: stop trying; the row is archived as given up.
	giveUp
)

// decide is the one place the secondary-URL and give-up rules live (DESIGN
// §4), for an event just attempted and for one waiting its turn alike:
//
//   - a critical event goes to ep's secondary URL (once) when it, or the
//     endpoint, has been failing for Policy.SecondaryAfter: an event queued
//     behind an outage waited as long as the outage;
//   - a non-critical event is given up when it has been failing itself for
//     Policy.GiveUpAfter (zero: never). Critical events never give up.
//
// eventSince is when the event first failed (zero: never attempted and
// failed), endpointSince when the endpoint started failing (zero: healthy,
// or an event refused by a healthy endpoint).
func (p Policy) decide(now time.Time, ep *Endpoint, row escalation.Delivery, eventSince, endpointSince time.Time) decision {
	if row.Critical {
		failingSince := earliest(eventSince, endpointSince)
		if ep.Secondary != "" && !row.SecondaryQueued && !failingSince.IsZero() && now.Sub(failingSince) >= p.SecondaryAfter {
			return toSecondary
		}
		return keepTrying
	}
	if p.GiveUpAfter > 0 && !eventSince.IsZero() && now.Sub(eventSince) >= p.GiveUpAfter {
		return giveUp
	}
	return keepTrying
}

// deliverChains attempts one endpoint's chains in waves: the first event
// of every chain (critical ones first), then the second of every chain
// whose first was delivered, and so on, recording each wave's outcomes
// before the next. A refused event ends its own chain (its case waits); any
// other failure ends the endpoint's turn.
func (d *Deliverer) deliverChains(ctx context.Context, id string, chains []escalation.Chain) ([]escalation.Attempt, error) {
	ep := d.byID[id]
	var all []escalation.Attempt
	if ep == nil {
		return nil, nil // not configured: reported by ReportHealth, never attempted
	}
	live := slices.Clone(chains)
	for wave := 0; len(live) > 0; wave++ {
		// Critical first: only one event per case is in a wave, so this
		// keeps per-case order.
		slices.SortStableFunc(live, func(a, b escalation.Chain) int {
			switch ca, cb := a.Items[wave].Critical, b.Items[wave].Critical; {
			case ca == cb:
				return 0
			case ca:
				return -1
			}
			return 1
		})
		var out []escalation.Attempt
		var cont []escalation.Chain
		stop := false
		for _, c := range live {
			a, err := d.attempt(ctx, ep, c.Items[wave])
			if a.Outcome == escalation.AttemptNone {
				stop = true // shutting down: not the endpoint's failure, record nothing
				break
			}
			out = append(out, a)
			if a.Outcome == escalation.AttemptDelivered {
				if wave+1 < len(c.Items) {
					cont = append(cont, c)
				}
				continue
			}
			if errors.Is(err, errRejected) {
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
// follows a failure. It keeps the endpoint's health; it logs nothing. It
// returns the send error too (errRejected: the event's own problem), and
// an attempt without an outcome when ctx ended (nothing to record).
func (d *Deliverer) attempt(ctx context.Context, ep *Endpoint, dd escalation.DueDelivery) (escalation.Attempt, error) {
	a := escalation.Attempt{Endpoint: ep.ID, Seq: dd.Seq}
	retryAfter, _, err := d.post(ctx, ep, dd)
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
		h.since, h.fails, h.until = time.Time{}, 0, time.Time{}
		if err == nil {
			a.Outcome = escalation.AttemptDelivered
			return a, nil
		}
	}
	if ctx.Err() != nil {
		return a, err
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
		n = h.fails - 1
	}
	a.NextAt = now.Add(d.retryDelay(n, retryAfter))
	if !rejected {
		h.until = a.NextAt
	}
	eventSince := dd.FirstFailure
	if eventSince.IsZero() {
		eventSince = now // this attempt is its first failure
	}
	a.Outcome = escalation.AttemptFailed
	switch d.Policy.decide(now, ep, dd.Delivery, eventSince, h.since) {
	case toSecondary:
		a.Secondary = ep.Secondary
	case giveUp:
		a.Outcome = escalation.AttemptGaveUp
	}
	return a, err
}

// retryDelay is the wait after the (n+1)-th consecutive failure, with
// jitter, or the receiver's Retry-After (capped) if that is longer.
func (d *Deliverer) retryDelay(n int, retryAfter time.Duration) time.Duration {
	delay := d.Policy.Retry[min(n, len(d.Policy.Retry)-1)]
	if d.Policy.Jitter > 0 {
		delay = time.Duration(float64(delay) * (1 + d.Policy.Jitter*(2*rand.Float64()-1)))
	}
	if retryAfter > delay {
		delay = min(retryAfter, d.Policy.MaxRetryAfter)
	}
	return delay
}

// errRejected marks a failure particular to one event (a 4xx other than
// 408 and 429): the endpoint is up, so later events need not wait for it.
var errRejected = errors.New("rejected")

// post sends the request. It returns the receiver's Retry-After, if any,
// and the class of a failure ("5xx", "401", "3xx", "timeout",
// "connection"; only a heartbeat's is ever logged): never the URL, which
// may carry a token.
func (d *Deliverer) post(ctx context.Context, ep *Endpoint, dd escalation.DueDelivery) (time.Duration, string, error) {
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
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		class = strconv.Itoa(resp.StatusCode) // 401 and 404 call for different fixes
		if resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			err = fmt.Errorf("%w: HTTP %d", errRejected, resp.StatusCode)
		}
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
