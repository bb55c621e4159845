package ops_test

import (
	"math"
	"testing"
)

// ratedChannel is a channel that reports an unlimited send rate, as the
// terminal does.
type ratedChannel struct{ linkedChannel }

func (c *ratedChannel) Name() string      { return "rated" }
func (c *ratedChannel) SendRate() float64 { return math.Inf(1) }

// TestSendRateGauge: /metrics shows each channel's sustainable send rate
// (bot.SendRater) by channel name — Telegram's configured global rate,
// +Inf for an unlimited channel — and nothing for a channel that does not
// report one.
func TestSendRateGauge(t *testing.T) {
	p := runWithAdmin(t, &linkedChannel{state: "connected"}, &ratedChannel{})
	fams, _ := scrape(t, p)
	if v, ok := value(fams, "checkinbot_channel_send_rate", "channel", "telegram"); !ok || v != 1000 {
		t.Errorf("checkinbot_channel_send_rate{channel=telegram} = %v (present %v), want 1000 (apptest's global rate)", v, ok)
	}
	if v, ok := value(fams, "checkinbot_channel_send_rate", "channel", "rated"); !ok || !math.IsInf(v, 1) {
		t.Errorf("checkinbot_channel_send_rate{channel=rated} = %v (present %v), want +Inf", v, ok)
	}
	if _, ok := value(fams, "checkinbot_channel_send_rate", "channel", "linked"); ok {
		t.Error("a channel without a send rate has a series")
	}
}
