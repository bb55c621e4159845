// Package ops is the operator's HTTP surface: /healthz (the process is
// up), /readyz (it can do its job now, or a JSON list of why not),
// /metrics (Prometheus) and the online backup (GET /admin/backup, behind
// a bearer token). It serves on the admin listener — loopback or a unix
// socket — never on the public one: a metric that moves when an event is
// recorded (the outbox depth, escalations by type) would tell whoever
// watches a citizen's phone that a check-in raised a silent alarm (DESIGN
// §3), so only the operator may read them. The public listener gets
// /healthz alone, which says nothing but "up".
//
// ops reads the program through small ports (Store, Runner, the optional
// channel methods below) and imports no engine; app wires it.
package ops

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Store is what ops needs of the storage engine.
type Store interface {
	// Probe commits an empty write: nil when the store can write.
	Probe() error
	// Stats counts registrants and the delivery backlog.
	Stats() (store.Stats, error)
	// WriteBackup writes a consistent copy of the data file to w, calling
	// size (if not nil) with its length before the first byte.
	WriteBackup(w io.Writer, size func(int64)) (int64, error)
}

// Runner is what ops needs of bot.Runner.
type Runner interface {
	Healthy() error
	Stats() bot.Stats
}

// Readier is a channel that knows whether it can deliver now (WhatsApp:
// connected and linked). Channels without it count as ready while they run.
type Readier interface {
	Ready() (ok bool, reason string)
}

// RateLimited is a channel that counts its platform's 429 answers (Telegram).
type RateLimited interface {
	RateLimited() int64
}

// Connection is a channel with a connection state worth a metric (WhatsApp).
type Connection interface {
	ConnectionState() string
}

// Channel is one running channel as ops sees it: a name and, optionally,
// Readier, RateLimited and Connection.
type Channel interface {
	Name() string
}

// Defaults of Options.
const (
	DefaultCriticalAge = 2 * time.Minute
	DefaultIntakeAge   = 2 * time.Minute
	DefaultStatsEvery  = 5 * time.Second
)

// Options say what a Server watches.
type Options struct {
	Store    Store
	Runner   Runner
	Channels []Channel
	// Endpoints are the configured webhook endpoint ids: their outbox
	// metrics are exported at 0 when nothing is owed, so alerts have a series.
	Endpoints []string
	// CriticalAge: /readyz fails while a critical event (duress, SOS,
	// missed check-in) has waited longer than this for delivery
	// (default DefaultCriticalAge, the alert rule's 2 minutes).
	CriticalAge time.Duration
	// IntakeAge: /readyz fails while an update has waited longer than
	// this to be processed (default DefaultIntakeAge).
	IntakeAge time.Duration
	// StatsEvery: the store's counts are read at most this often,
	// however often /metrics and /readyz are asked (default
	// DefaultStatsEvery); the backlog part walks the undelivered rows.
	StatsEvery time.Duration
	// APIRoutes are the embassy API's route labels (api.Routes): their
	// request series are exported at 0 from the start.
	APIRoutes []string
	// BackupToken authorises GET /admin/backup (Authorization: Bearer
	// TOKEN). Empty: backups are refused.
	BackupToken string
	// Unencrypted: the data file is written in clear (serve
	// --insecure-no-encryption); /readyz says so in every answer.
	Unencrypted bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log is the operational log (default slog.Default()).
	Log *slog.Logger
}

// Server serves the operator's endpoints and keeps the counters that are
// fed from outside (CountEvents, CountAttempts, ObserveCommit).
type Server struct {
	opt Options
	reg *prometheus.Registry
	m   *meters

	mu      sync.Mutex
	stats   store.Stats
	statsAt time.Time
	statErr error
}

// New builds a Server; it registers its metrics in its own registry (not
// the global one), so two Apps in one test process do not collide.
func New(opt Options) *Server {
	if opt.CriticalAge <= 0 {
		opt.CriticalAge = DefaultCriticalAge
	}
	if opt.IntakeAge <= 0 {
		opt.IntakeAge = DefaultIntakeAge
	}
	if opt.StatsEvery <= 0 {
		opt.StatsEvery = DefaultStatsEvery
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	s := &Server{opt: opt, reg: prometheus.NewRegistry()}
	s.m = newMeters(s)
	return s
}

// Handler serves /healthz, /readyz, /metrics and /admin/backup: mount it
// on the admin listener only.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", Healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.HandleFunc("GET /admin/backup", s.backup)
	mux.HandleFunc("POST /admin/keys/rotate", s.rotateKeys) // keys.go
	return mux
}

// Healthz answers 200 "ok" while the process serves HTTP: liveness only,
// no information, safe on the public listener.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// Readiness is /readyz's JSON body.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
	// Warnings do not make the service unready but must be seen: the data
	// file written in clear.
	Warnings []string `json:"warnings,omitempty"`
}

// WarningUnencrypted is /readyz's warning while the data file is written
// in clear.
const WarningUnencrypted = "encryption: off (--insecure-no-encryption): the data file and its backups hold personal data in clear"

// Ready checks, now, everything /readyz promises: the store writes, every
// channel that can tell is connected, no critical event has waited longer
// than CriticalAge, no update has waited at intake longer than IntakeAge.
// Reasons name parts and ages, never a person.
func (s *Server) Ready() Readiness {
	var reasons []string
	now := s.opt.Now()
	if err := s.opt.Store.Probe(); err != nil {
		reasons = append(reasons, "store: cannot write: "+err.Error())
	} else if err := s.opt.Runner.Healthy(); err != nil {
		reasons = append(reasons, "store: "+err.Error())
	}
	for _, ch := range s.opt.Channels {
		if r, ok := ch.(Readier); ok {
			if ok, why := r.Ready(); !ok {
				if why == "" {
					why = "not connected"
				}
				reasons = append(reasons, "channel "+ch.Name()+": "+why)
			}
		}
	}
	if st, err := s.storeStats(true); err != nil {
		reasons = append(reasons, "store: cannot read: "+err.Error())
	} else if !st.OldestCritical.IsZero() {
		if age := now.Sub(st.OldestCritical); age > s.opt.CriticalAge {
			reasons = append(reasons, "delivery: a critical event has waited "+age.Round(time.Second).String()+
				" (limit "+s.opt.CriticalAge.String()+")")
		}
	}
	if rs := s.opt.Runner.Stats(); !rs.OldestInFlight.IsZero() {
		if age := now.Sub(rs.OldestInFlight); age > s.opt.IntakeAge {
			reasons = append(reasons, "intake: an update has waited "+age.Round(time.Second).String()+
				" to be processed (limit "+s.opt.IntakeAge.String()+")")
		}
	}
	r := Readiness{Ready: len(reasons) == 0, Reasons: reasons}
	if s.opt.Unencrypted {
		r.Warnings = append(r.Warnings, WarningUnencrypted)
	}
	return r
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	r := s.Ready()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !r.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(r)
}

// storeStats returns the store's counts, recomputed when older than
// StatsEvery, or always when fresh is set and the cached ones show a
// backlog (so /readyz turns ready again as soon as the backlog clears).
func (s *Server) storeStats(fresh bool) (store.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	stale := s.statsAt.IsZero() || now.Sub(s.statsAt) >= s.opt.StatsEvery || s.statErr != nil
	if fresh && !s.stats.OldestCritical.IsZero() {
		stale = true
	}
	if stale {
		s.stats, s.statErr = s.opt.Store.Stats()
		s.statsAt = now
	}
	return s.stats, s.statErr
}
