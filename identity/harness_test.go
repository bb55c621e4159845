package identity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/checkinbot/checkinbot/internal/testkit/syncbuf"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The harness: real providers (mockpass, oidc-provider) as node processes
// on loopback ports, this service on an httptest server, an in-memory
// Links/Recorder that records every call, and a "browser" (net/http with a
// cookie jar) that follows redirects and posts the providers' forms.

// fakeStore is Links and Recorder in memory, with the contract's
// semantics (single use, expiry) and a record of every call.
type fakeStore struct {
	mu      sync.Mutex
	links   map[string]Link
	flows   map[string]Flow
	records []recorded
	calls   []string
}

type recorded struct {
	RegistrantKey string
	V             Verified
}

func newFakeStore() *fakeStore {
	return &fakeStore{links: map[string]Link{}, flows: map[string]Flow{}}
}

func (f *fakeStore) TakeLink(_ context.Context, hash string, now time.Time) (Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "TakeLink")
	l, ok := f.links[hash]
	delete(f.links, hash)
	if !ok || !now.Before(l.Expires) {
		return Link{}, ErrLinkInvalid
	}
	return l, nil
}

func (f *fakeStore) PutFlow(_ context.Context, fl Flow) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "PutFlow")
	f.flows[fl.StateHash] = fl
	return nil
}

func (f *fakeStore) TakeFlow(_ context.Context, hash string, now time.Time) (Flow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "TakeFlow")
	fl, ok := f.flows[hash]
	delete(f.flows, hash)
	if !ok || !now.Before(fl.Expires) {
		return Flow{}, ErrFlowInvalid
	}
	return fl, nil
}

func (f *fakeStore) RecordIdentity(_ context.Context, key string, v Verified) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "RecordIdentity")
	f.records = append(f.records, recorded{key, v})
	return nil
}

func (f *fakeStore) recordsCopy() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.records...)
}

// issue stores a link as the chat would and returns its token.
func (f *fakeStore) issue(registrant, providerID string, expires time.Time) string {
	token, hash := NewToken()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links[hash] = Link{TokenHash: hash, RegistrantKey: registrant, Provider: providerID, Lang: "en", Expires: expires}
	return token
}

// tamperTransport lets a test rewrite the token endpoint's answer (a
// provider that misbehaves, or an attacker on the path).
// It also notes every back-channel request ("POST /request dpop") and
// the shape of every ID token ("id_token jwe"/"id_token jws"), so tests
// can show which protocol features a provider made us use.
type tamperTransport struct {
	mu     sync.Mutex
	tamper func(body map[string]any)
	seen   []string
}

func (tt *tamperTransport) note(s string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	tt.seen = append(tt.seen, s)
}

func (tt *tamperTransport) notes() []string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return append([]string(nil), tt.seen...)
}

