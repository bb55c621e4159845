package bot

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// Durable replies (DESIGN §4, "and every reply to the citizen"). Every
// response is a row of the store's send queue, written in the transaction
// that produced it. After the commit the runner hands it to its channel
// and marks it in flight; the channel reports, through Response.Done, when
// the platform accepted it (or that it never will). Acceptances are
// acknowledged to the store in batches that ride the next group commit, so
// marking a reply sent costs no commit of its own on the hot path: an
// acknowledgement lost in a crash only means the reply is sent once more
// at the next start.
//
// Unsent rows go out again at start (RunOutbox), when the citizen's
// message is redelivered (a duplicate inbound), and every ResendEvery for
// rows no channel queue holds. Rows in flight in this process are never
// sent twice.

// Receipt is a channel's answer for one Response.
type Receipt struct {
	// SentIDs are the platform ids of the messages sent, so that Sensitive
	// ones can be deleted later.
	SentIDs []string
	// Err is nil when the platform accepted the response. ErrUnreachable
	// (the citizen blocked the bot) and ErrRejected (the platform refuses
	// this message for good) are final; any other error means the channel
	// stopped trying for now, and the response is sent again later.
	Err error
}

// Errors with behaviour, asked with errors.Is.
var (
	// ErrUnreachable: the platform will not deliver to this citizen (on
	// Telegram, a 403: they blocked the bot). The embassy is told.
	ErrUnreachable = errors.New("bot: the citizen cannot be reached on this channel")
	// ErrRejected: the platform refuses this message or delete for good
	// (a 400: too long, too old to delete, not found). It is not retried.
	ErrRejected = errors.New("bot: the platform rejected this request for good")
	// ErrStoreUnavailable: the store cannot write now (disk full, file
	// closed). The update was not recorded and must come again: channels
	// hold it (no acknowledgement) and retry with backoff.
	ErrStoreUnavailable = errors.New("bot: the store cannot write now; the update must come again")
	// ErrUpdateFailed: this one update fails deterministically (the engine
	// panicked on it, its registrant record is unreadable). Retrying cannot
	// help, so channels may give it up; the runner logged and counted it.
	ErrUpdateFailed = errors.New("bot: this update cannot be processed")
)

// Deleter is implemented by channels that can delete messages: the
// citizen's own (Telegram) or the bot's (Telegram, WhatsApp revoke).
// Delete waits for the platform's answer; ErrRejected and ErrUnreachable
// are final, other errors are retried later.
type Deleter interface {
	Delete(ctx context.Context, address, msgID string) error
}

// Defaults of the runner's outbox settings.
const (
	// DefaultStaleAfter: a scheduled prompt unsent for this long (the
	// process was down) is dropped rather than sent late: a reminder from
	// yesterday only confuses.
	DefaultStaleAfter = 6 * time.Hour
	// DefaultDrainTimeout bounds a graceful shutdown's wait for replies.
	DefaultDrainTimeout = 10 * time.Second
	// DefaultResendEvery is the outbox poll loop's period: the guarantee
	// behind the immediate attempt after commit.
	DefaultResendEvery = time.Minute
)

// Clean-up timing (DESIGN §3).
const (
	// PurgeWindow is how long after sending a message it can still be
	// deleted: Telegram allows 48 h; an hour's margin for clocks and
	// backlogs.
	PurgeWindow = 47 * time.Hour
	// AbandonedAfter: a Sensitive message is deleted this long after it was
	// sent even when no result ever asked for the purge (an exchange
	// abandoned half-way, a process that never saw the end of it).
	AbandonedAfter = time.Hour
	// purgeRetry is the wait before a delete that failed for a passing
	// reason is tried again.
	purgeRetry = time.Minute
	// deleteTimeout bounds one delete, so one stuck channel cannot hold the
	// purge of the others for long.
	deleteTimeout = 30 * time.Second
)

// outbox is the runner's in-memory side of the send queue: which rows are
// in flight, and the acknowledgements waiting for a commit.
type outbox struct {
	mu       sync.Mutex
	inflight map[uint64]bool
	acks     []store.SendAck
	ackSeqs  []uint64 // released from inflight once their acks commit
	flushing bool
	kick     chan struct{}
}

