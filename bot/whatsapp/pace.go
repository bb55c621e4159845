package whatsapp

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"

	"github.com/checkinbot/checkinbot/bot"
)

// pacer sends one message at a time: replies (the SOS flow first) before
// reminders, no two messages closer than Options.Global, none to one
// person closer than Options.PerRecipient. A failed send is retried with
// backoff; nothing is sent while the number is banned or logged out. Each
// item's outcome goes to its done callback: accepted (with the message id),
// or, after maxTries failures, "not now" — the runner then sends it again
// later from the durable send queue.
type pacer struct {
	c    *Channel
	mu   sync.Mutex
	wake chan struct{}
	// queues by priority; each item is one message.
	queues [3][]*waItem
	next   map[string]time.Time // recipient → earliest next send
	last   time.Time
}

type waItem struct {
	to     string
	text   string
	revoke types.MessageID // set for a revoke of our own message
	done   func(bot.Receipt)
	tries  int
}

// maxTries bounds the attempts of one item in this queue; the send queue
// keeps it after that.
const maxTries = 8

func (it *waItem) report(rc bot.Receipt) {
	if it.done != nil {
		it.done(rc)
	}
}

func newPacer(c *Channel) *pacer {
	return &pacer{c: c, wake: make(chan struct{}, 1), next: map[string]time.Time{}}
}

func (p *pacer) push(prio bot.Priority, it *waItem) {
	prio = min(max(prio, bot.PrioritySafety), bot.PriorityReminder)
	p.mu.Lock()
	p.queues[prio] = append(p.queues[prio], it)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take returns the first sendable item, or how long to wait.
func (p *pacer) take(now time.Time) (*waItem, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if wait := p.last.Add(p.c.opt.Global).Sub(now); wait > 0 {
		return nil, wait
	}
	wait := time.Minute
	for q := range p.queues {
		seen := map[string]bool{}
		for i, it := range p.queues[q] {
			if seen[it.to] {
				continue
			}
			seen[it.to] = true
			if at := p.next[it.to]; at.After(now) {
				wait = min(wait, at.Sub(now))
				continue
			}
			p.queues[q] = append(p.queues[q][:i], p.queues[q][i+1:]...)
			return it, 0
		}
	}
	return nil, wait
}

func (p *pacer) run(ctx context.Context) {
	for ctx.Err() == nil {
		if s := p.c.health.State(); s == StateBanned || s == StateLoggedOut {
			p.sleep(ctx, 10*time.Second)
			continue
		}
		it, wait := p.take(time.Now())
		if it == nil {
			p.sleep(ctx, wait)
			continue
		}
		p.send(ctx, it)
	}
}

func (p *pacer) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-p.wake:
	case <-t.C:
	}
}

func (p *pacer) send(ctx context.Context, it *waItem) {
	msg := textMessage(it.text)
	if it.revoke != "" {
		msg = p.c.client.BuildRevoke(jid(it.to), types.EmptyJID, it.revoke)
	}
	resp, err := p.c.client.SendMessage(ctx, jid(it.to), msg)
	now := time.Now()
	p.mu.Lock()
	p.last = now
	p.next[it.to] = now.Add(p.c.opt.PerRecipient)
	if err == nil {
		p.mu.Unlock()
		it.report(bot.Receipt{SentIDs: []string{string(resp.ID)}})
		return
	}
	it.tries++
	if it.tries >= maxTries || ctx.Err() != nil {
		p.mu.Unlock()
		p.c.opt.Log.Warn("whatsapp message not sent after retries; it stays queued for later", "err", classify(err))
		it.report(bot.Receipt{Err: err})
		return
	}
	p.next[it.to] = now.Add(min(time.Duration(1<<it.tries)*time.Second, 5*time.Minute))
	p.queues[bot.PriorityReply] = append([]*waItem{it}, p.queues[bot.PriorityReply]...)
	p.mu.Unlock()
	p.c.opt.Log.Warn("whatsapp send failed; retrying", "err", classify(err))
}

// classify names an error without its text, which can carry a number.
func classify(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled or timed out"
	case errors.Is(err, whatsmeow.ErrNotConnected), errors.Is(err, whatsmeow.ErrNotLoggedIn):
		return "not connected"
	}
	return "send error"
}

// State is the connection state shown in health checks and logs.
type State string

// Connection states.
const (
	StateConnected    State = "connected"
	StateDisconnected State = "disconnected"
	StateLoggedOut    State = "logged-out"
	StateBanned       State = "temporarily-banned"
)

// Health is the channel's connection state, ready for a /readyz check:
// ready only when connected.
type Health struct {
	mu     sync.Mutex
	state  State
	detail string
	since  time.Time
}

func (h *Health) set(s State, detail string, log *slog.Logger) {
	h.mu.Lock()
	changed := h.state != s
	h.state, h.detail, h.since = s, detail, time.Now()
	h.mu.Unlock()
	if !changed {
		return
	}
	switch s {
	case StateLoggedOut, StateBanned:
		log.Error("whatsapp: "+detail, "state", s)
	case StateDisconnected:
		log.Warn("whatsapp: "+detail, "state", s)
	default:
		log.Info("whatsapp: "+detail, "state", s)
	}
}

// State is the current state.
func (h *Health) State() State {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// Ready reports whether messages can flow, with a human-readable reason.
func (h *Health) Ready() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == StateConnected, h.detail
}

// Health exposes the channel's connection state.
func (c *Channel) Health() *Health { return &c.health }
