// Package apptest runs the whole program in tests, as wtf's MustRunMain
// does: the App that `serve` builds, on 127.0.0.1:0 with a temporary data
// directory, serving Telegram in webhook mode against the fake Bot API
// (bot/telegram/fakeapi), and delivering escalations as signed webhooks to
// a real local receiver (webhook.Sink over HTTP). Only tests import it.
package apptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/bot/telegram"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/webhook"
)

// Program is a running App and the outside world it talks to.
type Program struct {
	*app.App
	// API is the fake Telegram Bot API the program sends to.
	API *fakeapi.Server
	// Receiver is the embassies' webhook receiver.
	Receiver *Receiver
	// WebhookSecret is what Telegram presents to the program's webhook.
	WebhookSecret string

	tb   testing.TB
	stop func() error
}

// Receiver records the escalations an embassy received, after verifying
// their signatures (webhook.Sink).
type Receiver struct {
	URL    string
	mu     sync.Mutex
	events []webhook.Event
}

// Events returns what arrived so far, heartbeats left out.
func (r *Receiver) Events() []webhook.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []webhook.Event
	for _, ev := range r.events {
		if ev.Type != "endpoint.heartbeat" {
			out = append(out, ev)
		}
	}
	return out
}

// Env is the environment the program reads its secrets from in
// MustRunApp (never the process's own).
type Env map[string]string

// MustRunApp opens and runs the App on 127.0.0.1:0 with a temporary data
// directory; edit, if given, changes the options before Open. The program
// stops (gracefully, as on SIGTERM) at the end of the test, or at Stop.
func MustRunApp(tb testing.TB, edit ...func(*app.Options)) *Program {
	tb.Helper()
	api := fakeapi.New("4242:apptest")
	tb.Cleanup(api.Close)
	rcv := &Receiver{}
	key := make([]byte, 32)
	rand.Read(key)
	sink := httptest.NewServer(&webhook.Sink{Secrets: [][]byte{key}, OnEvent: func(ev webhook.Event) {
		rcv.mu.Lock()
		rcv.events = append(rcv.events, ev)
		rcv.mu.Unlock()
	}})
	tb.Cleanup(sink.Close)
	rcv.URL = sink.URL

	c := config.Default()
	c.ClearEndpoints()
	c.Telegram.Mode, c.Telegram.WebhookURL, c.Telegram.WebhookSecretEnv = "webhook", "https://bot.example/telegram", "APPTEST_WEBHOOK_SECRET"
	c.Telegram.PerChatInterval.Duration = 10 * time.Millisecond
	env := Env{config.EnvPepper: string(testkit.Pepper), config.EnvTelegramToken: api.Token,
		config.EnvTelegramAPIURL: api.URL, "APPTEST_WEBHOOK_SECRET": "apptest-webhook-secret-0123"}
	secrets, err := config.LoadSecrets(c, func(k string) string { return env[k] }, config.SecretNeeds{Pepper: true})
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range c.Embassies {
		secrets.Endpoints = append(secrets.Endpoints, webhook.Endpoint{ID: e.ID, Embassy: e.ID, URL: sink.URL, Secrets: [][]byte{key}})
	}
	opt := app.Options{Config: c, Secrets: secrets, DataDir: tb.TempDir(), Listen: "127.0.0.1:0", AuditKey: testkit.AuditKey,
		Channels: []app.ChannelFunc{func(env app.ChannelEnv) (bot.Channel, error) {
			return telegram.New(telegram.Options{Token: secrets.TelegramToken, APIURL: secrets.TelegramAPIURL,
				PerChat: c.Telegram.PerChatInterval.Duration, GlobalRate: 1000, PollTimeout: time.Second,
				Webhook: &telegram.Webhook{URL: c.Telegram.WebhookURL, Secret: secrets.TelegramWebhookSecret}, Log: env.Log}, env.Inbox)
		}},
		Delivery: func(p webhook.Policy) webhook.Policy { p.HeartbeatEvery = 0; return p }}
	for _, f := range edit {
		f(&opt)
	}
	a, err := app.Open(opt)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	p := &Program{App: a, API: api, Receiver: rcv, WebhookSecret: secrets.TelegramWebhookSecret, tb: tb}
	p.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			if err := a.Close(); err != nil && runErr == nil {
				runErr = err
			}
		})
		return runErr
	}
	tb.Cleanup(func() {
		if err := p.stop(); err != nil {
			tb.Errorf("app: %v", err)
		}
	})
	return p
}

// Stop ends the program as SIGTERM would and returns Run's error.
func (p *Program) Stop() error { return p.stop() }

// Post delivers a queued update of the fake API to the program's webhook,
// as Telegram would, and returns the HTTP status.
func (p *Program) Post(update int64) int {
	p.tb.Helper()
	body, _ := json.Marshal(p.API.Update(update))
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.Addr()+"/telegram", bytes.NewReader(body))
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", p.WebhookSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Say sends text from u through the webhook; the update must be accepted.
func (p *Program) Say(u fakeapi.User, text string) {
	p.tb.Helper()
	id, _ := p.API.Text(u, text)
	if code := p.Post(id); code != http.StatusOK {
		p.tb.Fatalf("webhook answered %d to %q's update", code, u.Username)
	}
}

// WaitFor polls cond until it holds or a generous deadline passes.
func (p *Program) WaitFor(what string, cond func() bool) {
	p.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			p.tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