func newOutbox() outbox {
	return outbox{inflight: map[uint64]bool{}, kick: make(chan struct{}, 1)}
}

// claim marks a row in flight; false if it already is.
func (o *outbox) claim(seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.inflight[seq] {
		return false
	}
	o.inflight[seq] = true
	return true
}

// held reports whether a row is in flight (a channel holds it).
func (o *outbox) held(seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.inflight[seq]
}

func (o *outbox) release(seq uint64) {
	o.mu.Lock()
	delete(o.inflight, seq)
	o.mu.Unlock()
}

// idle reports whether nothing is in flight and every ack is committed.
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.inflight) == 0 && len(o.acks) == 0 && !o.flushing
}

func (o *outbox) kickPurge() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// priorityOf ranks a response in the channel's queue.
func priorityOf(urgent, scheduled bool) Priority {
	switch {
	case scheduled:
		return PriorityReminder
	case urgent:
		return PrioritySafety
	}
	return PriorityReply
}

// dispatch hands one queued row to its channel, unless it is in flight.
func (r *Runner) dispatch(ctx context.Context, it store.SendItem) {
	if !r.out.claim(it.Seq) {
		return
	}
	r.handOver(ctx, it)
}

// claimFresh claims the rows an event just wrote, at once after its
// commit: the periodic Resend may read them before the runner hands them
// over (it paces the reply floor first), and must find them in flight. It
// returns the rows claimed; a row Resend claimed first is its to send.
func (r *Runner) claimFresh(items []store.SendItem) []store.SendItem {
	var mine []store.SendItem
	for _, it := range items {
		if r.out.claim(it.Seq) {
			mine = append(mine, it)
		}
	}
	return mine
}

// handOver sends a row the caller claimed. Even a row written just now may
// have been sent by Resend, acknowledged and released from flight before
// the claim: one read tells, and sent once is enough.
func (r *Runner) handOver(ctx context.Context, it store.SendItem) {
	if queued, err := r.Store.StillQueued(it.UserKey, it.Seq); err != nil || !queued {
		r.out.release(it.Seq)
		return
	}
	if len(it.Replies) == 0 { // only a clean-up request: nothing to send
		r.settle(it, Receipt{})
		return
	}
	s, err := r.sender(it.Channel)
	if err == nil {
		var once sync.Once
		err = s.Send(ctx, it.Address, Response{Priority: priorityOf(it.Urgent, it.Scheduled), Replies: it.Replies,
			Done: func(rc Receipt) { once.Do(func() { r.settle(it, rc) }) }})
	}
	if err == nil {
		r.stats.handed(priorityOf(it.Urgent, it.Scheduled))
	}
	if err != nil {
		r.out.release(it.Seq)
		r.Log.Warn("reply not handed to its channel; it stays queued and is sent again later", "channel", it.Channel)
	}
}

// settle takes a channel's receipt for a row.
func (r *Runner) settle(it store.SendItem, rc Receipt) {
	if len(it.Replies) > 0 {
		r.stats.settled(it.Channel, rc.Err == nil)
	}
	now := r.Now()
	ack := store.SendAck{Seq: it.Seq, UserKey: it.UserKey}
	switch {
	case rc.Err == nil:
		ack.Accepted = true
		if it.Sensitive() {
			for _, id := range rc.SentIDs {
				ack.Remember = append(ack.Remember, store.PurgeRow{Channel: it.Channel, Address: it.Address, MsgID: id,
					Due: now.Add(AbandonedAfter), Deadline: now.Add(PurgeWindow)})
			}
		}
		ack.Purge, ack.PurgeAt = it.PurgeSensitive, now
		if it.Prompt {
			go r.promptDelivered(it)
		}
	case errors.Is(rc.Err, ErrUnreachable):
		go func() {
			if err := r.Unreachable(context.Background(), it.Channel, it.Address); err != nil {
				r.Log.Error("could not record that a citizen is unreachable", "channel", it.Channel, "err", err)
			}
		}()
	case errors.Is(rc.Err, ErrRejected):
		r.Log.Error("the platform refused a reply for good; it is dropped", "channel", it.Channel)
	default:
		// The channel stopped trying for now: the row stays, and goes
		// again with the next resend.
		r.out.release(it.Seq)
		return
	}
	r.queueAck(ack)
}

