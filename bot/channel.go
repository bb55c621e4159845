package bot

import (
	"context"
	"net/http"
	"sync"
)

// The channel contract (DESIGN §6). Every channel package — telegram,
// whatsapp, terminal, and the next one — is built the same way:
//
//	ch := pkg.New(pkg.Options{…}, inbox)
//
// where inbox is the Runner. A channel never registers itself: the App
// registers every channel it built (Runner.Register(ch.Name(), ch)), and
// never touches the store. What a channel gives the runner is Channel
// (and Deleter where the platform can delete); what it gets is Inbox.

// Channel is what every channel implements.
type Channel interface {
	Sender
	// Name is the channel's name in user keys and in the send queue; it
	// must never change for a deployed channel (it is part of every key).
	Name() string
	// Run serves the channel until ctx ends: it hands inbound updates to
	// the inbox and sends what Send queued. When ctx ends it stops intake
	// at once (updates not yet committed are left unacknowledged, so the
	// platform delivers them again), keeps sending until Inbox.DrainReplies
	// returns, and then returns. A channel whose input ends by itself (the
	// terminal at end of input) returns nil; the App then stops the others.
	Run(ctx context.Context) error
}

// SendRater is a channel that knows how many messages a second its
// platform lets it send, sustained (Telegram: its global rate; WhatsApp:
// its pacing). The runner sizes the time question's crowding advice by it
// (crowding.go) and /metrics shows it. It is optional, so a channel — or a
// test's fake — without it compiles and is treated as unlimited.
type SendRater interface {
	// SendRate is messages a second; +Inf means no platform limit.
	SendRate() float64
}

// Inbox is what a channel reports to: the Runner implements it. Receipts
// (the platform accepted a response, or never will) go through each
// Response's Done, so a channel needs no id of the runner's.
type Inbox interface {
	// Submit queues an inbound update behind the earlier ones of the same
	// citizen — per-citizen order is the order of Submit calls, citizens
	// run in parallel — and returns at once. The channel yields the
	// outcome once it was processed: nil when committed (or nothing to
	// do); ErrStoreUnavailable when it must come again; ErrUpdateFailed
	// when it can never be processed (acknowledge and give it up).
	Submit(ctx context.Context, in Inbound) <-chan error
	// Handle is Submit and wait.
	Handle(ctx context.Context, in Inbound) error
	// Unreachable reports that the platform will not deliver to address
	// any more (the citizen blocked the bot); the embassy is told once.
	Unreachable(ctx context.Context, channel, address string) error
	// DrainReplies waits until every response handed to a channel was
	// settled, or until ctx ends or the inbox's own drain bound passes.
	DrainReplies(ctx context.Context) error
}

var _ Inbox = (*Runner)(nil)

// Handler is the one method a channel's tests usually need of an inbox.
type Handler interface {
	Handle(ctx context.Context, in Inbound) error
}

// InboxOf makes a full Inbox of a Handler, for channel tests that record
// or fail inbound updates without a runner: Submit handles synchronously
// (so in call order), Unreachable and DrainReplies do nothing.
func InboxOf(h Handler) Inbox { return handlerInbox{h} }

type handlerInbox struct{ h Handler }

func (i handlerInbox) Submit(ctx context.Context, in Inbound) <-chan error {
	done := make(chan error, 1)
	done <- i.h.Handle(ctx, in)
	return done
}
func (i handlerInbox) Handle(ctx context.Context, in Inbound) error    { return i.h.Handle(ctx, in) }
func (handlerInbox) Unreachable(context.Context, string, string) error { return nil }
func (handlerInbox) DrainReplies(context.Context) error                { return nil }

// order runs work per key one at a time, in the order the work was
// entered, keys in parallel. It is the only place per-citizen ordering
// lives: inbound updates (Submit), timers, delivery reports and
// unreachable notices of one citizen all pass through it. Entries exist
// only while someone holds or waits for a key.
type order struct {
	mu    sync.Mutex
	lines map[string][]chan struct{}
}

// ticket is a place in a key's line.
type ticket struct {
	o     *order
	key   string
	ready chan struct{} // closed when it is this ticket's turn
}

// enter takes a place at the end of key's line, without waiting.
func (o *order) enter(key string) ticket {
	t := ticket{o: o, key: key, ready: make(chan struct{})}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lines == nil {
		o.lines = map[string][]chan struct{}{}
	}
	line := o.lines[key]
	if len(line) == 0 {
		close(t.ready)
	}
	o.lines[key] = append(line, t.ready)
	return t
}

// lock enters key's line and waits for its turn.
func (o *order) lock(key string) (unlock func()) {
	t := o.enter(key)
	<-t.ready
	return t.leave
}

// leave ends this ticket's turn and starts the next one's. Call it once,
// after the ticket's turn came.
func (t ticket) leave() {
	o := t.o
	o.mu.Lock()
	defer o.mu.Unlock()
	line := o.lines[t.key][1:]
	if len(line) == 0 {
		delete(o.lines, t.key)
		return
	}
	o.lines[t.key] = line
	close(line[0])
}

// Router is implemented by channels that may receive updates over HTTP
// (the Telegram webhook): the App serves their routes — ServeMux
// patterns to handlers, none when the channel does not use HTTP — on its
// one HTTP listener.
type Router interface {
	Routes() map[string]http.Handler
}
