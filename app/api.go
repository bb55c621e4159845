package app

import (
	"slices"
	"time"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/dialogs"
)

// mountAPI serves the embassy API (DESIGN §5) under /v1 on the App's
// listener, with the embassies' tokens from the secrets, the store, and
// the runner as the engine's way to learn of a resolved case and as the
// roll calls' runner.
func (a *App) mountAPI() {
	var tokens []api.Token
	for _, t := range a.opt.Secrets.APITokens {
		tokens = append(tokens, api.Token{Embassy: t.Embassy, Label: t.Label, Secret: t.Secret})
	}
	opt := api.Options{Store: a.Store, Resolver: a.Runner, Tokens: tokens, Now: func() time.Time { return a.Runner.Now() }, Log: a.log,
		RollCalls: a.Runner, Covers: covers(a.Engine.Directory),
		Observe: func(route string, code int, took time.Duration) { a.Ops.ObserveAPI(route, code, took) }} // a.Ops: built later in Open, before serving
	if a.opt.API != nil {
		opt = a.opt.API(opt)
	}
	a.API = api.New(opt)
	a.mux.Handle(api.Prefix, a.API)
}

// covers reports whether an embassy of dir covers a country: one of its
// countries, or any configured country when it lists none.
func covers(dir dialogs.Directory) func(embassy, country string) bool {
	return func(embassy, country string) bool {
		for _, e := range dir.Embassies {
			if e.ID != embassy {
				continue
			}
			if len(e.Countries) > 0 {
				return slices.Contains(e.Countries, country)
			}
			return slices.ContainsFunc(dir.Countries, func(c dialogs.Country) bool { return c.Code == country })
		}
		return false
	}
}
