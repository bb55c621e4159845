// Package bot connects channels to the conversation engine and the store.
//
// One Runner serves every channel (DESIGN §6): it serialises events per
// registrant (users in parallel), runs the engine inside one store
// transaction that also writes the replies to the durable send queue, and
// only after the commit hands them to the channel, which reports when the
// platform accepted them (outbox.go). A store that cannot write is an
// outage to wait out, never a reason to drop an update (health.go).
// Sub-packages hold one channel each, built alike (channel.go); channels
// never touch the store.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// Inbound is one update from a channel, already mapped to engine terms.
type Inbound struct {
	Channel   string // the channel's Name(), as registered with the Runner
	Address   string // chat id or phone number: where replies go
	MessageID string // platform id for de-duplication; empty if none
	// DeleteID is the platform id of this message for deleting it later
	// (Telegram's message_id); empty where the channel cannot delete the
	// citizen's messages.
	DeleteID string
	Handle   string // @username or phone, shown to the embassy
	LangHint string
	Kind     dialogs.InputKind
	Text     string
	Lat, Lon float64
}

// Priority orders a channel's outbound queue.
type Priority int

// Priorities, most urgent first.
const (
	// PrioritySafety: the SOS flow.
	PrioritySafety Priority = iota
	// PriorityReply: every other reply to a citizen's message — check-ins,
	// duress or not, included.
	PriorityReply
	// PriorityReminder: scheduled prompts and reminders.
	PriorityReminder
)

// Response is what a channel must deliver for one event: every reply of
// it, sent as one unit where the platform allows. Clean-up is not the
// channel's business: the runner asks a Deleter, from the durable purge
// list.
type Response struct {
	Priority Priority
	Replies  []dialogs.Reply
	// Done, when set, must be called exactly once, outside the channel's
	// locks, when the platform accepted every reply (Receipt.Err nil) or
	// when the channel stops trying (see Receipt). A response without Done
	// is a direct message nobody waits for.
	Done func(Receipt)
}

// Report calls Done, if any.
func (r Response) Report(rc Receipt) {
	if r.Done != nil {
		r.Done(rc)
	}
}

// Sender delivers a response to an address on one channel. Send only
// queues: it must not wait for the platform. If it returns an error, Done
// is never called and the runner sends the response again later.
type Sender interface {
	Send(ctx context.Context, address string, r Response) error
}

// Runner is the single path from events to durable state to replies.
type Runner struct {
	Engine *dialogs.Engine
	Store  Store
	// Pepper keys user keys (store.UserKey) and duress keyword hashes.
	Pepper []byte
	// Now is the clock; tests replace it.
	Now func() time.Time
	// OnEvents, if set, is called after every commit that recorded
	// escalations — after the reply was handed to the channel, outside any
	// transaction. It must not block: delivery belongs in its own goroutine
	// (the outbox is the guarantee, this is only a nudge).
	OnEvents func([]store.Event)
	// Log receives operational logs: never message text, names, keywords or
	// phone numbers, and nothing that tells a duress check-in apart.
	Log *slog.Logger
	// ReplyFloor is the earliest a reply to a citizen's message leaves,
	// measured from its arrival. A duress check-in commits more (the
	// escalation, its case) than a plain one, so without a floor its reply
	// would come measurably later; with one, every reply leaves at the same
	// moment whatever was recorded (BenchmarkCovertTiming). Tests of
	// behaviour set it to zero.
	ReplyFloor time.Duration
	// StaleAfter is how old an unsent scheduled prompt or reminder may be
	// and still go out after a restart; older ones are dropped. Replies to
	// a citizen's own message and the SOS flow are never dropped.
	StaleAfter time.Duration
	// DrainTimeout bounds how long a graceful shutdown waits for queued
	// replies to be accepted; what is left stays durable for the next start.
	DrainTimeout time.Duration
	// ResendEvery is how often RunOutbox retries replies that are neither
	// sent nor in a channel's queue (a channel that refused to queue them).
	ResendEvery time.Duration
	// Flood is the per-citizen inbound limit and Registrations the limits
	// on new records (flood.go); zero values mean none. Set them before
	// the first Submit.
	Flood         FloodLimit
	Registrations RegistrationLimit

	mu      sync.Mutex
	senders map[string]Sender
	order   order
	wake    chan struct{}
	out     outbox
	health  health
	givenUp atomic.Int64
	stats   stats // counters for /metrics (stats.go)
	flood   floodGate
	admit   admission
	// volatile: replies bypass the send queue (benchmarks' baseline only).
	volatile bool
	// afterInput, if set, sees every input the runner committed (tests).
	afterInput func(dialogs.Input)
	// fireInFlight overrides DefaultFireInFlight, fireBatch FireBatch
	// (tests, benchmarks).
	fireInFlight, fireBatch int
	// stuck: timers that failed for good, stepped over until a retry.
	stuck stuckTimers
	// crowd: the slot counters for the time question (crowding.go).
	crowd crowdingCache
}

