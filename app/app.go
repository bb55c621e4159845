// Package app is the whole program as one value: Open builds the store,
// the engine, the runner (with its scheduler and reply outbox), webhook
// delivery, the channels and the HTTP listener; Run runs them until the
// context ends or a channel's input ends; Close releases them. `serve`,
// `demo` and the end-to-end tests (MustRunApp) all build the same App, so
// the wiring exists once. Which channels run is the caller's choice: the
// App builds each from a ChannelFunc and registers it with the runner.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/ops"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/webhook"
)

// ChannelFunc builds one channel from what the App made for it, as every
// channel package's New(options, inbox) does.
type ChannelFunc func(env ChannelEnv) (bot.Channel, error)

// ChannelEnv is what a channel is built on.
type ChannelEnv struct {
	Inbox  bot.Inbox       // the runner
	Engine *dialogs.Engine // for texts a channel answers itself (group refusals)
	Log    *slog.Logger    // the App's operational log
}

// Options say what to build. Config and Secrets are required (the pepper
// in Secrets must be set: the caller generates one for a demo).
type Options struct {
	Config  *config.Config
	Secrets config.Secrets
	// DataDir holds the data file checkinbot.db; created if missing.
	DataDir string
	// Channels are built, in order, and registered with the runner.
	Channels []ChannelFunc
	// Listen is the HTTP listener's address (":8443", "127.0.0.1:0"). It
	// is needed when a channel has routes (bot.Router); empty means no
	// listener.
	Listen string
	// Policy, if set, rewrites the engine's policy (demo --fast).
	Policy func(dialogs.Policy) dialogs.Policy
	// Delivery, if set, rewrites the webhook delivery policy read from
	// the configuration (the demo turns heartbeats off).
	Delivery func(webhook.Policy) webhook.Policy
	// API, if set, rewrites the embassy API's options (tests raise the
	// rate limit).
	API func(api.Options) api.Options
	// DrainTimeout and StaleAfter are the runner's; zero keeps its defaults.
	DrainTimeout, StaleAfter time.Duration
	// Unlimited turns the flood and registration limits ([limits]) off:
	// the demo's one local user, whose scripted input comes as fast as it
	// is read, is no flood.
	Unlimited bool
	// DeliverBeforeExit, if positive, is how long Run waits after the
	// channels stopped for recorded escalations to be delivered (a scripted
	// demo shows its last escalations before exiting).
	DeliverBeforeExit time.Duration
	// FreshDataExpected silences the warning about a new, empty data
	// file (the demo starts in a new directory on purpose).
	FreshDataExpected bool
	// Log is the operational log (default slog.Default()).
	Log *slog.Logger
	// AdminListen is the admin listener (ops.go): "unix:/path" or a
	// loopback "127.0.0.1:9464"; empty means none.
	AdminListen string
	// AdminToken authorises the online backup on the admin listener.
	AdminToken string
	// Getenv reads the variables the configuration names for identity
	// providers' keys and secrets (default config.Getenv: the process's
	// environment; tests pass their own).
	Getenv func(string) string
	// AuditKey, for tests, is the audit trail's key itself
	// (boltstore.Options.AuditKey). serve leaves it empty: the store
	// derives the key from its service data key, so it outlives master-key
	// rotations; without a master key either, reasons are not recorded
	// and the trail is only hash-chained.
	AuditKey []byte
}

// App is the running program's parts. The fields are for callers and
// tests to observe; Open sets them.
type App struct {
	Engine    *dialogs.Engine
	Store     *boltstore.Store
	Runner    *bot.Runner
	Deliverer *webhook.Deliverer
	Channels  []bot.Channel
	// API is the embassy API, served under /v1 when an embassy has
	// api_token_env (nil otherwise).
	API *api.API
	Ops *ops.Server // health, readiness, metrics, backup (ops.go)

	opt Options
	log *slog.Logger
	ln  net.Listener
	mux *http.ServeMux

	adminLn net.Listener // the admin listener (ops.go)

	identityOn bool // identity providers are configured (identity.go)
}

