package telegram

import (
	"fmt"
	"time"
)

// RateLimited counts the 429 (Too Many Requests) answers Telegram gave
// since the channel started: each paused one chat for retry_after. A
// rising rate means the configured pace is above what Telegram allows
// this bot (/metrics: checkinbot_telegram_rate_limited_total).
func (c *Channel) RateLimited() int64 { return c.rateLimited.Load() }

// DefaultReadyWithin is how long polling may go without a successful
// getUpdates before /readyz calls the channel not ready: four long polls
// of the default 30 s, so one slow or failed poll does not flap it.
const DefaultReadyWithin = 2 * time.Minute

// markContact records a successful call to Telegram that proves intake
// works: a getUpdates answer (polling) or the webhook registration.
func (c *Channel) markContact() { c.contact.Store(time.Now().UnixNano()) }

// Ready reports whether Telegram intake works now (ops.Readier, for
// /readyz): polling, a getUpdates succeeded within ReadyWithin (the
// channel's start counts as one, so a fresh start is not flagged before
// its first poll could answer); webhook mode, Telegram accepted the
// webhook (it then pushes updates; no call repeats to be timed). The
// reason names the call and its age, never a chat.
func (c *Channel) Ready() (bool, string) {
	last := c.contact.Load()
	switch {
	case c.opt.Webhook != nil && !c.webhookSet.Load():
		return false, "telegram: the webhook is not registered (setWebhook has not succeeded)"
	case c.opt.Webhook != nil:
		return true, ""
	case last == 0:
		return false, "telegram: not polling (the channel is not running)"
	}
	if age := time.Since(time.Unix(0, last)); age > c.opt.ReadyWithin {
		return false, fmt.Sprintf("telegram: no successful getUpdates for %s (limit %s)", age.Truncate(time.Second), c.opt.ReadyWithin)
	}
	return true, ""
}
