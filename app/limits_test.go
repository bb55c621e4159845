package app_test

import (
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/internal/testkit/apptest"
)

// TestLimitsReachTheRunner: the [limits] keys set the runner's flood and
// registration limits, unset keys keep the runner's defaults, and
// Unlimited (the demo) turns both off.
func TestLimitsReachTheRunner(t *testing.T) {
	for _, c := range []struct {
		name      string
		edit      func(*app.Options)
		flood     bot.FloodLimit
		registers bot.RegistrationLimit
	}{
		{"defaults", func(*app.Options) {}, bot.DefaultFloodLimit, bot.DefaultRegistrationLimit},
		{"configured", func(o *app.Options) {
			o.Config.Limits.FloodMessages, o.Config.Limits.FloodWindow.Duration = 7, time.Minute
			o.Config.Limits.RegistrationsPerChat, o.Config.Limits.RegistrationsPerMinute = 2, 9
		}, bot.FloodLimit{Messages: 7, Window: time.Minute}, bot.RegistrationLimit{PerChatPerDay: 2, PerMinute: 9}},
		{"partly configured", func(o *app.Options) { o.Config.Limits.RegistrationsPerMinute = 9 },
			bot.DefaultFloodLimit, bot.RegistrationLimit{PerChatPerDay: bot.DefaultRegistrationLimit.PerChatPerDay, PerMinute: 9}},
		{"unlimited", func(o *app.Options) { o.Unlimited = true; o.Config.Limits.FloodMessages = 7 }, bot.FloodLimit{}, bot.RegistrationLimit{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := apptest.MustRunApp(t, c.edit)
			if got := p.App.Runner.Flood; got != c.flood {
				t.Errorf("flood limit %+v, want %+v", got, c.flood)
			}
			if got := p.App.Runner.Registrations; got != c.registers {
				t.Errorf("registration limit %+v, want %+v", got, c.registers)
			}
		})
	}
}