// Open builds the program. On error everything opened is closed again.
func Open(opt Options) (_ *App, err error) {
	if opt.Config == nil {
		return nil, errors.New("app: no configuration")
	}
	if len(opt.Secrets.Pepper) == 0 {
		return nil, &config.SecretError{Var: config.EnvPepper, Reason: "not set"}
	}
	a := &App{opt: opt, log: opt.Log, mux: http.NewServeMux()}
	if a.log == nil {
		a.log = slog.Default()
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	cat, err := locales.Load()
	if err != nil {
		return nil, err
	}
	c := opt.Config
	a.Engine = &dialogs.Engine{Catalog: cat, Directory: c.Directory(), Policy: c.Policy(), Pepper: opt.Secrets.Pepper}
	if opt.Policy != nil {
		a.Engine.Policy = opt.Policy(a.Engine.Policy)
	}
	if err := os.MkdirAll(opt.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	// With Secrets.Keyring the data file is encrypted (store/seal); without
	// one it is written in clear, which serve allows only with
	// --insecure-no-encryption (serve then marks every log line, and
	// /readyz warns: ops.go).
	if a.Store, err = boltstore.OpenWith(filepath.Join(opt.DataDir, "checkinbot.db"),
		boltstore.Options{Keyring: opt.Secrets.Keyring, AuditKey: opt.AuditKey}); err != nil {
		return nil, err
	}
	a.logAuditHead() // audit.go
	if err := a.Store.IndexWith(a.Engine.Directory.EmbassyFor, routingFingerprint(a.Engine.Directory)); err != nil {
		return nil, fmt.Errorf("registrant index: %w", err)
	}
	if a.Store.Created() && !opt.FreshDataExpected {
		a.log.Warn("a new, empty data file was created: if this service had registrants, the data directory is wrong or its volume is not mounted",
			"path", a.Store.Path())
	}
	policy := c.DeliveryPolicy()
	if opt.Delivery != nil {
		policy = opt.Delivery(policy)
	}
	a.Deliverer = &webhook.Deliverer{Store: a.Store, Endpoints: opt.Secrets.Endpoints, Policy: policy}
	// Each escalation gets its delivery rows in the commit that records it:
	// the deliverer sends it on the nudge, with no routing commit between.
	a.Store.RouteOnRecord(a.Deliverer.Targets)
	r := bot.NewRunner(a.Engine, a.Store, opt.Secrets.Pepper)
	r.Log = a.log
	r.OnEvents = func([]store.Event) { a.Deliverer.Nudge() }
	if opt.DrainTimeout > 0 {
		r.DrainTimeout = opt.DrainTimeout
	}
	if opt.StaleAfter > 0 {
		r.StaleAfter = opt.StaleAfter
	}
	if !opt.Unlimited {
		r.Flood, r.Registrations = limits(c.Limits)
	}
	a.Runner = r
	if err := a.openIdentity(); err != nil { // identity.go
		return nil, err
	}
	routes := false
	for _, build := range opt.Channels {
		ch, err := build(ChannelEnv{Inbox: r, Engine: a.Engine, Log: a.log})
		if err != nil {
			return nil, err
		}
		a.Channels = append(a.Channels, ch)
		r.Register(ch.Name(), ch)
		if rt, ok := ch.(bot.Router); ok {
			for pattern, h := range rt.Routes() {
				a.mux.Handle(pattern, h)
				routes = true
			}
		}
	}
	if len(opt.Secrets.APITokens) > 0 {
		if opt.Listen == "" {
			return nil, errors.New("app: an embassy has api_token_env but no listen address is set for the embassy API (telegram.listen)")
		}
		a.mountAPI() // the embassy API under /v1 (api.go)
	}
	if opt.Listen == "" && routes {
		return nil, errors.New("app: a channel receives over HTTP but no listen address is set (telegram.listen)")
	}
	if opt.Listen != "" {
		if a.ln, err = net.Listen("tcp", opt.Listen); err != nil {
			return nil, fmt.Errorf("listen %s: %w", opt.Listen, err)
		}
	}
	if err := a.openOps(); err != nil {
		return nil, err
	}
	return a, nil
}

// limits is the runner's flood and registration limits: the defaults
// with the [limits] overrides.
func limits(l config.Limits) (bot.FloodLimit, bot.RegistrationLimit) {
	f, g := bot.DefaultFloodLimit, bot.DefaultRegistrationLimit
	if l.FloodMessages > 0 {
		f.Messages = l.FloodMessages
	}
	if l.FloodWindow.Duration > 0 {
		f.Window = l.FloodWindow.Duration
	}
	if l.RegistrationsPerChat > 0 {
		g.PerChatPerDay = l.RegistrationsPerChat
	}
	if l.RegistrationsPerMinute > 0 {
		g.PerMinute = l.RegistrationsPerMinute
	}
	return f, g
}

// Addr is the HTTP listener's address ("" without one): with Listen
// "127.0.0.1:0", the port the system chose.
func (a *App) Addr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Run runs the program until ctx ends or a channel returns (the
// terminal's input ended, or a channel failed: its error is returned).
// Shutdown follows the channel contract: intake stops first, queued
// replies drain (bounded by DrainTimeout), then sending stops; the
// scheduler, outbox and webhook delivery stop last.
func (a *App) Run(ctx context.Context) error {
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	// bg.Go, not Add(n): the count cannot drift from the goroutines started.
	bg.Go(func() { a.pruneIdentity(bgCtx) }) // identity.go
	bg.Go(func() { a.compactAudit(bgCtx) })  // audit.go
	bg.Go(func() { _ = a.Runner.RunScheduler(bgCtx) })
	bg.Go(func() { _ = a.Runner.RunRetention(bgCtx) })
	bg.Go(func() { _ = a.Runner.RunOutbox(bgCtx) })
	bg.Go(func() { _ = a.Deliverer.Run(bgCtx) })
	defer func() { stopBackground(); bg.Wait() }()
	defer a.serveAdmin()()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.ln != nil {
		srv := &http.Server{Handler: a.mux, ReadHeaderTimeout: 10 * time.Second}
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("HTTP listener stopped", "err", err)
				cancel()
			}
		}()
		a.log.Info("HTTP listener serving", "addr", a.Addr())
		go func() {
			<-ctx.Done() // intake over HTTP stops with the rest of intake
			shutdown, done := context.WithTimeout(context.Background(), 10*time.Second)
			defer done()
			_ = srv.Shutdown(shutdown)
		}()
		defer func() { <-served }()
	}
	errs := make(chan error, len(a.Channels))
	for _, ch := range a.Channels {
		go func() {
			err := ch.Run(ctx)
			if err != nil {
				err = fmt.Errorf("%s: %w", ch.Name(), err)
			}
			cancel() // one channel ends: the program ends
			errs <- err
		}()
	}
	var first error
	if len(a.Channels) == 0 {
		<-ctx.Done()
	}
	for range a.Channels {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if err := a.Runner.DrainReplies(context.Background()); err == nil {
		a.log.Info("shutdown: every queued reply was accepted")
	}
	a.deliverBacklog(a.opt.DeliverBeforeExit)
	return first
}

// deliverBacklog waits, up to limit, until every recorded event was
// delivered.
func (a *App) deliverBacklog(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if n, err := a.Store.Backlog(); err != nil || n == 0 {
			return
		}
		a.Deliverer.Nudge()
		time.Sleep(20 * time.Millisecond)
	}
}

// Close releases what Open opened: the listener (if Run never served
// it), channels holding resources (io.Closer), and the store.
func (a *App) Close() error {
	var errs []error
	if a.adminLn != nil {
		if err := a.adminLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if a.ln != nil {
		if err := a.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, ch := range a.Channels {
		if c, ok := ch.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	if a.API != nil {
		// Roll-call prompting runs in the background: give it a bounded
		// time; what is left is prompted at the next start (ResumeRollCalls).
		done := make(chan struct{})
		go func() { a.API.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			a.log.Warn("shutdown: roll-call prompts not yet sent go out at the next start")
		}
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	return errors.Join(errs...)
}
