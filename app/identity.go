package app

import (
	"context"
	"errors"
	"time"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/identity"
)

// Verified identity (DESIGN §12, issue 14). When the configuration lists
// [[identity.providers]], the App builds package identity's service over
// the store's links and a recorder that runs through the engine, mounts
// its handlers (/id/start/…, /id/callback, the JWKS) on its listener,
// tells the engine which providers to offer to which nationalities and
// where links point, and prunes expired links every minute.

// identityPruneEvery is how often expired links and flows are deleted.
const identityPruneEvery = time.Minute

// openIdentity builds and mounts the identity service, if configured.
func (a *App) openIdentity() error {
	c := a.opt.Config
	s := c.Identity
	if len(s.Providers) == 0 {
		return nil
	}
	if a.opt.Listen == "" {
		return errors.New("app: identity providers are configured but no listen address is set for the browsers' callbacks (telegram.listen)")
	}
	getenv := a.opt.Getenv
	if getenv == nil {
		getenv = config.Getenv
	}
	svc, err := identity.New(identity.Options{Settings: s, Links: a.Store, Recorder: identityRecorder{a},
		Pages: identity.PagesFunc(a.identityPage), Logger: a.log, Getenv: getenv})
	if err != nil {
		return c.IdentityError(err)
	}
	var offered []dialogs.IdentityProvider
	for _, p := range s.Providers {
		offered = append(offered, dialogs.IdentityProvider{ID: p.ID, Names: p.DisplayName, Nationalities: p.Nationalities})
	}
	a.Engine.Identity = dialogs.IdentityConfig{PublicBaseURL: s.PublicBaseURL, Providers: offered}
	h := svc.Handler()
	a.mux.Handle("/id/", h)
	if s.JWKSPath != "" {
		a.mux.Handle(s.JWKSPath, h) // never under /id/ (identity.Settings.Validate)
	}
	a.identityOn = true
	return nil
}

// identityPage gives the browser's pages in the citizen's language
// (locales IdentityPageTitle, IdentityPageDone, IdentityPageError);
// English when the request cannot be tied to a citizen.
func (a *App) identityPage(kind identity.PageKind, lang string) identity.PageText {
	if lang == "" {
		lang = "en"
	}
	body := "IdentityPageError"
	if kind == identity.PageDone {
		body = "IdentityPageDone"
	}
	return identity.PageText{Title: a.Engine.Catalog.Text(lang, "IdentityPageTitle", nil), Body: a.Engine.Catalog.Text(lang, body, nil)}
}

// identityRecorder is identity.Recorder over the runner: what the provider
// proved becomes the citizen's next input (KindIdentityVerified), in their
// turn, so the state change, registration.updated with `identity` and the
// chat's confirmation are one transaction.
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
	if !a.identityOn {
		return
	}
	t := time.NewTicker(identityPruneEvery)
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
