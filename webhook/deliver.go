package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	}
}

// Deliverer moves events from the outbox to their endpoints. Network I/O
// never happens inside a store transaction: it reads due deliveries, sends,
// then records the outcomes.
type Deliverer struct {
	Store     *store.Store
	Endpoints []Endpoint
	Policy    Policy
	Client    *http.Client
	Now       func() time.Time
	Log       *slog.Logger

	once      sync.Once
	nudge     chan struct{}
	byID      map[string]*Endpoint
	mu        sync.Mutex
	backoff   map[string]time.Time // endpoint → no attempts before (after a failure)
	failing   map[string]time.Time // endpoint → failing since (this process)
	lastPrune time.Time
	// heartbeatCheck is when to next ask the store about heartbeats.
	heartbeatCheck time.Time
}

func (d *Deliverer) init() {
	d.once.Do(func() {
		d.nudge = make(chan struct{}, 1)
		d.byID = map[string]*Endpoint{}
		for i := range d.Endpoints {
			d.byID[d.Endpoints[i].ID] = &d.Endpoints[i]
		}
		d.backoff = map[string]time.Time{}
		d.failing = map[string]time.Time{}
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

// Run delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) error {
	d.init()
	for {
		next, err := d.Round(ctx)
		if err != nil {
			d.Log.Error("webhook round failed", "err", err)
		}
		sleep := d.Policy.Poll
		if !next.IsZero() {
			sleep = min(max(next.Sub(d.Now()), 10*time.Millisecond), sleep)
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
// attempt, the outcomes, and pruning. It returns when the next attempt is
// due (zero if nothing waits).
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
	if _, err := d.Store.Route(now, d.targets); err != nil {
		return time.Time{}, err
	}
	due, next, err := d.Store.DueDeliveries(now)
	if err != nil {
		return time.Time{}, err
	}
	byEndpoint := map[string][]store.DueDelivery{}
	var order []string
	var attempts []store.Attempt
	d.mu.Lock()
	for _, dd := range due {
		if until, ok := d.backoff[dd.Endpoint]; ok && now.Before(until) {
			next = earliest(next, until)
			continue
		}
		if _, ok := byEndpoint[dd.Endpoint]; !ok {
			order = append(order, dd.Endpoint)
		}
		byEndpoint[dd.Endpoint] = append(byEndpoint[dd.Endpoint], dd)
	}
	d.mu.Unlock()
	for _, id := range order {
		// Critical first: only one event per case is ever due at a time, so
		// this keeps per-case order.
		slices.SortStableFunc(byEndpoint[id], func(a, b store.DueDelivery) int {
			switch {
			case a.Critical == b.Critical:
				return 0
			case a.Critical:
				return -1
			}
			return 1
		})
	}

	// Endpoints in parallel; within one endpoint in recording order,
	// stopping at the first failure so a dead endpoint is not hammered.
	var wg sync.WaitGroup
	results := make([][]store.Attempt, len(order))
	for i, id := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.deliverAll(ctx, id, byEndpoint[id])
		}()
	}
	wg.Wait()
	for i := range results {
		attempts = append(attempts, results[i]...)
	}
	if ctx.Err() == nil {
		held, err := d.holdBack()
		if err != nil {
			return time.Time{}, err
		}
		attempts = append(attempts, held...)
	}
	if len(attempts) > 0 {
		if err := d.Store.RecordAttempts(d.Now(), attempts); err != nil {
			return time.Time{}, err
		}
		for _, a := range attempts {
			if !a.OK && !a.GiveUp {
				next = earliest(next, a.NextAt)
			}
			if a.Secondary != "" {
				next = earliest(next, now) // the new secondary row is due at once
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
// up after GiveUpAfter.
func (d *Deliverer) holdBack() ([]store.Attempt, error) {
	d.mu.Lock()
	anyFailing := len(d.failing) > 0
	d.mu.Unlock()
	if !anyFailing {
		return nil, nil
	}
	rows, err := d.Store.Pending()
	if err != nil {
		return nil, err
	}
	now := d.Now()
	var out []store.Attempt
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dd := range rows {
		ep, since := d.byID[dd.Endpoint], d.failing[dd.Endpoint]
		if ep == nil || since.IsZero() {
			continue
		}
		switch {
		case dd.Critical && ep.Secondary != "" && !dd.SecondaryQueued && now.Sub(since) >= d.Policy.SecondaryAfter:
			out = append(out, store.Attempt{Endpoint: ep.ID, Seq: dd.Seq, NotAttempted: true, Secondary: ep.Secondary})
			d.Log.Warn("webhook endpoint failing; critical event also sent to the secondary URL",
				"endpoint", ep.ID, "event", dd.EventID, "failing_for", now.Sub(since).Round(time.Second))
		case !dd.Critical && d.Policy.GiveUpAfter > 0 && !dd.FirstFailure.IsZero() && now.Sub(dd.FirstFailure) >= d.Policy.GiveUpAfter:
			out = append(out, store.Attempt{Endpoint: ep.ID, Seq: dd.Seq, NotAttempted: true, GiveUp: true,
				Err: "endpoint failing"})
			d.Log.Error("webhook delivery given up; the event stays in the audit archive",
				"endpoint", ep.ID, "event", dd.EventID, "failing_for", now.Sub(dd.FirstFailure).Round(time.Second))
		}
	}
	return out, nil
}

// deliverAll attempts one endpoint's due deliveries in order, stopping at
// the first failure.
func (d *Deliverer) deliverAll(ctx context.Context, id string, due []store.DueDelivery) []store.Attempt {
	ep := d.byID[id]
	var out []store.Attempt
	for _, dd := range due {
		if ep == nil {
			// The endpoint left the configuration: keep the row, retry
			// later, and tell the operator.
			d.Log.Error("webhook endpoint not configured", "endpoint", id, "event", dd.EventID)
			out = append(out, store.Attempt{Endpoint: id, Seq: dd.Seq, Err: "endpoint not configured",
				NextAt: d.Now().Add(d.Policy.Retry[len(d.Policy.Retry)-1])})
			return out
		}
		a := d.attempt(ctx, ep, dd)
		if !a.OK && ctx.Err() != nil {
			return out // shutting down: not the endpoint's failure, record nothing
		}
		out = append(out, a)
		if !a.OK && strings.HasPrefix(a.Err, errRejected.Error()) {
			continue // this event's problem, not the endpoint's: go on with the next
		}
		if !a.OK {
			d.mu.Lock()
			d.backoff[id] = a.NextAt
			if _, ok := d.failing[id]; !ok {
				d.failing[id] = d.Now()
			}
			d.mu.Unlock()
			return out
		}
	}
	d.mu.Lock()
	delete(d.backoff, id)
	delete(d.failing, id)
	d.mu.Unlock()
	return out
}

// attempt sends one event, signed with a fresh timestamp, and decides what
// follows a failure.
func (d *Deliverer) attempt(ctx context.Context, ep *Endpoint, dd store.DueDelivery) store.Attempt {
	a := store.Attempt{Endpoint: ep.ID, Seq: dd.Seq}
	retryAfter, err := d.post(ctx, ep, dd)
	now := d.Now()
	if err == nil {
		a.OK = true
		return a
	}
	if ctx.Err() != nil {
		return a
	}
	a.Err = err.Error()
	// Giving up counts this event's own failures; the secondary URL counts
	// the endpoint's too (an event queued behind an outage waited as long).
	eventSince := dd.FirstFailure
	if eventSince.IsZero() {
		eventSince = now
	}
	failingSince := eventSince
	d.mu.Lock()
	if since, ok := d.failing[ep.ID]; ok && since.Before(failingSince) {
		failingSince = since
	}
	d.mu.Unlock()
	delay := d.Policy.Retry[min(dd.Attempts, len(d.Policy.Retry)-1)]
	if d.Policy.Jitter > 0 {
		delay = time.Duration(float64(delay) * (1 + d.Policy.Jitter*(2*rand.Float64()-1)))
	}
	if retryAfter > delay {
		delay = min(retryAfter, d.Policy.MaxRetryAfter)
	}
	a.NextAt = now.Add(delay)
	switch {
	case dd.Critical && ep.Secondary != "" && !dd.SecondaryQueued && now.Sub(failingSince) >= d.Policy.SecondaryAfter:
		a.Secondary = ep.Secondary
		d.Log.Warn("webhook endpoint failing; critical event also sent to the secondary URL",
			"endpoint", ep.ID, "event", dd.EventID, "failing_for", now.Sub(failingSince).Round(time.Second))
	case !dd.Critical && d.Policy.GiveUpAfter > 0 && now.Sub(eventSince) >= d.Policy.GiveUpAfter:
		a.GiveUp = true
		d.Log.Error("webhook delivery given up; the event stays in the audit archive",
			"endpoint", ep.ID, "event", dd.EventID, "attempts", dd.Attempts+1, "last_error", a.Err)
	default:
		d.Log.Warn("webhook delivery failed; will retry", "endpoint", ep.ID, "event", dd.EventID,
			"attempt", dd.Attempts+1, "err", a.Err, "retry_in", delay.Round(time.Millisecond))
	}
	return a
}

// errRejected marks a failure particular to one event (a 4xx other than
// 408 and 429): the endpoint is up, so later events need not wait for it.
var errRejected = errors.New("rejected")

// post sends the request. It returns the receiver's Retry-After, if any.
func (d *Deliverer) post(ctx context.Context, ep *Endpoint, dd store.DueDelivery) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d.Policy.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(dd.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "checkinbot-webhooks/1")
	Sign(req.Header, ep.Secrets, dd.EventID, d.Now(), dd.Body)
	resp, err := d.Client.Do(req)
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return 0, fmt.Errorf("timed out after %s", d.Policy.Timeout)
		}
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // drop the URL: it may carry a token
		}
		return 0, fmt.Errorf("connection failed: %v", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	err = fmt.Errorf("HTTP %d", resp.StatusCode)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout &&
		resp.StatusCode != http.StatusTooManyRequests {
		err = fmt.Errorf("%w: HTTP %d", errRejected, resp.StatusCode)
	}
	return parseRetryAfter(resp.Header.Get("Retry-After"), d.Now()), err
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
