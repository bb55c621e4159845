package identity

import (
	"slices"
	"testing"
	"time"
)

// TestVerifies runs the whole round trip against each independent
// provider: link from the chat, browser through the provider, callback,
// and the identity recorded for the link's registrant. The back channel
// is observed, so each row also shows the protocol the provider made us
// speak (PAR, DPoP with the server's nonce, encrypted ID tokens).
func TestVerifies(t *testing.T) {
	for _, c := range []struct {
		name   string
		start  func(*testing.T) *harness
		want   []string // back-channel notes that must appear
		forbid []string // and must not
	}{
		{"singpass/mockpass", singpassHarness,
			[]string{"POST /singpass/v2/token", "id_token jwe", "token_type Bearer"},
			[]string{"id_token jws", "POST /singpass/v2/token dpop"}},
		{"fapi2/oidc-provider", func(t *testing.T) *harness { return oidcHarness(t, true) },
			[]string{"POST /request dpop", "status 400 dpop-nonce", "POST /token dpop", "id_token jwe", "token_type DPoP"},
			[]string{"id_token jws", "POST /token", "POST /request"}},
		{"plain/oidc-provider", func(t *testing.T) *harness { return oidcHarness(t, false) },
			[]string{"POST /token", "id_token jws", "token_type Bearer"},
			[]string{"POST /request", "POST /request dpop", "POST /token dpop", "id_token jwe"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := c.start(t)
			token := h.store.issue("registrant-1", h.provider.ID, time.Now().Add(LinkTTL))
			p := h.browser(h.svc.LinkURL(token), h.wantSubject, false)
			h.mustDone(p, "registrant-1")
			notes := h.tt.notes()
			for _, w := range c.want {
				if !slices.Contains(notes, w) {
					t.Errorf("back channel lacks %q: %q", w, notes)
				}
			}
			for _, f := range c.forbid {
				if slices.Contains(notes, f) {
					t.Errorf("back channel has %q: %q", f, notes)
				}
			}
		})
	}
}