// DefaultReplyFloor is far below what a person notices on a phone network
// and above what a commit takes on a healthy disk.
const DefaultReplyFloor = 50 * time.Millisecond

// NewRunner builds a runner over an engine and a store.
func NewRunner(e *dialogs.Engine, s Store, pepper []byte) *Runner {
	return &Runner{Engine: e, Store: s, Pepper: pepper, Now: time.Now, Log: slog.Default(),
		ReplyFloor: DefaultReplyFloor, StaleAfter: DefaultStaleAfter, DrainTimeout: DefaultDrainTimeout,
		ResendEvery: DefaultResendEvery, senders: map[string]Sender{}, wake: make(chan struct{}, 1),
		out: newOutbox()}
}

// Register makes a channel's sender available for replies and timers,
// under the channel's name. The App registers every Channel it built
// (Register(ch.Name(), ch)); tests may register any Sender.
func (r *Runner) Register(channel string, s Sender) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.senders[channel] = s
}

func (r *Runner) sender(channel string) (Sender, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.senders[channel]
	if !ok {
		return nil, fmt.Errorf("bot: no channel %q registered", channel)
	}
	return s, nil
}

// Wake is signalled after every commit, so the scheduler can re-read the
// due index.
func (r *Runner) Wake() <-chan struct{} { return r.wake }

// Handle processes one inbound update: engine and store in one
// transaction, then the replies. A redelivered MessageID is processed once.
func (r *Runner) Handle(ctx context.Context, in Inbound) error {
	return <-r.Submit(ctx, in)
}

// Submit queues one inbound update behind the earlier ones of the same
// citizen (Inbox) and processes it in its turn.
func (r *Runner) Submit(ctx context.Context, in Inbound) <-chan error {
	done := make(chan error, 1)
	arrived := time.Now() // real time, for pacing; the engine's clock is r.Now
	key := store.UserKey(r.Pepper, in.Channel, in.Address)
	mark := dialogs.FloodNone
	if fromCitizen(in.Kind) {
		mark = r.flood.arrive(r.Flood, key, arrived, r.Log, in.Channel) // counted in call order too
	}
	t := r.order.enter(key) // the place in line is taken now, in call order
	id := r.stats.arrive(in.Channel, arrived)
	go func() {
		<-t.ready
		err := r.handleHeld(ctx, key, in, mark, arrived)
		t.leave()
		r.stats.leave(id)
		if err != nil && errors.Is(err, ErrStoreUnavailable) {
			r.tellNotSaved(ctx, key, in)
		}
		if err != nil && errors.Is(err, ErrUpdateFailed) {
			n := r.givenUp.Add(1)
			r.Log.Error("update given up: it cannot be processed, however often it comes",
				"channel", in.Channel, "message_id", in.MessageID, "given_up_total", n)
		}
		done <- err
	}()
	return done
}

