package ops

import (
	"net/http"
	"strconv"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Every label here is a channel name, a priority, an escalation type, a
// delivery outcome, an endpoint id (configuration, not a person), a
// registration status, a connection state, an API route pattern or an
// HTTP status code: bounded sets, none naming a citizen, a chat, an
// embassy or a token.

// meters are the metrics fed from outside (events, attempts, commits).
type meters struct {
	escalations *prometheus.CounterVec
	attempts    *prometheus.CounterVec
	commits     prometheus.Histogram
	apiReqs     *prometheus.CounterVec
	apiLatency  *prometheus.HistogramVec
}

func newMeters(s *Server) *meters {
	m := &meters{
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "checkinbot_escalations_total",
			Help: "Escalations recorded in the outbox since start, by event type."}, []string{"type"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "checkinbot_delivery_attempts_total",
			Help: "Webhook delivery outcomes recorded since start, by outcome (delivered, failed, gave_up, held, abandoned)."}, []string{"outcome"}),
		commits: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "checkinbot_store_commit_seconds",
			Help:    "Duration of one group commit of the data file, fsync included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		apiReqs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "checkinbot_api_requests_total",
			Help: "Embassy API requests answered since start, by route (endpoint pattern, no ids; \"other\" for none) and status code."},
			[]string{"route", "code"}),
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "checkinbot_api_request_seconds",
			Help:    "Time to answer an embassy API request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"route"}),
	}
	for _, t := range escalation.AllTypes {
		m.escalations.WithLabelValues(string(t)) // present at 0 from the start: rate() and alerts see them
	}
	for _, o := range outcomes {
		m.attempts.WithLabelValues(o)
	}
	for _, r := range s.opt.APIRoutes {
		m.apiReqs.WithLabelValues(r, "200")
		m.apiLatency.WithLabelValues(r)
	}
	s.reg.MustRegister(m.escalations, m.attempts, m.commits, m.apiReqs, m.apiLatency, collector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// outcomes are the label values of delivery attempts, by AttemptOutcome.
var outcomes = map[escalation.AttemptOutcome]string{
	escalation.AttemptDelivered: "delivered", escalation.AttemptFailed: "failed", escalation.AttemptGaveUp: "gave_up",
	escalation.AttemptHeld: "held", escalation.AttemptAbandoned: "abandoned",
}

// CountEvents counts escalations just recorded (the runner's OnEvents).
func (s *Server) CountEvents(evs []store.Event) {
	for _, ev := range evs {
		s.m.escalations.WithLabelValues(string(ev.Type)).Inc()
	}
}

// CountAttempts counts one delivery round's recorded outcomes.
func (s *Server) CountAttempts(attempts []escalation.Attempt) {
	for _, a := range attempts {
		if name, ok := outcomes[a.Outcome]; ok {
			s.m.attempts.WithLabelValues(name).Inc()
		}
	}
}

// ObserveAPI records one answered embassy API request (api.Options.Observe).
// route is an endpoint pattern without ids, never an embassy or a token;
// code is the HTTP status.
func (s *Server) ObserveAPI(route string, code int, took time.Duration) {
	s.m.apiReqs.WithLabelValues(route, strconv.Itoa(code)).Inc()
	s.m.apiLatency.WithLabelValues(route).Observe(took.Seconds())
}

// ObserveCommit records one store commit's duration (boltstore's
// SetCommitObserver).
func (s *Server) ObserveCommit(took time.Duration, _ int) {
	s.m.commits.Observe(took.Seconds())
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: nil, ErrorHandling: promhttp.ContinueOnError})
}

// collector reads the runner, the channels and the store at scrape time.
type collector struct{ s *Server }

