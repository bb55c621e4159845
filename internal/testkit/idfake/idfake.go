// Package idfake is a minimal local OpenID provider and a minimal relying
// party on the identity ports, for the App's identity tests and the real
// browser test while package identity's own service (the `idcore` work:
// Singpass, FAPI 2.0, generic OpenID) is not wired yet. The provider
// signs ES256 ID tokens with go-jose and checks PKCE (S256); the relying
// party consumes the link once (identity.Links.TakeLink), keeps the flow
// (PutFlow/TakeFlow by the state's hash), checks the ID token's signature,
// issuer, audience, expiry and nonce, and hands the result to the
// Recorder. Only tests import it.
package idfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/identity"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ClientID is what the provider knows the relying party as.
const ClientID = "checkinbot-test"

// Person is who logs in at the provider.
type Person struct {
	Subject, Name, Nationality, Assurance string
}

// Provider is a local OpenID provider that logs in one Person.
type Provider struct {
	*httptest.Server
	Person Person

	key   *ecdsa.PrivateKey
	mu    sync.Mutex
	codes map[string]grant // code → what it was issued for
}

type grant struct {
	redirect, challenge, nonce string
}

// NewProvider starts a provider; it is closed when the test ends.
func NewProvider(p Person) *Provider {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	pr := &Provider{Person: p, key: key, codes: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", pr.authorize)
	mux.HandleFunc("POST /approve", pr.approve)
	mux.HandleFunc("POST /token", pr.token)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	pr.Server = httptest.NewServer(mux)
	return pr
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>Test ID</title></head>
<body><p>Log in as {{.Name}}?</p><form method="post" action="/approve">
<input type="hidden" name="redirect_uri" value="{{.Redirect}}"><input type="hidden" name="state" value="{{.State}}">
<input type="hidden" name="nonce" value="{{.Nonce}}"><input type="hidden" name="code_challenge" value="{{.Challenge}}">
<button id="login" type="submit">Log in</button></form></body></html>`))

// authorize shows the login page (a person must press "Log in").
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != ClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || !strings.Contains(q.Get("scope"), "openid") {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginPage.Execute(w, map[string]string{"Name": p.Person.Name, "Redirect": q.Get("redirect_uri"), "State": q.Get("state"),
		"Nonce": q.Get("nonce"), "Challenge": q.Get("code_challenge")})
}

// approve issues a code and sends the browser back.
func (p *Provider) approve(w http.ResponseWriter, r *http.Request) {
	code := random()
	p.mu.Lock()
	p.codes[code] = grant{redirect: r.FormValue("redirect_uri"), challenge: r.FormValue("code_challenge"), nonce: r.FormValue("nonce")}
	p.mu.Unlock()
	http.Redirect(w, r, r.FormValue("redirect_uri")+"?"+url.Values{"code": {code}, "state": {r.FormValue("state")}}.Encode(), http.StatusFound)
}

// token exchanges a code (once, with the PKCE verifier) for an ID token.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	code := r.FormValue("code")
	p.mu.Lock()
	g, ok := p.codes[code]
	delete(p.codes, code)
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.FormValue("code_verifier")))
	if !ok || r.FormValue("client_id") != ClientID || r.FormValue("redirect_uri") != g.redirect ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		return
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: p.URL, Subject: p.Person.Subject, Audience: jwt.Audience{ClientID},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}).
		Claims(map[string]any{"nonce": g.nonce, "name": p.Person.Name, "nationality": p.Person.Nationality, "acr": p.Person.Assurance}).
		Serialize()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"access_token": random(), "token_type": "Bearer", "id_token": raw})
}

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Routes is the relying party for app.IdentityOptions.Routes: GET
// /id/start/{token} and GET /id/callback, against provider p registered
// under providerID, with callbacks to publicBase.
func Routes(p *Provider, providerID, publicBase string) func(app.IdentityEnv) (map[string]http.Handler, error) {
	return func(env app.IdentityEnv) (map[string]http.Handler, error) {
		rp := &relyingParty{p: p, id: providerID, env: env, callback: strings.TrimSuffix(publicBase, "/") + "/id/callback"}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /id/start/{token}", rp.start)
		mux.HandleFunc("GET /id/callback", rp.finish)
		return map[string]http.Handler{"/id/": mux}, nil
	}
}

type relyingParty struct {
	p        *Provider
	id       string
	env      app.IdentityEnv
	callback string
}

func (rp *relyingParty) page(w http.ResponseWriter, status int, done bool, lang string) {
	title, body := rp.env.Page(done, lang)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><html lang=%q><head><meta charset=\"utf-8\"><title>%s</title></head><body><p id=\"result\">%s</p></body></html>",
		template.HTMLEscapeString(lang), template.HTMLEscapeString(title), template.HTMLEscapeString(body))
}

func (rp *relyingParty) start(w http.ResponseWriter, r *http.Request) {
	l, err := rp.env.Links.TakeLink(r.Context(), hash(r.PathValue("token")), time.Now())
	if err != nil || l.Provider != rp.id {
		rp.page(w, http.StatusNotFound, false, "")
		return
	}
	state, nonce, verifier := random(), random(), random()
	f := identity.Flow{StateHash: hash(state), LinkHash: l.TokenHash, RegistrantKey: l.RegistrantKey, Provider: l.Provider,
		Lang: l.Lang, Nonce: nonce, CodeVerifier: verifier, Expires: time.Now().Add(identity.LinkTTL)}
	if err := rp.env.Links.PutFlow(r.Context(), f); err != nil {
		rp.page(w, http.StatusServiceUnavailable, false, l.Lang)
		return
	}
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {ClientID}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {rp.callback},
		"state": {state}, "nonce": {nonce}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	http.Redirect(w, r, rp.p.URL+"/authorize?"+q.Encode(), http.StatusFound)
}

func (rp *relyingParty) finish(w http.ResponseWriter, r *http.Request) {
	f, err := rp.env.Links.TakeFlow(r.Context(), hash(r.URL.Query().Get("state")), time.Now())
	if err != nil {
		rp.page(w, http.StatusBadRequest, false, "")
		return
	}
	v, err := rp.exchange(r, f)
	if err == nil {
		err = rp.env.Recorder.RecordIdentity(r.Context(), f.RegistrantKey, v)
	}
	if err != nil {
		rp.env.Log.Warn("identity verification refused", "provider", f.Provider, "reason", "exchange")
		rp.page(w, http.StatusBadGateway, false, f.Lang)
		return
	}
	rp.page(w, http.StatusOK, true, f.Lang)
}

// exchange redeems the code and checks the ID token.
func (rp *relyingParty) exchange(r *http.Request, f identity.Flow) (identity.Verified, error) {
	resp, err := http.PostForm(rp.p.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {r.URL.Query().Get("code")},
		"client_id": {ClientID}, "redirect_uri": {rp.callback}, "code_verifier": {f.CodeVerifier}})
	if err != nil {
		return identity.Verified{}, err
	}
	defer resp.Body.Close()
	var tr struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK {
		return identity.Verified{}, fmt.Errorf("token endpoint: %d %v", resp.StatusCode, err)
	}
	tok, err := jwt.ParseSigned(tr.IDToken, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return identity.Verified{}, err
	}
	var std jwt.Claims
	var extra struct { // go-jose decodes case-sensitively: tags needed
		Nonce       string `json:"nonce"`
		Name        string `json:"name"`
		Nationality string `json:"nationality"`
		Acr         string `json:"acr"`
	}
	if err := tok.Claims(&rp.p.key.PublicKey, &std, &extra); err != nil {
		return identity.Verified{}, err
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: rp.p.URL, AnyAudience: jwt.Audience{ClientID}, Time: time.Now()}, time.Minute); err != nil {
		return identity.Verified{}, err
	}
	if extra.Nonce != f.Nonce {
		return identity.Verified{}, fmt.Errorf("nonce mismatch")
	}
	return identity.Verified{Provider: f.Provider, Subject: std.Subject, Name: extra.Name, Nationality: extra.Nationality,
		Assurance: extra.Acr, VerifiedAt: time.Now().UTC()}, nil
}