// handleHeld processes one inbound update; the caller holds key's turn.
func (r *Runner) handleHeld(ctx context.Context, key string, in Inbound, mark dialogs.Flood, arrived time.Time) error {
	input := dialogs.Input{Kind: in.Kind, Key: key, Channel: in.Channel, Address: in.Address,
		Handle: in.Handle, LangHint: in.LangHint, Text: in.Text, Lat: in.Lat, Lon: in.Lon, Flood: mark, Random: eventRandom()}
	input.Crowding = r.crowding(in.Channel) // the time question's advice (crowding.go)
	inboundID := ""
	if in.MessageID != "" {
		inboundID = in.Channel + ":" + in.MessageID
	}
	env := store.Envelope{Channel: in.Channel, Address: in.Address, DeleteID: in.DeleteID}
	return r.runHeld(ctx, key, inboundID, input, env, arrived)
}

// fromCitizen reports whether an input is something the citizen sent, the
// only kind that may start a record.
func fromCitizen(k dialogs.InputKind) bool {
	return k == dialogs.KindText || k == dialogs.KindButton || k == dialogs.KindLocation || k == dialogs.KindMedia
}

// pace waits until the reply floor after arrival has passed.
func (r *Runner) pace(ctx context.Context, arrived time.Time) {
	wait := r.ReplyFloor - time.Since(arrived)
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Fire runs the timer of one registrant (scheduler, roll call or tests),
// in the registrant's turn: after every input of theirs that came before
// it, and never alongside one.
func (r *Runner) Fire(ctx context.Context, key string) error {
	unlock := r.order.lock(key)
	defer unlock()
	return r.fireHeld(ctx, key)
}

// fireHeld runs the timer of key for a caller that holds key's turn. The
// record is read inside the turn, so it is the one the timer's write
// follows; a registrant erased meanwhile has no timer to run.
func (r *Runner) fireHeld(ctx context.Context, key string) error {
	st, found, err := r.Store.Registrant(key)
	if err != nil || !found {
		return err
	}
	in := dialogs.Input{Kind: dialogs.KindTimer, Key: key}
	if st.PromptPending {
		in.PromptQueued = r.promptQueued(key)
	}
	return r.runHeld(ctx, key, "", in, store.Envelope{Channel: st.Channel, Address: st.Address, Scheduled: true}, time.Now())
}

// promptQueued reports whether a check-in prompt to key still waits in the
// send queue, unaccepted by the platform (Input.PromptQueued). When the
// queue cannot be read it says no: the engine then asks again, the
// behaviour from before this was known, never a prompt withheld.
func (r *Runner) promptQueued(key string) bool {
	items, err := r.Store.PendingSends(key)
	if err != nil {
		return false
	}
	for _, it := range items {
		if it.Prompt {
			return true
		}
	}
	return false
}

// Unreachable tells the engine that a channel cannot deliver to address
// (the citizen blocked the bot); the embassy is told once.
func (r *Runner) Unreachable(ctx context.Context, channel, address string) error {
	key := store.UserKey(r.Pepper, channel, address)
	return r.run(ctx, key, "", dialogs.Input{Kind: dialogs.KindUnreachable, Key: key},
		store.Envelope{Channel: channel, Address: address})
}

// DefaultFireInFlight bounds the timers FireDue runs at once. Each is one
// registrant's write, so up to this many share a group commit (issue 15:
// one commit per timer fired ≈700 timers/s). It is kept small because a
// citizen's message — a duress check-in among them — joins the next group
// commit behind whatever timers are in flight: in the load tool's 100,000
// day, same seed, same idle machine, 512 in flight made groups of ~300–500
// writes, 1,759 commits over 50 ms and duress → webhook p99 328 ms; 64
// made none over 50 ms and p99 116 ms, and still fires thousands of timers
// a second, far above what any channel can send.
const DefaultFireInFlight = 64

// FireBatch is the most timers one FireDue takes. After a backlog (a peak
// the writer could not keep up with, a restart after downtime) many
// thousands are due at once. Taken all at once, one pass held every key in
// memory and ran for minutes at a million, and a timer armed meanwhile
// with a due time inside the backlog (a hidden ladder's, a ladder step of
// a prompt delivered early) waited for the whole pass. Taken a batch at a
// time, each batch is the earliest due at its start, so every timer keeps
// its place in due order however long the backlog.
const FireBatch = 1024

// FireDue fires the first FireBatch timers due at the runner's clock (all of
// them when fewer are due), starting them in due order, up to fireInFlight
// at once (they share group commits). Each takes its registrant's turn
// (order) when it starts, so it never runs alongside another input of
// theirs and keeps its place among them; keys are distinct, so no
// registrant fires twice in a round. Errors are joined. A store outage
// (ErrStoreUnavailable), or ctx ending, starts no further timer: those
// left, and the failed ones, stay in the due index for the next pass. It
// returns how many timers it started; FireBatch of them means more may be
// due (the scheduler goes again at once).
func (r *Runner) FireDue(ctx context.Context) (int, error) {
	now, batch := r.Now(), r.batchOfTimers()
	// Enough keys that the stuck ones cannot fill the batch on their own.
	keys, err := r.Store.DueFirst(now, batch+r.stuck.size())
	if err != nil {
		return 0, err
	}
	keys = r.stuck.without(keys, now)
	return r.fireAll(ctx, keys[:min(len(keys), batch)])
}

// stuckTimerRetry is how long a timer that failed for good (ErrBadEvent: a
// record that does not open, an engine panic on its state) is stepped over
// before it is tried again. It stays due and is tried again each minute,
// with its error logged then, while every other timer fires in turn: stuck
// timers at the front of the due index must not fill each batch.
const stuckTimerRetry = time.Minute

// stuckTimers is the set of due timers FireDue steps over, with when each
// may be tried again. It holds only keys whose last firing failed for good.
type stuckTimers struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (s *stuckTimers) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.until)
}

