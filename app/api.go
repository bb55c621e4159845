package app

import (
	"time"

	"github.com/checkinbot/checkinbot/api"
)

// mountAPI serves the embassy API (DESIGN §5) under /v1 on the App's
// listener, with the embassies' tokens from the secrets, the store, and
// the runner as the engine's way to learn of a resolved case.
func (a *App) mountAPI() {
	var tokens []api.Token
	for _, t := range a.opt.Secrets.APITokens {
		tokens = append(tokens, api.Token{Embassy: t.Embassy, Label: t.Label, Secret: t.Secret})
	}
	opt := api.Options{Store: a.Store, Resolver: a.Runner, Tokens: tokens, Now: func() time.Time { return a.Runner.Now() }, Log: a.log}
	if a.opt.API != nil {
		opt = a.opt.API(opt)
	}
	a.API = api.New(opt)
	a.mux.Handle(api.Prefix, a.API)
}
