package telegram

// RateLimited counts the 429 (Too Many Requests) answers Telegram gave
// since the channel started: each paused one chat for retry_after. A
// rising rate means the configured pace is above what Telegram allows
// this bot (/metrics: checkinbot_telegram_rate_limited_total).
func (c *Channel) RateLimited() int64 { return c.rateLimited.Load() }
