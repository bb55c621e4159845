package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// discoveryTTL is how long discovery documents and provider JWKS are
// trusted before being fetched again. A provider rotating its signing key
// publishes the new key first; an unknown kid also refetches (at most once
// per jwksRefetchEvery), so a rotation is picked up at once.
const (
	discoveryTTL     = time.Hour
	jwksRefetchEvery = time.Minute
	maxDocumentBytes = 1 << 20
)

// metadata is the part of an OpenID provider's discovery document we use.
type metadata struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	JWKSURI                       string   `json:"jwks_uri"`
	PAREndpoint                   string   `json:"pushed_authorization_request_endpoint"`
	IssParameterSupported         bool     `json:"authorization_response_iss_parameter_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
}

// providerCache holds one provider's discovery document and JWKS.
type providerCache struct {
	mu          sync.Mutex
	meta        metadata
	metaExpires time.Time
	jwks        jose.JSONWebKeySet
	jwksExpires time.Time
	jwksFetched time.Time
}

// getJSON fetches a JSON document (bounded in size) into v.
func getJSON(ctx context.Context, c *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxDocumentBytes)).Decode(v)
}

// metadata returns the provider's discovery document, fetched at most once
// per discoveryTTL. The document's issuer must be the configured one
// (OpenID Connect Discovery §4.3), or a rogue document could redirect us.
func (s *Service) metadata(ctx context.Context, p *provider) (metadata, error) {
	c := &p.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.now()
	if now.Before(c.metaExpires) {
		return c.meta, nil
	}
	u := p.DiscoveryURL
	if u == "" {
		u = strings.TrimSuffix(p.Issuer, "/") + "/.well-known/openid-configuration"
	}
	var m metadata
	if err := getJSON(ctx, s.client, u, &m); err != nil {
		return metadata{}, err
	}
	switch {
	case m.Issuer != p.Issuer:
		return metadata{}, fmt.Errorf("discovery issuer %q is not the configured %q", m.Issuer, p.Issuer)
	case m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" || m.JWKSURI == "":
		return metadata{}, fmt.Errorf("discovery document lacks an authorization, token or jwks endpoint")
	case p.FAPI2 && m.PAREndpoint == "":
		return metadata{}, fmt.Errorf("fapi2 is set but the provider has no pushed authorization request endpoint")
	}
	c.meta, c.metaExpires = m, now.Add(discoveryTTL)
	return m, nil
}

// providerKeys returns the provider's signing keys with this kid (all of
// them when kid is empty), fetching the JWKS when stale or when the kid is
// unknown (a rotation), but not more than once per jwksRefetchEvery.
func (s *Service) providerKeys(ctx context.Context, p *provider, jwksURI, kid string) ([]jose.JSONWebKey, error) {
	c := &p.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.now()
	find := func() []jose.JSONWebKey {
		if kid == "" {
			return c.jwks.Keys
		}
		return c.jwks.Key(kid)
	}
	keys := find()
	stale := now.After(c.jwksExpires)
	if (len(keys) == 0 && now.Sub(c.jwksFetched) >= jwksRefetchEvery) || stale {
		var set jose.JSONWebKeySet
		if err := getJSON(ctx, s.client, jwksURI, &set); err != nil {
			if !stale && len(keys) > 0 {
				return keys, nil
			}
			return nil, err
		}
		c.jwks, c.jwksExpires, c.jwksFetched = set, now.Add(discoveryTTL), now
		keys = find()
	}
	var sig []jose.JSONWebKey
	for _, k := range keys {
		if k.Use == "" || k.Use == "sig" {
			sig = append(sig, k)
		}
	}
	return sig, nil
}
