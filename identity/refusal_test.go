package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Refusals: each row is an attack or a misbehaving provider; each must end
// on the failure page, with one log line of its class and nothing recorded.

// innerJWS returns the signed ID token inside body's id_token, decrypting
// it with our key when the provider encrypted it.
func (h *harness) innerJWS(body map[string]any) (jws string, wasJWE bool) {
	h.t.Helper()
	raw, _ := body["id_token"].(string)
	if strings.Count(raw, ".") != 4 {
		return raw, false
	}
	jwe, err := jose.ParseEncryptedCompact(raw, keyAlgs, contentEncs)
	if err != nil {
		h.t.Fatalf("test cannot parse the provider's JWE: %v", err)
	}
	b, err := jwe.Decrypt(h.encKey)
	if err != nil {
		h.t.Fatalf("test cannot decrypt the provider's JWE: %v", err)
	}
	return string(b), true
}

// resign replaces the ID token by one with the same claims signed by a
// fresh key under kid (the provider's own kid when kid is empty),
// encrypted again to our key when the original was.
func (h *harness) resign(body map[string]any, kid string) {
	h.t.Helper()
	inner, wasJWE := h.innerJWS(body)
	jws, err := jose.ParseSignedCompact(inner, signatureAlgs)
	if err != nil {
		h.t.Fatal(err)
	}
	if kid == "" {
		kid = jws.Signatures[0].Header.KeyID
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid}}, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	forged, err := signer.Sign(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		h.t.Fatal(err)
	}
	out, _ := forged.CompactSerialize()
	if wasJWE {
		enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.ECDH_ES_A256KW, Key: &h.encKey.PublicKey},
			(&jose.EncrypterOptions{}).WithContentType("JWT"))
		if err != nil {
			h.t.Fatal(err)
		}
		obj, err := enc.Encrypt([]byte(out))
		if err != nil {
			h.t.Fatal(err)
		}
		out, _ = obj.CompactSerialize()
	}
	body["id_token"] = out
}

// callbackURL runs a browser to the provider and back, stopping before
// our callback, and returns the callback URL it would have visited.
func (h *harness) callbackURL(registrant string) *url.URL {
	h.t.Helper()
	token := h.store.issue(registrant, h.provider.ID, time.Now().Add(LinkTTL))
	p := h.browser(h.svc.LinkURL(token), h.wantSubject, true)
	if p.URL == nil || p.URL.Path != "/id/callback" {
		h.t.Fatalf("browser did not reach the callback: %+v", p)
	}
	return p.URL
}

// reset forgets records and log lines (after a step that had to succeed).
func (h *harness) reset() {
	h.store.mu.Lock()
	h.store.records = nil
	h.store.mu.Unlock()
	h.log.Reset()
}

// succeed runs one verification that must succeed, then resets.
func (h *harness) succeed(token string) page {
	h.t.Helper()
	p := h.browser(h.svc.LinkURL(token), h.wantSubject, false)
	h.mustDone(p, "registrant-1")
	h.reset()
	return p
}

