package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/identity"
)

// Verified identity (DESIGN §12, issue 14): the App tells the engine which
// providers to offer and where links point, mounts the browser side
// (package identity's handlers) on its listener over the store's links and
// a recorder that runs through the engine, and prunes expired links.

// IdentityOptions turn verification on. Without them nothing is offered
// and nothing is served under /id/.
type IdentityOptions struct {
	// PublicBaseURL is where citizens' browsers reach the App's listener;
	// links are PublicBaseURL/id/start/<token>.
	PublicBaseURL string
	// Providers are offered to citizens of their nationalities.
	Providers []dialogs.IdentityProvider
	// Routes builds the browser side — package identity's service
	// (identity.New(…).Handler(), mounted for "/id/" and its JWKS path) —
	// on what the App made for it; each pattern is mounted on the
	// listener.
	Routes func(env IdentityEnv) (map[string]http.Handler, error)
	// PruneEvery is how often expired links and flows are deleted; zero
	// means every minute.
	PruneEvery time.Duration
}

// IdentityEnv is what the browser side is built on.
type IdentityEnv struct {
	// Links is the store (single-use links and flows).
	Links identity.Links
	// Recorder records a verified identity through the engine, in the
	// citizen's turn: state, registration.updated and the chat's
	// confirmation in one transaction.
	Recorder identity.Recorder
	// Page gives the done and the failure page's title and text in the
	// citizen's language (locales: IdentityPageTitle, IdentityPageDone,
	// IdentityPageError); lang may be empty (English).
	Page func(done bool, lang string) (title, body string)
	// Log is the App's operational log.
	Log *slog.Logger
}

// openIdentity configures the engine and mounts the browser side.
func (a *App) openIdentity() error {
	o := a.opt.Identity
	if o == nil {
		return nil
	}
	if o.PublicBaseURL == "" || len(o.Providers) == 0 || o.Routes == nil {
		return errors.New("app: identity verification needs a public base URL, providers and their handlers")
	}
	if a.opt.Listen == "" {
		return errors.New("app: identity providers are configured but no listen address is set for the browser's callbacks (telegram.listen)")
	}
	a.Engine.Identity = dialogs.IdentityConfig{PublicBaseURL: o.PublicBaseURL, Providers: o.Providers}
	routes, err := o.Routes(IdentityEnv{Links: a.Store, Recorder: identityRecorder{a}, Page: a.identityPage, Log: a.log})
	if err != nil {
		return err
	}
	for pattern, h := range routes {
		a.mux.Handle(pattern, h)
	}
	return nil
}

// identityPage renders the pages' texts from the locales.
func (a *App) identityPage(done bool, lang string) (title, body string) {
	if lang == "" {
		lang = "en"
	}
	body = a.Engine.Catalog.Text(lang, "IdentityPageError", nil)
	if done {
		body = a.Engine.Catalog.Text(lang, "IdentityPageDone", nil)
	}
	return a.Engine.Catalog.Text(lang, "IdentityPageTitle", nil), body
}

// identityRecorder is identity.Recorder over the runner: the provider's
// answer becomes the citizen's next input.
type identityRecorder struct{ a *App }

// RecordIdentity implements identity.Recorder.
func (r identityRecorder) RecordIdentity(ctx context.Context, registrantKey string, v identity.Verified) error {
	return r.a.Runner.RecordIdentity(ctx, registrantKey, dialogs.Identity{Provider: v.Provider, Subject: v.Subject,
		Name: v.Name, Nationality: v.Nationality, NationalIDHash: v.NationalIDHash, NationalID: v.NationalID,
		Assurance: v.Assurance, VerifiedAt: v.VerifiedAt})
}

// pruneIdentity deletes expired links and flows until ctx ends (the
// periodic maintenance; taking one deletes it too).
func (a *App) pruneIdentity(ctx context.Context) {
	if a.opt.Identity == nil {
		return
	}
	every := a.opt.Identity.PruneEvery
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.Store.PruneIdentity(a.Runner.Now()); err != nil {
				a.log.Error("expired identity links not pruned", "err", err)
			}
		}
	}
}