// without drops from keys those to step over at now. An entry whose retry
// time has come is forgotten whether or not its key is due now (it is
// stuck again if it fails; a key no longer due — erased meanwhile — must
// not linger and widen every DueFirst).
func (s *stuckTimers) without(keys []string, now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, at := range s.until {
		if !now.Before(at) {
			delete(s.until, k)
		}
	}
	if len(s.until) == 0 {
		return keys
	}
	out := keys[:0:0]
	for _, k := range keys {
		if _, ok := s.until[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// note records how a firing of key ended.
func (s *stuckTimers) note(key string, err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		delete(s.until, key)
	case errors.Is(err, store.ErrBadEvent):
		if s.until == nil {
			s.until = map[string]time.Time{}
		}
		s.until[key] = now.Add(stuckTimerRetry)
	}
}

func (r *Runner) batchOfTimers() int {
	if r.fireBatch > 0 {
		return r.fireBatch
	}
	return FireBatch
}

// fireAll fires the timers of keys as FireDue describes.
func (r *Runner) fireAll(ctx context.Context, keys []string) (int, error) {
	limit := r.fireInFlight
	if limit < 1 {
		limit = DefaultFireInFlight
	}
	slots := make(chan struct{}, limit)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		outage atomic.Bool
	)
	started := 0
	for _, key := range keys {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || outage.Load() {
			break
		}
		t := r.order.enter(key) // its place in key's line, taken in due order
		started++
		wg.Go(func() {
			defer func() { <-slots }()
			<-t.ready
			err := r.fireHeld(ctx, key)
			t.leave()
			r.stuck.note(key, err, r.Now())
			if err == nil {
				return
			}
			if errors.Is(err, ErrStoreUnavailable) {
				outage.Store(true)
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait() // a round cut short by ctx (shutdown) leaves the rest due: no error
	return started, errors.Join(errs...)
}

// run commits one input — new state, escalations, and the replies and
// clean-up it produced — in one store transaction, then hands the replies
// to the channel. A redelivered inbound id sends what is still unsent.
func (r *Runner) run(ctx context.Context, key, inboundID string, input dialogs.Input, env store.Envelope) error {
	arrived := time.Now() // real time, for pacing; the engine's clock is r.Now
	unlock := r.order.lock(key)
	defer unlock()
	return r.runHeld(ctx, key, inboundID, input, env, arrived)
}

// runHeld is run for a caller that holds key's turn.
func (r *Runner) runHeld(ctx context.Context, key, inboundID string, input dialogs.Input, env store.Envelope, arrived time.Time) error {
	now := r.Now()
	if input.Kind == dialogs.KindTimer || input.Kind == dialogs.KindRollCall {
		env.Scheduled = true
	}
	if env.DeleteID != "" {
		env.DeleteBy = now.Add(PurgeWindow)
	}
	reserved, created := false, false
	handler := func(prev dialogs.State, found bool) dialogs.Result {
		created = false
		if !found && !fromCitizen(input.Kind) {
			// A timer, a delivery report or an unreachable notice about
			// someone with no record (erased meanwhile): keep nothing —
			// the engine would otherwise store a blank record for them.
			return dialogs.Result{State: prev, Erase: true}
		}
		if !found && input.Flood != dialogs.FloodNone {
			// Someone unknown, flooding: the hint at most, and no record.
			res := r.Engine.Handle(prev, input, now)
			res.State, res.Erase = prev, true
			return res
		}
		if !found {
			// A new record: within the registration limits only (flood.go).
			if !r.admit.reserve(r.Registrations, key, now) {
				return r.Engine.TryLater(input)
			}
			reserved = true
		}
		res := r.Engine.Handle(prev, input, now)
		created = !found && !res.Erase
		return res
	}
	var out store.Outcome
	var err error
	started := time.Now()
	if r.volatile {
		out, err = r.Store.Process(key, inboundID, now, handler)
	} else {
		out, err = r.Store.ProcessSend(key, inboundID, now, &env, handler)
	}
	if reserved {
		r.admit.settle(key, now, err == nil && !out.Duplicate && created)
	}
	if err != nil {
		if errors.Is(err, store.ErrBadEvent) {
			return fmt.Errorf("%w: %w", ErrUpdateFailed, err)
		}
		r.health.fail(r.Log, err)
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	r.health.ok(r.Log, started)
	select {
	case r.wake <- struct{}{}:
	default:
	}
	if r.afterInput != nil {
		r.afterInput(input)
	}
	if out.Duplicate {
		// Redelivered: the platform may never have shown our answer (a
		// crash between commit and send). What is unsent goes now.
		r.resendUser(ctx, key)
		return nil
	}
	if out.Purges > 0 {
		r.out.kickPurge()
	}
	mine := r.claimFresh(out.Sends) // before pacing: Resend must not send them meanwhile (outbox.go)
	// The reply goes first and escalations are announced after it: the
	// embassy's copy is already durable, and a duress reply must not wait
	// for anything a normal check-in does not.
	if fromCitizen(input.Kind) && (input.Flood != dialogs.FloodSilent || len(out.Sends) > 0) {
		// A silenced message has nothing to pace, and its place in the
		// citizen's line is given up at once.
		r.pace(ctx, arrived)
	}
	if r.volatile {
		r.sendVolatile(ctx, env, out.Result)
	}
	for _, it := range mine {
		r.handOver(ctx, it)
	}
	if len(out.Events) > 0 && r.OnEvents != nil {
		r.OnEvents(out.Events)
	}
	return nil
}

// sendVolatile is the path without a send queue, kept only as the
// benchmarks' baseline: the reply is handed over and forgotten.
func (r *Runner) sendVolatile(ctx context.Context, env store.Envelope, res dialogs.Result) {
	if len(res.Replies) == 0 {
		return
	}
	if env.Address == "" {
		env.Address = res.State.Address
	}
	if s, err := r.sender(env.Channel); err == nil {
		_ = s.Send(ctx, env.Address, Response{Priority: priorityOf(res.Urgent, env.Scheduled), Replies: res.Replies})
	}
}