func (tt *tamperTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost {
		note := "POST " + req.URL.Path
		if req.Header.Get("DPoP") != "" {
			note += " dpop"
		}
		tt.note(note)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && req.Method == http.MethodPost && resp.Header.Get("DPoP-Nonce") != "" {
		tt.note(fmt.Sprintf("status %d dpop-nonce", resp.StatusCode))
	}
	tt.mu.Lock()
	tamper := tt.tamper
	tt.mu.Unlock()
	if err == nil && strings.HasSuffix(req.URL.Path, "/token") && resp.StatusCode == http.StatusOK {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			return nil, rerr
		}
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, err
		}
		if s, _ := body["id_token"].(string); strings.Count(s, ".") == 4 {
			tt.note("id_token jwe")
		} else {
			tt.note("id_token jws")
		}
		tt.note(fmt.Sprintf("token_type %v", body["token_type"]))
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	if err != nil || tamper == nil || !strings.HasSuffix(req.URL.Path, "/token") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	tamper(body)
	tt.note("tampered")
	b, _ := json.Marshal(body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// harness is one provider with this service in front of it.
type harness struct {
	t        *testing.T
	srv      *httptest.Server
	svc      *Service
	store    *fakeStore
	log      *syncbuf.Buffer
	tt       *tamperTransport
	provider ProviderSettings
	hmacKey  string
	env      map[string]string // what Getenv sees besides the hash key
	encKey   *ecdsa.PrivateKey // ours, when the provider encrypts
	// expected claims the provider gives (set up by the test)
	wantNationalID, wantSubject, wantName, wantNationality string
	// authorizeHeaders are added to the browser's requests to the provider.
	authorizeHeaders http.Header
}

// newHarness starts this service (the handler is bound once the service
// exists, since the service needs its own URL) and builds the service for
// the provider p, which configure completes with the server's URL.
func newHarness(t *testing.T, configure func(h *harness, base string) ProviderSettings) *harness {
	t.Helper()
	h := &harness{t: t, store: newFakeStore(), log: &syncbuf.Buffer{}, tt: &tamperTransport{},
		hmacKey: randomString(), env: map[string]string{}}
	var handler http.Handler = http.NotFoundHandler()
	var mu sync.Mutex
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hd := handler
		mu.Unlock()
		hd.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	h.provider = configure(h, h.srv.URL)
	svc, err := New(Options{
		Settings: Settings{PublicBaseURL: h.srv.URL, JWKSPath: "/.well-known/jwks.json",
			NationalIDHMACEnv: "TEST_ID_HMAC", Providers: []ProviderSettings{h.provider}},
		Links: h.store, Recorder: h.store,
		Logger:     slog.New(slog.NewTextHandler(h.log, nil)),
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: h.tt},
		Getenv: func(k string) string {
			if k == "TEST_ID_HMAC" {
				return h.hmacKey
			}
			return h.env[k]
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.svc = svc
	mu.Lock()
	handler = svc.Handler()
	mu.Unlock()
	return h
}

// page is where a browser ended.
type page struct {
	URL    *url.URL
	Status int
	Body   string
}

var (
	formAction = regexp.MustCompile(`(?s)<form[^>]*action="([^"]*)"[^>]*method="post"`)
	formInput  = regexp.MustCompile(`<input[^>]*name="([^"]*)"(?:[^>]*value="([^"]*)")?`)
)

// browser follows a link like a browser: redirects, cookies, and the
// providers' login and consent forms (filled with login), until it lands
// on this service's page or stops at the callback (stopAtCallback: the
// callback URL is returned unvisited).
func (h *harness) browser(link, login string, stopAtCallback bool) page {
	h.t.Helper()
	jar, _ := cookiejar.New(nil)
	ours, _ := url.Parse(h.srv.URL)
	var stopped *url.URL
	client := &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > 20 {
				return errors.New("too many redirects")
			}
			if req.URL.Host != ours.Host {
				for k, v := range h.authorizeHeaders {
					req.Header[k] = v
				}
			} else if stopAtCallback && req.URL.Path == "/id/callback" {
				stopped = req.URL
				return http.ErrUseLastResponse
			}
			return nil
		}}
	resp, err := client.Get(link)
	for step := 0; ; step++ {
		if err != nil {
			h.t.Fatalf("browser: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if stopped != nil {
			return page{URL: stopped}
		}
		if resp.Request.URL.Host == ours.Host || step > 10 {
			return page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(b)}
		}
		m := formAction.FindStringSubmatch(string(b))
		if m == nil {
			h.t.Fatalf("browser: provider page at %s (status %d) has no form:\n%s", resp.Request.URL, resp.StatusCode, b)
		}
		form := url.Values{}
		for _, in := range formInput.FindAllStringSubmatch(string(b), -1) {
			form.Set(in[1], in[2])
		}
		if form.Has("login") {
			form.Set("login", login)
			form.Set("password", "any")
		}
		action, _ := resp.Request.URL.Parse(m[1])
		resp, err = client.PostForm(action.String(), form)
	}
}

// get visits a URL of ours directly (a callback the test composed).
func (h *harness) get(u string) page {
	h.t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(b)}
}

// mustDone checks the done page and one record for registrant with the
// harness's expected identity.
func (h *harness) mustDone(p page, registrant string) Verified {
	h.t.Helper()
	if p.Status != http.StatusOK || !strings.Contains(p.Body, html.EscapeString(EnglishPages.Page(PageDone, "en").Body)) {
		h.t.Fatalf("not the done page: %s %d\n%s\nlog:\n%s", p.URL, p.Status, p.Body, h.log.String())
	}
	recs := h.store.recordsCopy()
	if len(recs) != 1 {
		h.t.Fatalf("%d identities recorded, want 1", len(recs))
	}
	r := recs[0]
	if r.RegistrantKey != registrant {
		h.t.Errorf("recorded for %q, want the link's registrant %q", r.RegistrantKey, registrant)
	}
	v := r.V
	if v.Provider != h.provider.ID || v.Subject != h.wantSubject || v.Name != h.wantName || v.Nationality != h.wantNationality {
		h.t.Errorf("recorded %+v, want provider %q subject %q name %q nationality %q",
			v, h.provider.ID, h.wantSubject, h.wantName, h.wantNationality)
	}
	if want := HashNationalID([]byte(h.hmacKey), h.wantNationalID); v.NationalIDHash != want {
		h.t.Errorf("national id hash %q, want %q", v.NationalIDHash, want)
	}
	if h.provider.KeepNationalID != (v.NationalID == NormalizeNationalID(h.wantNationalID)) {
		h.t.Errorf("national id kept as %q with keep_national_id=%v", v.NationalID, h.provider.KeepNationalID)
	}
	if v.VerifiedAt.IsZero() {
		h.t.Error("verified_at not set")
	}
	h.mustKeepLogClean()
	return v
}

// mustRefused checks the failure page, nothing recorded, and one log line
// of class.
func (h *harness) mustRefused(p page, class string) {
	h.t.Helper()
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, html.EscapeString(EnglishPages.Page(PageFailed, "en").Body)) {
		h.t.Errorf("not the failure page: %s %d\n%s", p.URL, p.Status, p.Body)
	}
	if recs := h.store.recordsCopy(); len(recs) != 0 {
		h.t.Errorf("refused, yet %d identities recorded: %+v", len(recs), recs)
	}
	h.mustKeepLogClean()
	if p.URL != nil {
		for _, v := range p.URL.Query() {
			h.mustKeepLogClean(v...)
		}
		if strings.HasPrefix(p.URL.Path, "/id/start/") {
			h.mustKeepLogClean(strings.TrimPrefix(p.URL.Path, "/id/start/"))
		}
	}
	want := fmt.Sprintf("class=%s", class)
	if !strings.Contains(h.log.String(), want) {
		h.t.Errorf("log has no %q:\n%s", want, h.log.String())
	}
}

// mustKeepLogClean fails when the log holds anything personal or secret
// the test knows: the national id (as given and normalised), the subject,
// the name, and every link token, state, nonce and code the test saw.
func (h *harness) mustKeepLogClean(extra ...string) {
	h.t.Helper()
	log := h.log.String()
	for _, secret := range append([]string{h.wantNationalID, NormalizeNationalID(h.wantNationalID), h.wantSubject, h.wantName}, extra...) {
		if secret != "" && strings.Contains(log, secret) {
			h.t.Errorf("the log reveals %q:\n%s", secret, log)
		}
	}
}

// logLines returns the log so far, line by line.
func (h *harness) logLines() []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(h.log.String()))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}
