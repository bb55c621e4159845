package telegram

import (
	"container/list"
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/checkinbot/checkinbot/bot"
)

// sender is the outbound queue. It keeps Telegram's limits — a global rate
// and a least interval per chat — and sends by priority: the SOS flow,
// then replies, then scheduled reminders; within a chat, in order. A 429
// pauses that chat for retry_after; 5xx and network errors are retried with
// backoff; a 403 (the citizen blocked the bot) drops the chat's queue and
// reports each dropped response as bot.ErrUnreachable, so the runner tells
// the embassy. Every response is reported (Response.Done) once Telegram
// accepted it, with the id of the message it became.
type sender struct {
	c *Channel

	mu     sync.Mutex
	wake   chan struct{}
	queues [3]*list.List // by priority: *outItem
	// chatNext is when each chat may next receive. An entry in the past
	// says no more than no entry, so forget evicts those, and the map holds
	// only the chats written to within about the last pacing interval (or
	// paused by a 429 or a retry), not every chat ever written to.
	chatNext map[int64]time.Time
	// sweepAt is the size at which chatNext is next swept: twice what the
	// last sweep left, at least minSweep, so sweeping costs O(1) per send
	// amortised and the map stays within twice its live entries.
	sweepAt  int
	busy     map[int64]bool
	nextSend time.Time // global spacing (Options.PaidRate; GlobalRate without paid broadcast)
	// nextFree spaces the messages sent without allow_paid_broadcast at
	// Options.GlobalRate: with paid broadcast, only scheduled prompts may
	// go faster.
	nextFree time.Time
	tasks    chan func(context.Context)
}

type outItem struct {
	chat   int64
	prio   bot.Priority
	text   string
	markup models.ReplyMarkup
	// done receives the outcome; nil for direct messages.
	done   func(bot.Receipt)
	tries  int
	queued time.Time
}

// report settles an item; call it without holding mu.
func (it *outItem) report(rc bot.Receipt) {
	if it.done != nil {
		it.done(rc)
	}
}

func newSender(c *Channel) *sender {
	s := &sender{c: c, wake: make(chan struct{}, 1), chatNext: map[int64]time.Time{}, busy: map[int64]bool{},
		sweepAt: minSweep, tasks: make(chan func(context.Context), 1024)}
	for i := range s.queues {
		s.queues[i] = list.New()
	}
	return s
}

func (s *sender) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueue adds a message for chat; done (if not nil) hears its outcome.
func (s *sender) enqueue(chat int64, prio bot.Priority, text string, markup models.ReplyMarkup, done func(bot.Receipt)) {
	prio = min(max(prio, bot.PrioritySafety), bot.PriorityReminder)
	s.mu.Lock()
	s.queues[prio].PushBack(&outItem{chat: chat, prio: prio, text: text, markup: markup, done: done, queued: time.Now()})
	s.mu.Unlock()
	s.notify()
}

// Queued counts messages waiting, for tests and health.
func (s *sender) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queues[0].Len() + s.queues[1].Len() + s.queues[2].Len()
}

// later runs an API call that is not a chat message (answering a callback,
// deleting a message) on the worker pool, outside the message limits.
func (s *sender) later(f func(context.Context)) {
	select {
	case s.tasks <- f:
	default:
		go f(context.Background()) // never block the caller on a full pool
	}
}

// run dispatches queued messages until ctx ends.
func (s *sender) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < s.c.opt.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case f := <-s.tasks:
					f(ctx)
				}
			}
		}()
	}
	defer wg.Wait()
	interval := time.Duration(float64(time.Second) / s.c.opt.PaidRate)
	free := time.Duration(float64(time.Second) / s.c.opt.GlobalRate)
	for {
		item, wait := s.next(time.Now())
		if item == nil {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-s.wake:
				t.Stop()
			case <-t.C:
			}
			continue
		}
		start := time.Now()
		s.mu.Lock()
		s.nextSend = start.Add(interval)
		if !s.paid(item.prio) {
			s.nextFree = start.Add(free)
		}
		s.mu.Unlock()
		select {
		case s.tasks <- func(ctx context.Context) { s.deliver(ctx, item) }:
		case <-ctx.Done():
			return
		}
	}
}

// next takes the first message, by priority and then age, whose chat is
// free and allowed to receive now. Otherwise it says how long to wait.
func (s *sender) next(now time.Time) (*outItem, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if wait := s.nextSend.Sub(now); wait > 0 {
		return nil, wait
	}
	wait := time.Minute
	for prio, q := range s.queues {
		if !s.paid(bot.Priority(prio)) && s.nextFree.After(now) {
			if q.Len() > 0 {
				wait = min(wait, s.nextFree.Sub(now))
			}
			continue
		}
		seen := map[int64]bool{} // a chat's first item in this queue decides for the chat
		for e := q.Front(); e != nil; e = e.Next() {
			it := e.Value.(*outItem)
			if seen[it.chat] {
				continue
			}
			seen[it.chat] = true
			if s.busy[it.chat] {
				continue
			}
			if at := s.chatNext[it.chat]; at.After(now) {
				wait = min(wait, at.Sub(now))
				continue
			}
			q.Remove(e)
			s.busy[it.chat] = true
			return it, 0
		}
	}
	return nil, wait
}

