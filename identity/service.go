package identity

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/errs"
	jose "github.com/go-jose/go-jose/v4"
)

// FlowTTL is how long the browser may spend at the provider between the
// redirect and the callback (a Singpass app login takes a minute or two).
const FlowTTL = 10 * time.Minute

// minHMACKeyLen is the shortest key accepted for national id hashes.
const minHMACKeyLen = 32

// Options are what New needs: the [identity] settings, the storage and
// recording ports, and the pages in the citizen's language.
type Options struct {
	Settings Settings
	Links    Links
	Recorder Recorder
	// Pages gives the texts of the two pages; nil: EnglishPages.
	Pages Pages
	// Logger gets one line per refused verification (an error class and
	// the provider id, never a token, a claim or a name); nil: discarded.
	Logger *slog.Logger
	// HTTPClient talks to the providers; nil: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Getenv reads the variables the settings name; nil: os.Getenv.
	Getenv func(string) string
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Service is the browser side of verification: the start and callback
// handlers, and our JWKS.
type Service struct {
	settings  Settings
	providers map[string]*provider
	links     Links
	recorder  Recorder
	pages     Pages
	log       *slog.Logger
	client    *http.Client
	now       func() time.Time
	hmacKey   []byte
	jwks      []byte

	// mutateDPoP, set only by this package's tests, rewrites each DPoP
	// proof before it is sent (fault injection: a missing or replayed
	// proof must be refused by the provider and leave nothing stored).
	mutateDPoP func(endpoint, proof string) string
}

// provider is one configured provider with its loaded keys and caches.
type provider struct {
	ProviderSettings
	signKey jose.JSONWebKey   // private, for private_key_jwt
	encKeys []jose.JSONWebKey // private, for encrypted ID tokens
	secret  string            // client_secret
	cache   providerCache

	nonceMu sync.Mutex
	nonce   string // the provider's last DPoP nonce
}

func (p *provider) dpopNonce() string {
	p.nonceMu.Lock()
	defer p.nonceMu.Unlock()
	return p.nonce
}

func (p *provider) setDPoPNonce(n string) {
	p.nonceMu.Lock()
	defer p.nonceMu.Unlock()
	p.nonce = n
}

// New validates the settings, loads every key and secret they name, and
// returns the service. Errors are *errs.Error with the key under
// [identity] ("identity.providers[0].signing_key_file"); the caller adds
// the file name.
func New(o Options) (*Service, error) {
	if err := o.Settings.Validate(); err != nil {
		return nil, prefixKey(err)
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	s := &Service{settings: o.Settings, providers: map[string]*provider{}, links: o.Links, recorder: o.Recorder,
		pages: o.Pages, log: o.Logger, client: o.HTTPClient, now: o.Now}
	if s.pages == nil {
		s.pages = EnglishPages
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if len(o.Settings.Providers) == 0 {
		return s, nil
	}
	if o.Links == nil || o.Recorder == nil {
		return nil, &errs.Error{Code: errs.EINTERNAL, Reason: "identity.New needs Links and Recorder"}
	}
	if k := getenv(o.Settings.NationalIDHMACEnv); len(k) < minHMACKeyLen {
		return nil, &errs.Error{Code: errs.EINVALID, Key: "identity.national_id_hmac_env",
			Reason: fmt.Sprintf("environment variable %s must hold a secret of at least %d characters (keep it: changing it changes every national id hash)",
				o.Settings.NationalIDHMACEnv, minHMACKeyLen)}
	} else {
		s.hmacKey = []byte(k)
	}
	var public jose.JSONWebKeySet
	seen := map[string]bool{}
	addPublic := func(k jose.JSONWebKey) {
		if !seen[k.KeyID] {
			seen[k.KeyID] = true
			public.Keys = append(public.Keys, k.Public())
		}
	}
	for i, ps := range o.Settings.Providers {
		key := fmt.Sprintf("identity.providers[%d].", i)
		p := &provider{ProviderSettings: ps}
		if p.ClientAuth == "" {
			p.ClientAuth = AuthPrivateKeyJWT
		}
		switch p.ClientAuth {
		case AuthPrivateKeyJWT:
			k, err := loadKey(key+"signing_key", p.SigningKeyFile, p.SigningKeyEnv, getenv)
			if err != nil {
				return nil, err
			}
			if p.signKey, err = signingJWK(key+"signing_key_file", k); err != nil {
				return nil, err
			}
			addPublic(p.signKey)
		case AuthClientSecret:
			if p.secret = getenv(p.ClientSecretEnv); p.secret == "" {
				return nil, &errs.Error{Code: errs.EMISSING, Key: key + "client_secret_env",
					Reason: fmt.Sprintf("environment variable %s is not set", p.ClientSecretEnv)}
			}
		}
		if p.Encrypted() {
			k, err := loadKey(key+"encryption_key", p.EncryptionKeyFile, p.EncryptionKeyEnv, getenv)
			if err != nil {
				return nil, err
			}
			ek, err := encryptionJWK(key+"encryption_key_file", k)
			if err != nil {
				return nil, err
			}
			p.encKeys = []jose.JSONWebKey{ek}
			addPublic(ek)
		}
		s.providers[p.ID] = p
	}
	b, err := json.Marshal(public)
	if err != nil {
		return nil, &errs.Error{Code: errs.EINTERNAL, Reason: "cannot encode our JWKS", Err: err}
	}
	s.jwks = b
	return s, nil
}

// prefixKey puts a Settings.Validate error under "identity.".
func prefixKey(err error) error {
	var e *errs.Error
	if errors.As(err, &e) {
		c := *e
		c.Key = "identity." + c.Key
		return &c
	}
	return err
}

// NewToken returns a fresh link token for the URL and its hash for the
// Link record (the token itself is never stored): 256 random bits.
func NewToken() (token, hash string) {
	token = randomString()
	return token, HashToken(token)
}

// HashToken is the hex SHA-256 under which links and flows are stored.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// randomString is 256 random bits, base64url without padding (43
// characters): tokens, state, nonce, PKCE verifiers, jti.
func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

var tokenFormat = regexp.MustCompile(`^[A-Za-z0-9_-]{32,128}$`)

// LinkURL is the URL the chat sends for token.
func (s *Service) LinkURL(token string) string {
	return strings.TrimSuffix(s.settings.PublicBaseURL, "/") + "/id/start/" + token
}

// redirectURI is the callback registered with every provider.
func (s *Service) redirectURI() string {
	return strings.TrimSuffix(s.settings.PublicBaseURL, "/") + "/id/callback"
}

// Handler serves GET /id/start/{token}, GET /id/callback and our JWKS at
// the configured jwks_path; mount it on the App's listener for "/id/" and
// that path. Every response forbids caching and referrers.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /id/start/{token}", s.start)
	mux.HandleFunc("GET /id/callback", s.callback)
	if s.settings.JWKSPath != "" {
		mux.HandleFunc("GET "+s.settings.JWKSPath, s.serveJWKS)
	}
	mux.HandleFunc("/id/", func(w http.ResponseWriter, r *http.Request) {
		s.refuse(w, r, "", "", "route", nil)
	})
	return mux
}

// serveJWKS serves our public keys (never a private part: Public()).
func (s *Service) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(s.jwks)
}

// start consumes the link and sends the browser to the provider.
func (s *Service) start(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token := r.PathValue("token")
	if !tokenFormat.MatchString(token) {
		s.refuse(w, r, "", "", "link", nil)
		return
	}
	link, err := s.links.TakeLink(ctx, HashToken(token), s.now())
	if err != nil {
		s.refuse(w, r, "", "", classOf(err, ErrLinkInvalid, "link"), err)
		return
	}
	p := s.providers[link.Provider]
	if p == nil {
		s.refuse(w, r, link.Lang, link.Provider, "provider_unknown", nil)
		return
	}
	m, err := s.metadata(ctx, p)
	if err != nil {
		s.refuse(w, r, link.Lang, p.ID, "discovery", err)
		return
	}
	state, nonce, verifier := randomString(), randomString(), randomString()
	var dk *ecdsa.PrivateKey
	var der []byte
	if p.FAPI2 {
		if dk, der, err = newDPoPKey(); err != nil {
			s.refuse(w, r, link.Lang, p.ID, "dpop", err)
			return
		}
	}
	f := Flow{StateHash: HashToken(state), LinkHash: link.TokenHash, RegistrantKey: link.RegistrantKey,
		Provider: p.ID, Lang: link.Lang, Nonce: nonce, CodeVerifier: verifier, DPoPKey: der,
		Expires: s.now().Add(FlowTTL)}
	if err := s.links.PutFlow(ctx, f); err != nil {
		s.refuse(w, r, link.Lang, p.ID, "store", err)
		return
	}
	challenge := sha256.Sum256([]byte(verifier))
	params := url.Values{
		"response_type":         {"code"},
		"client_id":             {p.ClientID},
		"redirect_uri":          {s.redirectURI()},
		"scope":                 {strings.Join(append([]string{"openid"}, p.Scopes...), " ")},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}
	if lang := link.Lang; lang != "" {
		params.Set("ui_locales", lang)
	}
	if p.FAPI2 {
		uri, err := s.pushAuthorization(ctx, p, m, params, dk)
		if err != nil {
			s.refuse(w, r, link.Lang, p.ID, "par", err)
			return
		}
		params = url.Values{"client_id": {p.ClientID}, "request_uri": {uri}}
	}
	target, err := url.Parse(m.AuthorizationEndpoint)
	if err != nil {
		s.refuse(w, r, link.Lang, p.ID, "discovery", err)
		return
	}
	q := target.Query()
	for k, v := range params {
		q[k] = v
	}
	target.RawQuery = q.Encode()
	securityHeaders(w.Header())
	http.Redirect(w, r, target.String(), http.StatusSeeOther)
}

// callback consumes the flow named by state, redeems the code, verifies
// the ID token and records the identity.
func (s *Service) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		s.refuse(w, r, "", "", "state", nil)
		return
	}
	f, err := s.links.TakeFlow(ctx, HashToken(state), s.now())
	if err != nil {
		s.refuse(w, r, "", "", classOf(err, ErrFlowInvalid, "state"), err)
		return
	}
	p := s.providers[f.Provider]
	if p == nil {
		s.refuse(w, r, f.Lang, f.Provider, "provider_unknown", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		s.refuse(w, r, f.Lang, p.ID, "provider_error", &oauthError{Code: e})
		return
	}
	m, err := s.metadata(ctx, p)
	if err != nil {
		s.refuse(w, r, f.Lang, p.ID, "discovery", err)
		return
	}
	// RFC 9207: the issuer in the response defeats mix-up attacks.
	if iss := q.Get("iss"); iss != p.Issuer && (iss != "" || m.IssParameterSupported) {
		s.refuse(w, r, f.Lang, p.ID, "issuer", nil)
		return
	}
	code := q.Get("code")
	if code == "" {
		s.refuse(w, r, f.Lang, p.ID, "provider_error", nil)
		return
	}
	var dk *ecdsa.PrivateKey
	if p.FAPI2 {
		k, err := x509.ParsePKCS8PrivateKey(f.DPoPKey)
		ek, ok := k.(*ecdsa.PrivateKey)
		if err != nil || !ok {
			s.refuse(w, r, f.Lang, p.ID, "dpop", err)
			return
		}
		dk = ek
	}
	t, err := s.exchange(ctx, p, m, f, code, dk)
	if err != nil {
		class := "token"
		var oe *oauthError
		if errors.Is(err, errDPoPUnbound) || (errors.As(err, &oe) && strings.Contains(oe.Code, "dpop")) {
			class = "dpop"
		}
		s.refuse(w, r, f.Lang, p.ID, class, err)
		return
	}
	c, all, err := s.openIDToken(ctx, p, m, t.IDToken, f.Nonce)
	if err != nil {
		s.refuse(w, r, f.Lang, p.ID, idTokenClass(err), err)
		return
	}
	v, err := s.verified(p, c, all)
	if err != nil {
		s.refuse(w, r, f.Lang, p.ID, idTokenClass(err), err)
		return
	}
	if err := s.recorder.RecordIdentity(ctx, f.RegistrantKey, v); err != nil {
		s.refuse(w, r, f.Lang, p.ID, "store", err)
		return
	}
	s.page(w, http.StatusOK, PageDone, f.Lang)
}

