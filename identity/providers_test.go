package identity

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"github.com/checkinbot/checkinbot/identity/providertest"
	"math/big"
	"net/http"
	"testing"
)

// The three provider set-ups the tests run against.

// randInt is a random number below n.
func randInt(n int64) int64 {
	v, _ := rand.Int(rand.Reader, big.NewInt(n))
	return v.Int64()
}

// randomUUID is a random version-4 UUID.
func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// singpassHarness runs GovTech's mockpass (Singpass v2 OIDC: ES256 client
// assertions, ID tokens signed then encrypted to our JWKS, which it fetches
// from this service). The citizen is a random NRIC and UUID given to
// mockpass in its X-Custom-* headers, so every expectation comes from the
// test, not from mockpass's fixtures.
func singpassHarness(t *testing.T) *harness {
	providertest.Require(t)
	port := providertest.FreePort(t)
	return newHarness(t, func(h *harness, base string) ProviderSettings {
		sig, _ := providertest.WriteECKey(t, "sig.pem")
		enc, encKey := providertest.WriteECKey(t, "enc.pem")
		h.encKey = encKey
		providertest.Start(t, []string{
			fmt.Sprintf("MOCKPASS_PORT=%d", port),
			"SP_RP_JWKS_ENDPOINT=" + base + "/.well-known/jwks.json",
			"SHOW_LOGIN_PAGE=false",
		}, fmt.Sprintf("http://127.0.0.1:%d/singpass/v2/.well-known/openid-configuration", port),
			"node_modules/@opengovsg/mockpass/index.js")
		nric := fmt.Sprintf("S%07d%c", randInt(1e7), 'A'+rune(randInt(26)))
		h.wantNationalID, h.wantSubject = nric, randomUUID()
		h.authorizeHeaders = http.Header{"X-Custom-Nric": {nric}, "X-Custom-Uuid": {h.wantSubject}}
		return ProviderSettings{ID: "singpass", Kind: KindSingpass, DisplayName: map[string]string{"en": "Singpass"},
			Nationalities: []string{"SG"}, Issuer: fmt.Sprintf("http://127.0.0.1:%d/singpass/v2", port),
			ClientID: "checkinbot-test", SigningKeyFile: sig, EncryptionKeyFile: enc}
	})
}

// oidcHarness runs oidc-provider: with fapi2, the FAPI 2.0 profile (PAR
// required, DPoP-bound tokens with server nonces, private_key_jwt, ID
// tokens encrypted with ECDH-ES+A256KW to our JWKS); without, a plain
// realm (code + PKCE, client secret, RS256 ID tokens).
func oidcHarness(t *testing.T, fapi2 bool) *harness {
	providertest.Require(t)
	port := providertest.FreePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	return newHarness(t, func(h *harness, base string) ProviderSettings {
		h.wantSubject = "citizen-" + randomString()[:12]
		h.wantName = fmt.Sprintf("Siti Aminah %d", randInt(1e6))
		h.wantNationality = "MY"
		h.wantNationalID = fmt.Sprintf("%06d-%02d-%04d", randInt(1e6), randInt(100), randInt(1e4))
		claims, _ := json.Marshal(map[string]string{"name": h.wantName, "nationality": "my", "national_id": h.wantNationalID})
		p := ProviderSettings{Kind: KindOIDC, DisplayName: map[string]string{"en": "MyDigital ID"},
			Nationalities: []string{"MY"}, Issuer: issuer, Scopes: []string{"profile", "nationality", "national_id"},
			NameClaim: "name", NationalityClaim: "nationality", NationalIDClaim: "national_id"}
		client := map[string]any{
			"redirect_uris":  []string{base + "/id/callback"},
			"grant_types":    []string{"authorization_code"},
			"response_types": []string{"code"},
		}
		fapi := "0"
		if fapi2 {
			fapi = "1"
			sig, _ := providertest.WriteECKey(t, "sig.pem")
			enc, encKey := providertest.WriteECKey(t, "enc.pem")
			h.encKey = encKey
			p.ID, p.ClientID, p.FAPI2 = "mydigital-fapi", "checkinbot-fapi", true
			p.SigningKeyFile, p.EncryptionKeyFile = sig, enc
			client["client_id"] = p.ClientID
			client["token_endpoint_auth_method"] = "private_key_jwt"
			client["token_endpoint_auth_signing_alg"] = "ES256"
			client["jwks_uri"] = base + "/.well-known/jwks.json"
			client["id_token_signed_response_alg"] = "ES256"
			client["id_token_encrypted_response_alg"] = "ECDH-ES+A256KW"
			client["id_token_encrypted_response_enc"] = "A256GCM"
			client["dpop_bound_access_tokens"] = true
		} else {
			secret := randomString()
			h.env["TEST_CLIENT_SECRET"] = secret
			p.ID, p.ClientID, p.ClientAuth, p.ClientSecretEnv = "mydigital", "checkinbot-plain", AuthClientSecret, "TEST_CLIENT_SECRET"
			p.KeepNationalID = true
			client["client_id"] = p.ClientID
			client["client_secret"] = secret
			client["token_endpoint_auth_method"] = "client_secret_post"
			client["id_token_signed_response_alg"] = "RS256"
		}
		clients, _ := json.Marshal([]any{client})
		providertest.Start(t, []string{fmt.Sprintf("PORT=%d", port), "OIDC_FAPI2=" + fapi,
			"OIDC_CLIENTS=" + string(clients), "OIDC_CLAIMS=" + string(claims)},
			issuer+"/.well-known/openid-configuration", "oidc.js")
		return p
	})
}