func TestRefusals(t *testing.T) {
	type row struct {
		name     string
		provider string // singpass, fapi2, plain
		class    string // the log line's class
		run      func(h *harness) page
	}
	visit := func(h *harness, token string) page { return h.browser(h.svc.LinkURL(token), h.wantSubject, false) }
	fresh := func(h *harness) string { return h.store.issue("registrant-1", h.provider.ID, time.Now().Add(LinkTTL)) }
	tampered := func(tamper func(h *harness, body map[string]any)) func(h *harness) page {
		return func(h *harness) page {
			h.tt.mu.Lock()
			h.tt.tamper = func(body map[string]any) { tamper(h, body) }
			h.tt.mu.Unlock()
			return visit(h, fresh(h))
		}
	}
	unencrypted := tampered(func(h *harness, body map[string]any) { body["id_token"], _ = h.innerJWS(body) })
	unknownKey := tampered(func(h *harness, body map[string]any) { h.resign(body, "not-published-by-the-provider") })
	forgedKnownKid := tampered(func(h *harness, body map[string]any) { h.resign(body, "") })
	rows := []row{
		{"replayed link", "singpass", "link", func(h *harness) page {
			token := fresh(h)
			h.succeed(token)
			return visit(h, token)
		}},
		{"expired link", "singpass", "link", func(h *harness) page {
			return visit(h, h.store.issue("registrant-1", h.provider.ID, time.Now().Add(-time.Second)))
		}},
		{"another chat's link: a token changed by one character", "singpass", "link", func(h *harness) page {
			token := fresh(h)
			last := byte('A')
			if token[len(token)-1] == last {
				last = 'B'
			}
			return visit(h, token[:len(token)-1]+string(last))
		}},
		{"another chat's link: a token never issued", "singpass", "link", func(h *harness) page {
			fresh(h)
			tok, _ := NewToken()
			return visit(h, tok)
		}},
		{"tampered state", "singpass", "state", func(h *harness) page {
			u := h.callbackURL("registrant-1")
			q := u.Query()
			s := q.Get("state")
			q.Set("state", s[:len(s)-2]+"xy")
			u.RawQuery = q.Encode()
			return h.get(u.String())
		}},
		{"replayed callback", "singpass", "state", func(h *harness) page {
			u := h.callbackURL("registrant-1")
			h.mustDone(h.get(u.String()), "registrant-1")
			h.reset()
			return h.get(u.String())
		}},
		{"wrong nonce: another flow's code under this flow's state", "singpass", "nonce", func(h *harness) page {
			a, b := h.callbackURL("registrant-1"), h.callbackURL("registrant-1")
			q := a.Query()
			q.Set("code", b.Query().Get("code"))
			a.RawQuery = q.Encode()
			return h.get(a.String())
		}},
		{"issuer in the authorization response not the provider's (mix-up)", "fapi2", "issuer", func(h *harness) page {
			u := h.callbackURL("registrant-1")
			q := u.Query()
			q.Set("iss", "https://attacker.example")
			u.RawQuery = q.Encode()
			return h.get(u.String())
		}},
		{"issuer missing from the authorization response of a provider that sends it", "fapi2", "issuer", func(h *harness) page {
			u := h.callbackURL("registrant-1")
			q := u.Query()
			q.Del("iss")
			u.RawQuery = q.Encode()
			return h.get(u.String())
		}},
		{"token signed by an unknown key", "singpass", "id_token_unknown_key", unknownKey},
		{"token signed by another key under the provider's kid", "singpass", "id_token_signature", forgedKnownKid},
		{"unencrypted token where encryption is required", "singpass", "id_token_unencrypted", unencrypted},
		{"unencrypted token where encryption is required", "fapi2", "id_token_unencrypted", unencrypted},
		{"token signed by an unknown key", "fapi2", "id_token_unknown_key", unknownKey},
		{"token signed by an unknown key", "plain", "id_token_unknown_key", unknownKey},
		{"token signed by another key under the provider's kid", "plain", "id_token_signature", forgedKnownKid},
		{"DPoP proof missing", "fapi2", "token", func(h *harness) page {
			h.svc.mutateDPoP = func(string, string) string { return "" }
			return visit(h, fresh(h))
		}},
		{"DPoP proof missing at the token endpoint (code bound to the PAR's key)", "fapi2", "token", func(h *harness) page {
			h.svc.mutateDPoP = func(endpoint, proof string) string {
				if strings.HasSuffix(endpoint, "/token") {
					return ""
				}
				return proof
			}
			return visit(h, fresh(h))
		}},
		// oidc-provider's answer: invalid_request "DPoP proof JWT Replay detected".
		{"DPoP proof replayed", "fapi2", "par", func(h *harness) page {
			var last string
			h.svc.mutateDPoP = func(endpoint, proof string) string {
				if strings.HasSuffix(endpoint, "/request") {
					last = proof
				}
				return proof
			}
			h.succeed(fresh(h))
			h.svc.mutateDPoP = func(endpoint, proof string) string {
				if strings.HasSuffix(endpoint, "/request") {
					return last
				}
				return proof
			}
			return visit(h, fresh(h))
		}},
		{"access token not DPoP-bound", "fapi2", "dpop", tampered(func(h *harness, body map[string]any) { body["token_type"] = "Bearer" })},
	}
	// The provider's refusal, where the provider refuses.
	oauthErrors := map[string]string{
		"DPoP proof missing": "invalid_grant",
		"DPoP proof missing at the token endpoint (code bound to the PAR's key)": "invalid_grant",
		"DPoP proof replayed": "invalid_request",
	}
	harnesses := map[string]func(*testing.T) *harness{
		"singpass": singpassHarness,
		"fapi2":    func(t *testing.T) *harness { return oidcHarness(t, true) },
		"plain":    func(t *testing.T) *harness { return oidcHarness(t, false) },
	}
	// One provider process per kind, shared by its rows (each row uses
	// fresh links; tampering is undone after it).
	running := map[string]*harness{}
	for _, r := range rows {
		h := running[r.provider]
		if h == nil {
			h = harnesses[r.provider](t)
			running[r.provider] = h
		}
		t.Run(r.provider+"/"+r.name, func(t *testing.T) {
			h.t = t
			h.reset()
			defer func() {
				h.t = nil
				h.svc.mutateDPoP = nil
				h.tt.mu.Lock()
				h.tt.tamper = nil
				h.tt.mu.Unlock()
			}()
			p := r.run(h)
			h.mustRefused(p, r.class)
			if want := oauthErrors[r.name]; want != "" && !strings.Contains(h.log.String(), "oauth_error="+want) {
				t.Errorf("log has no oauth_error=%s:\n%s", want, h.log.String())
			}
			if n := len(h.logLines()); n != 1 {
				t.Errorf("%d log lines, want one:\n%s", n, h.log.String())
			}
		})
	}
}