// classOf names a port error: the expected refusal, or "store".
func classOf(err, expected error, class string) string {
	if errors.Is(err, expected) {
		return class
	}
	return "store"
}

// idTokenClass names an ID token refusal for the log.
func idTokenClass(err error) string {
	for _, c := range []struct {
		err   error
		class string
	}{{errUnencrypted, "id_token_unencrypted"}, {errDecrypt, "id_token_decrypt"},
		{errUnknownKey, "id_token_unknown_key"}, {errBadSignature, "id_token_signature"},
		{errNonce, "nonce"}, {errClaims, "id_token_claims"}} {
		if errors.Is(err, c.err) {
			return c.class
		}
	}
	return "id_token"
}

var oauthErrorCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

// refuse shows the one failure page and logs one line: the error class,
// the provider id, and for OAuth errors the protocol's error code and
// status. Never the error text (it may quote a provider's message), a
// token, a claim or the URL.
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, lang, providerID, class string, err error) {
	attrs := []any{slog.String("class", class)}
	if providerID != "" {
		attrs = append(attrs, slog.String("provider", providerID))
	}
	var oe *oauthError
	if errors.As(err, &oe) {
		if oauthErrorCode.MatchString(oe.Code) {
			attrs = append(attrs, slog.String("oauth_error", oe.Code))
		}
		if oe.Status != 0 {
			attrs = append(attrs, slog.Int("status", oe.Status))
		}
	}
	s.log.WarnContext(r.Context(), "identity: verification refused", attrs...)
	s.page(w, http.StatusBadRequest, PageFailed, lang)
}