var (
	descInbound   = prometheus.NewDesc("checkinbot_inbound_total", "Updates received from citizens since start, by channel.", []string{"channel"}, nil)
	descOutbound  = prometheus.NewDesc("checkinbot_outbound_total", "Queued replies the channel accepted (sent) or refused (failed) since start, by channel.", []string{"channel", "result"}, nil)
	descQueued    = prometheus.NewDesc("checkinbot_replies_queued_total", "Replies handed to a channel's queue since start, by priority (safety, reply, reminder).", []string{"priority"}, nil)
	descInFlight  = prometheus.NewDesc("checkinbot_intake_in_flight", "Updates received and not yet processed.", nil, nil)
	descIntakeAge = prometheus.NewDesc("checkinbot_intake_oldest_seconds", "Age of the oldest update not yet processed (0: none).", nil, nil)
	descGivenUp   = prometheus.NewDesc("checkinbot_updates_given_up_total", "Updates that could not be processed however often they came.", nil, nil)
	descWritable  = prometheus.NewDesc("checkinbot_store_writable", "1 while the runner's last write succeeded, 0 during a store outage.", nil, nil)
	descTG429     = prometheus.NewDesc("checkinbot_telegram_rate_limited_total", "429 Too Many Requests answers from Telegram since start.", nil, nil)
	descWAState   = prometheus.NewDesc("checkinbot_whatsapp_state", "1 for the WhatsApp connection's current state, 0 for the others.", []string{"state"}, nil)
	descSendRate  = prometheus.NewDesc("checkinbot_channel_send_rate", "Messages a second the channel sustains for scheduled prompts (+Inf: no platform limit), by channel (channels that report it): the capacity the time question's crowding advice is sized by.", []string{"channel"}, nil)
	descWAReady   = prometheus.NewDesc("checkinbot_channel_ready", "1 when the channel can deliver now, by channel (channels that report it).", []string{"channel"}, nil)
	descDepth     = prometheus.NewDesc("checkinbot_outbox_depth", "Undelivered webhook rows, by endpoint id.", []string{"endpoint"}, nil)
	descOldest    = prometheus.NewDesc("checkinbot_outbox_oldest_undelivered_seconds", "Age of the oldest undelivered event, by endpoint id.", []string{"endpoint"}, nil)
	descUnrouted  = prometheus.NewDesc("checkinbot_outbox_unrouted", "Recorded events not yet routed to their endpoints.", nil, nil)
	descCritical  = prometheus.NewDesc("checkinbot_critical_undelivered_oldest_seconds", "Age of the oldest critical event some endpoint still owes (0: none).", nil, nil)
	descRegs      = prometheus.NewDesc("checkinbot_registrants", "Registrants by status (new, active, paused, stopped).", []string{"status"}, nil)
	descOverdue   = prometheus.NewDesc("checkinbot_registrants_overdue", "Active registrants a checkin.missed went out for, not checked in since.", nil, nil)
	descLastCheck = prometheus.NewDesc("checkinbot_last_checkin_timestamp_seconds", "Unix time of the latest check-in of any registrant (0: none yet).", nil, nil)
	descStatsErr  = prometheus.NewDesc("checkinbot_store_stats_ok", "1 when the store's counts could be read at this scrape.", nil, nil)
	descAuditSeq  = prometheus.NewDesc("checkinbot_audit_head_seq", "Seq of the audit trail's last entry (checkinbot audit verify --expect-head).", nil, nil)
	descAuditHash = prometheus.NewDesc("checkinbot_audit_head_hash_prefix", "The first 53 bits of the audit trail's head hash, as an integer (the full hash is in the start log).", nil, nil)
)

// waStates are the WhatsApp states always exported, so an alert on
// state="logged-out" has a series to watch.
var waStates = []string{"connected", "disconnected", "logged-out", "temporarily-banned"}

// registrantStatuses are always exported (0 when none).
var registrantStatuses = []string{"new", "active", "paused", "stopped"}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInbound, descOutbound, descQueued, descInFlight, descIntakeAge, descGivenUp,
		descWritable, descTG429, descWAState, descWAReady, descSendRate, descDepth, descOldest, descUnrouted, descCritical, descRegs,
		descOverdue, descLastCheck, descStatsErr, descAuditSeq, descAuditHash} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	now := s.opt.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	age := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return max(now.Sub(t).Seconds(), 0)
	}

	rs := s.opt.Runner.Stats()
	for _, chn := range s.opt.Channels {
		name := chn.Name()
		counter(descInbound, float64(rs.Inbound[name]), name)
		counter(descOutbound, float64(rs.Sent[name]), name, "sent")
		counter(descOutbound, float64(rs.Failed[name]), name, "failed")
		if r, ok := chn.(RateLimited); ok {
			counter(descTG429, float64(r.RateLimited()))
		}
		if r, ok := chn.(bot.SendRater); ok {
			gauge(descSendRate, r.SendRate(), name)
		}
		if r, ok := chn.(Readier); ok {
			ready, _ := r.Ready()
			gauge(descWAReady, b2f(ready), name)
		}
		if cs, ok := chn.(Connection); ok {
			cur := cs.ConnectionState()
			for _, st := range waStates {
				gauge(descWAState, b2f(st == cur), st)
			}
		}
	}
	for _, p := range []string{"safety", "reply", "reminder"} {
		counter(descQueued, float64(rs.Queued[p]), p)
	}
	gauge(descInFlight, float64(rs.InFlight))
	gauge(descIntakeAge, age(rs.OldestInFlight))
	counter(descGivenUp, float64(rs.GivenUp))
	gauge(descWritable, b2f(s.opt.Runner.Healthy() == nil))

	st, err := s.storeStats(false)
	gauge(descStatsErr, b2f(err == nil))
	if err != nil {
		s.opt.Log.Error("metrics: the store's counts could not be read", "err", err)
		return
	}
	for _, ep := range s.opt.Endpoints {
		if _, ok := st.Endpoints[ep]; !ok {
			gauge(descDepth, 0, ep)
			gauge(descOldest, 0, ep)
		}
	}
	for ep, b := range st.Endpoints {
		gauge(descDepth, float64(b.Depth), ep)
		gauge(descOldest, age(b.Oldest), ep)
	}
	gauge(descUnrouted, float64(st.Unrouted))
	gauge(descCritical, age(st.OldestCritical))
	for _, status := range registrantStatuses {
		gauge(descRegs, float64(st.Registrants[status]), status)
	}
	gauge(descOverdue, float64(st.Overdue))
	last := 0.0
	if !st.LastCheckin.IsZero() {
		last = float64(st.LastCheckin.Unix())
	}
	gauge(descLastCheck, last)
	gauge(descAuditSeq, float64(st.AuditHead.Seq))
	gauge(descAuditHash, float64(hashPrefix53(st.AuditHead.Hash)))
}

// hashPrefix53 is the first 53 bits of a hex hash: the most a float64
// gauge carries exactly (0 for an empty or malformed hash).
func hashPrefix53(h string) uint64 {
	if len(h) < 14 {
		return 0
	}
	v, err := strconv.ParseUint(h[:14], 16, 64) // 56 bits
	if err != nil {
		return 0
	}
	return v >> 3
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
