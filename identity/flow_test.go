package identity

import (
	"testing"
	"time"
)

// TestVerifies runs the whole round trip against each independent
// provider: link from the chat, browser through the provider, callback,
// and the identity recorded for the link's registrant.
func TestVerifies(t *testing.T) {
	for _, c := range []struct {
		name  string
		start func(*testing.T) *harness
	}{
		{"singpass/mockpass", singpassHarness},
		{"fapi2/oidc-provider", func(t *testing.T) *harness { return oidcHarness(t, true) }},
		{"plain/oidc-provider", func(t *testing.T) *harness { return oidcHarness(t, false) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := c.start(t)
			token := h.store.issue("registrant-1", h.provider.ID, time.Now().Add(LinkTTL))
			p := h.browser(h.svc.LinkURL(token), h.wantSubject, false)
			h.mustDone(p, "registrant-1")
		})
	}
}
