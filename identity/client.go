package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The back channel to a provider: client authentication, pushed
// authorization requests and the code exchange, with DPoP proofs when the
// provider is FAPI 2.0. Network I/O only; nothing here touches storage.

// assertionLifetime is the client assertion's lifetime: short (FAPI 2.0
// and Singpass ask for at most two minutes), long enough for one request.
const assertionLifetime = 60 * time.Second

// clientAssertion signs a private_key_jwt assertion: iss = sub = client id,
// aud = the provider's issuer identifier (what Singpass requires and
// RFC 7523bis recommends for every endpoint), a random jti, exp ≤ 2 min.
func (s *Service) clientAssertion(p *provider) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.signKey},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := s.now()
	return jwt.Signed(signer).Claims(jwt.Claims{
		Issuer:   p.ClientID,
		Subject:  p.ClientID,
		Audience: jwt.Audience{p.Issuer},
		IssuedAt: jwt.NewNumericDate(now),
		// FAPI 2.0 providers require nbf (oidc-provider checks it).
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(assertionLifetime)),
		ID:        randomString(),
	}).Serialize()
}

// authenticate adds the client's credentials to a back-channel form.
func (s *Service) authenticate(p *provider, form url.Values) error {
	form.Set("client_id", p.ClientID)
	if p.ClientAuth == AuthClientSecret {
		form.Set("client_secret", p.secret)
		return nil
	}
	a, err := s.clientAssertion(p)
	if err != nil {
		return err
	}
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", a)
	return nil
}

// newDPoPKey makes a flow's DPoP key (ES256): one per flow, kept in the
// Flow until the callback, so tokens are bound to this round trip only.
func newDPoPKey() (*ecdsa.PrivateKey, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	return k, der, err
}

// dpopProof signs a DPoP proof (RFC 9449 §4.2) for method and endpoint,
// with the provider's nonce when it gave one.
func (s *Service) dpopProof(k *ecdsa.PrivateKey, method, endpoint, nonce string) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		return "", err
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	u.RawQuery, u.Fragment = "", ""
	claims := map[string]any{
		"jti": randomString(),
		"htm": method,
		"htu": u.String(),
		"iat": s.now().Unix(),
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// oauthError is an OAuth error response.
type oauthError struct {
	Status int
	Code   string `json:"error"`
}

func (e *oauthError) Error() string {
	return fmt.Sprintf("status %d, error %q", e.Status, e.Code)
}

// post sends a client-authenticated form to endpoint, with a DPoP proof
// when dk is set, and decodes the JSON answer into v. A use_dpop_nonce
// answer is retried once with the provider's nonce (RFC 9449 §8); the
// nonce is remembered for the next request to the provider.
func (s *Service) post(ctx context.Context, p *provider, endpoint string, params url.Values, dk *ecdsa.PrivateKey, v any) error {
	for attempt := 0; ; attempt++ {
		form := url.Values{}
		for k, vs := range params {
			form[k] = vs
		}
		if err := s.authenticate(p, form); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		if dk != nil {
			proof, err := s.dpopProof(dk, http.MethodPost, endpoint, p.dpopNonce())
			if err != nil {
				return err
			}
			if s.mutateDPoP != nil {
				proof = s.mutateDPoP(endpoint, proof)
			}
			if proof != "" {
				req.Header.Set("DPoP", proof)
			}
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			p.setDPoPNonce(n)
		}
		if resp.StatusCode/100 == 2 {
			return json.Unmarshal(body, v)
		}
		oe := &oauthError{Status: resp.StatusCode}
		_ = json.Unmarshal(body, oe)
		if oe.Code == "use_dpop_nonce" && dk != nil && attempt == 0 && resp.Header.Get("DPoP-Nonce") != "" {
			continue
		}
		return oe
	}
}

// pushAuthorization sends the authorization request's parameters to the
// PAR endpoint and returns the request_uri to send the browser with.
func (s *Service) pushAuthorization(ctx context.Context, p *provider, m metadata, params url.Values, dk *ecdsa.PrivateKey) (string, error) {
	var r struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int    `json:"expires_in"`
	}
	if err := s.post(ctx, p, m.PAREndpoint, params, dk, &r); err != nil {
		return "", err
	}
	if r.RequestURI == "" {
		return "", fmt.Errorf("PAR response has no request_uri")
	}
	return r.RequestURI, nil
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	IDToken     string `json:"id_token"`
}

// exchange redeems the authorization code. With DPoP the access token
// must come back DPoP-bound (token_type DPoP): a Bearer answer means the
// binding was dropped on the way, and is refused.
func (s *Service) exchange(ctx context.Context, p *provider, m metadata, f Flow, code string, dk *ecdsa.PrivateKey) (tokenResponse, error) {
	params := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {s.redirectURI()},
		"code_verifier": {f.CodeVerifier},
	}
	var t tokenResponse
	if err := s.post(ctx, p, m.TokenEndpoint, params, dk, &t); err != nil {
		return t, err
	}
	if t.IDToken == "" {
		return t, fmt.Errorf("token response has no id_token")
	}
	if dk != nil && !strings.EqualFold(t.TokenType, "DPoP") {
		return t, errDPoPUnbound
	}
	return t, nil
}