// paid reports whether messages of prio go with allow_paid_broadcast:
// scheduled prompts and reminders only, when the operator enabled it.
// Replies and the SOS flow answer the citizen's own message, at far less
// than the free rate, and go first anyway (priority): paying for them
// would buy nothing.
func (s *sender) paid(prio bot.Priority) bool {
	return s.c.opt.PaidBroadcast && prio == bot.PriorityReminder
}

// minSweep is the least size of chatNext at which it is swept.
const minSweep = 1024

// forget drops the chats whose pacing time has passed at now: idle longer
// than the interval, they may receive at once, as a chat never written to
// may. It runs only when the map has doubled since the last sweep (caller
// holds mu).
func (s *sender) forget(now time.Time) {
	if len(s.chatNext) < s.sweepAt {
		return
	}
	for chat, at := range s.chatNext {
		if !at.After(now) && !s.busy[chat] {
			delete(s.chatNext, chat)
		}
	}
	s.sweepAt = max(2*len(s.chatNext), minSweep)
}

// chats is how many chats the pacing map holds, for tests.
func (s *sender) chats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.chatNext)
}

// deliver sends one message, settles its chat, and reports the outcome.
func (s *sender) deliver(ctx context.Context, it *outItem) {
	msg, err := s.c.api.SendMessage(ctx, &tgbot.SendMessageParams{ChatID: it.chat, Text: it.text, ReplyMarkup: it.markup,
		AllowPaidBroadcast: s.paid(it.prio)})
	var settled []*outItem // reported after mu is released
	var receipt bot.Receipt
	s.mu.Lock()
	defer func() {
		delete(s.busy, it.chat)
		s.mu.Unlock()
		s.notify()
		for _, x := range settled {
			x.report(receipt)
		}
	}()
	// Counted from the answer, not the request: Telegram sees two
	// messages at least PerChat apart however the network jitters.
	now := time.Now()
	s.forget(now)
	s.chatNext[it.chat] = now.Add(s.c.opt.PerChat)
	if err == nil {
		if msg != nil {
			receipt.SentIDs = []string{strconv.Itoa(msg.ID)}
		}
		settled = append(settled, it)
		return
	}
	if ctx.Err() != nil {
		// Shutting down: not accepted; the row stays for the next start.
		receipt.Err, settled = ctx.Err(), append(settled, it)
		return
	}
	var tooMany *tgbot.TooManyRequestsError
	switch {
	case errors.As(err, &tooMany):
		s.chatNext[it.chat] = time.Now().Add(time.Duration(max(tooMany.RetryAfter, 1)) * time.Second)
		s.queues[it.prio].PushFront(it)
		s.c.opt.Log.Warn("telegram rate limit: chat paused", "retry_after_s", tooMany.RetryAfter)
		s.c.rateLimited.Add(1)
	case errors.Is(err, tgbot.ErrorForbidden):
		settled = append(s.dropChat(it.chat), it)
		receipt.Err = bot.ErrUnreachable
		s.c.opt.Log.Info("telegram: a citizen blocked the bot; the embassy is told")
	case errors.Is(err, tgbot.ErrorBadRequest), errors.Is(err, tgbot.ErrorNotFound), errors.Is(err, tgbot.ErrorUnauthorized):
		settled, receipt.Err = append(settled, it), bot.ErrRejected
		s.c.opt.Log.Error("telegram refused a message; dropped", "err", classify(err))
	default: // 5xx, network: retry with backoff
		it.tries++
		backoff := min(time.Duration(1<<min(it.tries, 6))*500*time.Millisecond, 30*time.Second)
		s.chatNext[it.chat] = time.Now().Add(backoff)
		s.queues[it.prio].PushFront(it)
		s.c.opt.Log.Warn("telegram send failed; retrying", "err", classify(err), "in", backoff)
	}
}

// dropChat removes and returns everything queued for a chat (caller holds mu).
func (s *sender) dropChat(chat int64) []*outItem {
	var dropped []*outItem
	for _, q := range s.queues {
		for e := q.Front(); e != nil; {
			next := e.Next()
			if it := e.Value.(*outItem); it.chat == chat {
				q.Remove(e)
				dropped = append(dropped, it)
			}
			e = next
		}
	}
	return dropped
}

// deleteMessage deletes one message of a chat, waiting for Telegram's
// answer: a 400 (too old, already gone) is final, a 403 too.
func (s *sender) deleteMessage(ctx context.Context, chat int64, id int) error {
	_, err := s.c.api.DeleteMessage(ctx, &tgbot.DeleteMessageParams{ChatID: chat, MessageID: id})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tgbot.ErrorBadRequest), errors.Is(err, tgbot.ErrorNotFound):
		return bot.ErrRejected
	case errors.Is(err, tgbot.ErrorForbidden):
		return bot.ErrUnreachable
	}
	return errors.New("telegram deleteMessage: " + classify(err))
}

// classify names an API error without its text, which can carry the token
// or, for some library errors, a message body.
func classify(err error) string {
	var tooMany *tgbot.TooManyRequestsError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &tooMany):
		return "429 too many requests"
	case errors.Is(err, tgbot.ErrorForbidden):
		return "403 forbidden"
	case errors.Is(err, tgbot.ErrorBadRequest):
		return "400 bad request"
	case errors.Is(err, tgbot.ErrorUnauthorized):
		return "401 unauthorized (check the token)"
	case errors.Is(err, tgbot.ErrorNotFound):
		return "404 not found"
	case errors.Is(err, tgbot.ErrorConflict):
		return "409 conflict"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "server or network error"
}