// promptDelivered tells the engine that a check-in prompt reached the
// platform: the missed check-in ladder runs from now.
func (r *Runner) promptDelivered(it store.SendItem) {
	err := r.run(context.Background(), it.UserKey, "", dialogs.Input{Kind: dialogs.KindPromptDelivered, Key: it.UserKey,
		Channel: it.Channel, Address: it.Address}, store.Envelope{Channel: it.Channel, Address: it.Address, Scheduled: true})
	if err != nil {
		r.Log.Error("prompt delivery not recorded", "channel", it.Channel, "err", err)
	}
}

// queueAck adds an acknowledgement to the next batch, starting a flusher
// if none runs: acks of replies accepted while one batch commits share the
// next commit.
func (r *Runner) queueAck(a store.SendAck) {
	r.out.mu.Lock()
	r.out.acks = append(r.out.acks, a)
	r.out.ackSeqs = append(r.out.ackSeqs, a.Seq)
	start := !r.out.flushing
	r.out.flushing = true
	r.out.mu.Unlock()
	if start {
		go r.flushAcks()
	}
}

// flushAcks commits queued acks until none is left. While the store
// cannot write they wait (the rows stay in flight, so nothing is sent
// twice); after Close they are dropped — the rows go again at next start.
func (r *Runner) flushAcks() {
	backoff := 100 * time.Millisecond
	for {
		r.out.mu.Lock()
		acks, seqs := r.out.acks, r.out.ackSeqs
		r.out.acks, r.out.ackSeqs = nil, nil
		if len(acks) == 0 {
			r.out.flushing = false
			r.out.mu.Unlock()
			return
		}
		r.out.mu.Unlock()
		started := time.Now()
		err := r.Store.AckSends(acks)
		if err != nil && !errors.Is(err, store.ErrClosed) {
			r.health.fail(r.Log, err)
			r.out.mu.Lock()
			r.out.acks = append(acks, r.out.acks...)
			r.out.ackSeqs = append(seqs, r.out.ackSeqs...)
			r.out.mu.Unlock()
			time.Sleep(backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		if err == nil {
			r.health.ok(r.Log, started)
		}
		backoff = 100 * time.Millisecond
		purge := false
		r.out.mu.Lock()
		for _, s := range seqs {
			delete(r.out.inflight, s)
		}
		r.out.mu.Unlock()
		for _, a := range acks {
			purge = purge || a.Purge
		}
		if purge {
			r.out.kickPurge()
		}
	}
}

// resendUser hands over a citizen's unsent rows.
func (r *Runner) resendUser(ctx context.Context, key string) {
	items, err := r.Store.PendingSends(key)
	if err != nil {
		r.Log.Error("cannot read the send queue", "err", err)
		return
	}
	for _, it := range items {
		r.dispatch(ctx, it)
	}
}

// resendPage is how many rows Resend reads at a time.
const resendPage = 1000

// Resend hands every unsent row not in flight to its channel, and drops
// scheduled prompts older than StaleAfter (never the SOS flow, never a
// reply to the citizen's own message). It returns how many it handed over.
// It reads the queue a page at a time and never opens a row a channel
// already holds: in a crowded hour at a million registrants the queue is
// hundreds of thousands of prompts waiting for the platform's rate, nearly
// all of them in flight, and reading every one each minute cost seconds of
// CPU and, held at once, gigabytes of heap.
func (r *Runner) Resend(ctx context.Context) (int, error) {
	now := r.Now()
	sent, stale := 0, 0
	var cursor []byte
	for {
		items, next, err := r.Store.UnsentSends(cursor, r.out.held, resendPage)
		if err != nil {
			return sent, err
		}
		for _, it := range items {
			if r.stale(it, now) {
				if r.out.claim(it.Seq) {
					stale++
					r.queueAck(store.SendAck{Seq: it.Seq, UserKey: it.UserKey})
				}
				continue
			}
			r.dispatch(ctx, it)
			sent++
		}
		if next == nil || ctx.Err() != nil {
			break
		}
		cursor = next
	}
	if stale > 0 {
		r.Log.Info("stale scheduled prompts dropped instead of sent late", "count", stale)
	}
	r.out.kickPurge() // and what is due for deletion goes too
	return sent, nil
}

// stale reports whether an unsent row is too old to be worth sending.
func (r *Runner) stale(it store.SendItem, now time.Time) bool {
	return r.StaleAfter > 0 && it.Scheduled && !it.Urgent && now.Sub(it.Created) > r.StaleAfter
}

// RunOutbox sends what an earlier run left unsent, then keeps purging due
// messages and re-sending rows no channel holds, until ctx ends. Serve and
// demo run it beside the scheduler.
func (r *Runner) RunOutbox(ctx context.Context) error {
	if _, err := r.Resend(ctx); err != nil {
		r.Log.Error("cannot read the send queue", "err", err)
	}
	lastResend := time.Now()
	for {
		next := r.purge(ctx)
		every := r.ResendEvery
		if every <= 0 {
			every = DefaultResendEvery
		}
		sleep := every - time.Since(lastResend)
		if !next.IsZero() {
			sleep = min(sleep, max(next.Sub(r.Now()), 10*time.Millisecond))
		}
		t := time.NewTimer(max(sleep, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.out.kick:
			t.Stop()
		case <-t.C:
		}
		if time.Since(lastResend) >= every {
			if _, err := r.Resend(ctx); err != nil {
				r.Log.Error("cannot read the send queue", "err", err)
			}
			lastResend = time.Now()
		}
	}
}

// purge deletes the messages due for deletion — outside any transaction —
// and settles their rows. It returns when the next row falls due.
func (r *Runner) purge(ctx context.Context) time.Time {
	now := r.Now()
	rows, next, err := r.Store.DuePurges(now)
	if err != nil {
		r.Log.Error("cannot read the purge list", "err", err)
		return now.Add(purgeRetry)
	}
	var done, retry []store.PurgeRow
	failed := 0
	for _, row := range rows {
		if ctx.Err() != nil {
			break
		}
		if now.After(row.Deadline) {
			done = append(done, row) // too old for the platform to delete
			continue
		}
		s, err := r.sender(row.Channel)
		d, ok := s.(Deleter)
		if err != nil || !ok {
			done = append(done, row)
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, deleteTimeout)
		err = d.Delete(dctx, row.Address, row.MsgID)
		cancel()
		if err == nil || errors.Is(err, ErrRejected) || errors.Is(err, ErrUnreachable) {
			done = append(done, row)
			continue
		}
		failed++
		row.Tries++
		row.Due = now.Add(purgeRetry)
		retry = append(retry, row)
		if next.IsZero() || row.Due.Before(next) {
			next = row.Due
		}
	}
	if failed > 0 {
		r.Log.Warn("messages could not be deleted yet; retrying", "count", failed)
	}
	if err := r.Store.SettlePurges(done, retry); err != nil && !errors.Is(err, store.ErrClosed) {
		r.Log.Error("purge results not recorded; the deletes are repeated", "err", err)
	}
	return next
}

// Drain waits until every reply handed to a channel was settled and its
// acknowledgement committed, or until ctx ends (then the rest stays in the
// send queue for the next start). Stop intake first.
func (r *Runner) Drain(ctx context.Context) error {
	for !r.out.idle() {
		select {
		case <-ctx.Done():
			r.out.mu.Lock()
			n := len(r.out.inflight)
			r.out.mu.Unlock()
			r.Log.Warn("shutdown: replies not yet accepted stay queued for the next start", "count", n)
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// GivenUp counts updates given up because they fail deterministically.
func (r *Runner) GivenUp() int64 { return r.givenUp.Load() }

// DrainReplies is Drain bounded by DrainTimeout as well as ctx: what a
// channel's Run calls after it stopped intake and before it stops sending
// (Inbox).
func (r *Runner) DrainReplies(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.DrainTimeout)
	defer cancel()
	return r.Drain(ctx)
}
