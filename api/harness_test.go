package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/internal/testkit/apptest"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The tokens of the test program: two for my-mekong (a rotation), one for
// id-mekong, and one of my-mekong's kept for the rate-limit test alone.
var (
	tokMY     = "my-token-0123456789-abcdefghijklmnop"
	tokMYNew  = "my-token-new-0123456789-abcdefghijkl"
	tokID     = "id-token-0123456789-abcdefghijklmnop"
	tokBurst  = "my-token-burst-0123456789-abcdefghij"
	allTokens = []config.APIToken{
		{Embassy: "my-mekong", Label: "MY_TOKEN", Secret: []byte(tokMY)},
		{Embassy: "my-mekong", Label: "MY_TOKEN_NEW", Secret: []byte(tokMYNew)},
		{Embassy: "id-mekong", Label: "ID_TOKEN", Secret: []byte(tokID)},
		{Embassy: "my-mekong", Label: "MY_TOKEN_BURST", Secret: []byte(tokBurst)},
	}
)

// registration is a whole registration in English with keyword "blue
// mango"; the passport country is filled in.
func registration(passport string) []string {
	return []string{"/start", "en", "1", passport, "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
		"24h", "09:00", "blue mango", "blue mango", "1"}
}

// world is a running program with the embassy API, two citizens (one per
// embassy) who registered and used their duress keyword, and the spec.
type world struct {
	*apptest.Program
	t      *testing.T
	base   string
	router routers.Router
	doc    *openapi3.T
	siti   fakeapi.User // my-mekong
	budi   fakeapi.User // id-mekong
	logs   *syncWriter  // the program's log
	// cursors are the registrant-list cursors walk was given.
	cursors []string
}

func newWorld(t *testing.T, edit ...func(*api.Options)) *world {
	t.Helper()
	logs := &syncWriter{}
	p := apptest.MustRunApp(t, func(o *app.Options) {
		o.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.Secrets.APITokens = allTokens
		o.API = func(opt api.Options) api.Options {
			for _, f := range edit {
				f(&opt)
			}
			return opt
		}
	})
	w := &world{Program: p, t: t, base: "http://" + p.Addr(), logs: logs,
		siti: fakeapi.User{ID: 8001, Username: "siti", Lang: "en"}, budi: fakeapi.User{ID: 8002, Username: "budi", Lang: "en"}}
	w.doc, w.router = loadSpec(t, w.base)
	t.Cleanup(p.App.API.Wait) // roll calls still prompting, before the store closes
	for _, c := range []struct {
		u        fakeapi.User
		passport string
	}{{w.siti, "MY"}, {w.budi, "ID"}} {
		for _, text := range append(registration(c.passport), "All good here. blue mango") {
			p.Say(c.u, text)
		}
	}
	p.WaitFor("both duress webhooks", func() bool {
		n := 0
		for _, ev := range p.Receiver.Events() {
			if ev.Type == "duress.triggered" {
				n++
			}
		}
		return n == 2
	})
	return w
}

// loadSpec loads docs/api.yaml, checks it is a valid document, and builds
// the router that finds each response's operation in it.
func loadSpec(t *testing.T, base string) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../docs/api.yaml")
	if err != nil {
		t.Fatalf("docs/api.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("docs/api.yaml is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, r
}

// response is one answer of the API.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// decode parses the body into v, failing the test if it is not JSON.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
}

// code is the error code of an error response.
func (r response) code(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	r.decode(t, &e)
	return e.Error.Code
}

// do sends one real HTTP request to the program and validates the
// response against docs/api.yaml with kin-openapi's openapi3filter: the
// status must be documented for the operation and the body must match its
// schema. A path the spec does not have (a 404 for an unknown endpoint)
// is checked against the Error schema.
func (w *world) do(method, path, token string, body []byte) response {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, w.base+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	out := response{Status: res.StatusCode, Header: res.Header, Body: raw}
	w.validate(req, out)
	return out
}

func (w *world) validate(req *http.Request, out response) {
	w.t.Helper()
	if ct := out.Header.Get("Content-Type"); ct != "application/json" {
		w.t.Errorf("%s %s: Content-Type %q", req.Method, req.URL.Path, ct)
	}
	route, params, err := w.router.FindRoute(req)
	if err != nil {
		var v any
		if jerr := json.Unmarshal(out.Body, &v); jerr != nil {
			w.t.Errorf("%s %s: body is not JSON: %q", req.Method, req.URL.Path, out.Body)
			return
		}
		if verr := w.doc.Components.Schemas["Error"].Value.VisitJSON(v); verr != nil || out.Status < 400 {
			w.t.Errorf("%s %s (no operation in the spec) answered %d %s: %v", req.Method, req.URL.Path, out.Status, out.Body, verr)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	rv := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: out.Status, Header: out.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	rv.SetBodyBytes(out.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), rv); err != nil {
		w.t.Errorf("%s %s answered %d, which docs/api.yaml does not allow: %v\nbody: %s", req.Method, req.URL.Path, out.Status, err, out.Body)
	}
}

// must does a request and fails unless it answered want.
func (w *world) must(want int, method, path, token string, body any) response {
	w.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			w.t.Fatal(err)
		}
	}
	r := w.do(method, path, token, raw)
	if r.Status != want {
		w.t.Fatalf("%s %s answered %d %s, want %d", method, path, r.Status, r.Body, want)
	}
	return r
}

// caseOut and friends are the response bodies, as a client reads them.
type caseOut struct {
	ID         string   `json:"id"`
	Status     string   `json:"status"`
	Severity   string   `json:"severity"`
	Types      []string `json:"types"`
	AckedBy    string   `json:"acked_by"`
	ResolvedBy string   `json:"resolved_by"`
	Outcome    string   `json:"outcome"`
	Notes      []struct {
		By, Text string
	} `json:"notes"`
}

type caseList struct {
	Cases      []caseOut `json:"cases"`
	NextCursor *string   `json:"next_cursor"`
}

type eventOut struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	EmbassyID    string `json:"embassy_id"`
	CaseID       string `json:"case_id"`
	DoNotContact bool   `json:"do_not_contact"`
}

type eventList struct {
	Events     []json.RawMessage `json:"events"`
	NextCursor *string           `json:"next_cursor"`
	More       bool              `json:"more"`
}

// syncWriter serialises log writes.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(b)
}

// String is everything logged so far.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
