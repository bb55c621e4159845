package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/ops"
	"github.com/checkinbot/checkinbot/webhook"
)

// The operator's side of the App: /healthz on the public listener (it
// says only "up"), and on the admin listener (Options.AdminListen,
// loopback or a unix socket) /healthz, /readyz, /metrics and the online
// backup. See package ops for why the rest stays off the public listener.

// countingOutbox counts the outcomes the deliverer records, for
// checkinbot_delivery_attempts_total; everything else passes through.
type countingOutbox struct {
	webhook.Outbox
	count func([]escalation.Attempt)
}

func (c countingOutbox) RecordAttempts(now time.Time, attempts []escalation.Attempt) error {
	err := c.Outbox.RecordAttempts(now, attempts)
	if err == nil {
		c.count(attempts)
	}
	return err
}

// openOps builds the ops server over what Open built and opens the admin
// listener if one is asked for. Called at the end of Open.
func (a *App) openOps() error {
	var chans []ops.Channel
	for _, ch := range a.Channels {
		chans = append(chans, ch)
	}
	var eps []string
	for _, ep := range a.Deliverer.Endpoints {
		eps = append(eps, ep.ID)
	}
	a.Ops = ops.New(ops.Options{Store: a.Store, Runner: a.Runner, Channels: chans, Endpoints: eps,
		BackupToken: a.opt.AdminToken, Log: a.log, APIRoutes: api.Routes(), Unencrypted: !a.Store.Encrypted()})
	a.Store.SetCommitObserver(a.Ops.ObserveCommit)
	a.Deliverer.Store = countingOutbox{Outbox: a.Deliverer.Store, count: a.Ops.CountAttempts}
	onEvents := a.Runner.OnEvents
	a.Runner.OnEvents = func(evs []escalation.Event) {
		a.Ops.CountEvents(evs)
		if onEvents != nil {
			onEvents(evs)
		}
	}
	a.mux.HandleFunc("GET /healthz", ops.Healthz)
	if a.opt.AdminListen == "" {
		return nil
	}
	if a.opt.AdminToken != "" && len(a.opt.AdminToken) < ops.MinTokenLen {
		return errors.New("admin token (CHECKIN_ADMIN_TOKEN) is too short: use at least 24 characters, e.g. `openssl rand -base64 32`")
	}
	ln, err := ops.Listen(a.opt.AdminListen)
	if err != nil {
		return err
	}
	a.adminLn = ln
	return nil
}

// AdminAddr is the admin listener's address ("" without one).
func (a *App) AdminAddr() string {
	if a.adminLn == nil {
		return ""
	}
	if a.adminLn.Addr().Network() == "unix" {
		return "unix:" + a.adminLn.Addr().String()
	}
	return a.adminLn.Addr().String()
}

// serveAdmin serves the admin listener; the returned function stops it
// (a backup in progress gets 5 seconds; its client then reports a short
// copy). Run stops it last, so /readyz and /metrics answer during the drain.
func (a *App) serveAdmin() (stop func()) {
	if a.adminLn == nil {
		return func() {}
	}
	srv := &http.Server{Handler: a.Ops.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(a.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.log.Error("admin listener stopped", "err", err)
		}
	}()
	a.log.Info("admin listener serving /healthz, /readyz, /metrics, /admin/backup", "addr", a.AdminAddr())
	return func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		<-done
	}
}
