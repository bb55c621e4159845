package ops_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/internal/testkit/apptest"
)

// TestAPIMetrics: embassy API requests over real HTTP are counted by
// route pattern and status code, with their latency; no id from a path,
// no token, no embassy reaches /metrics, and a made-up path or method is
// "other" (a client cannot create series). Every route is present from
// the start.
func TestAPIMetrics(t *testing.T) {
	const tok = "ops-api-token-0123456789-abcdefghijkl"
	p := apptest.MustRunApp(t, func(o *app.Options) {
		o.AdminListen, o.AdminToken = "127.0.0.1:0", adminToken
		o.Secrets.APITokens = []config.APIToken{{Embassy: "my-mekong", Label: "MY_TOKEN", Secret: []byte(tok)}}
	})
	fams, _ := scrape(t, p)
	if _, ok := value(fams, "checkinbot_api_requests_total", "route", "POST /v1/cases/{id}/resolve"); !ok {
		t.Error("a route has no series before its first request")
	}
	do := func(method, path, token string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+p.Addr()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	do("GET", "/v1/cases", tok, 200)
	do("GET", "/v1/cases", tok, 200)
	do("GET", "/v1/cases/case_424242", tok, 404)
	do("GET", "/v1/cases/case_777777", "", 401)
	do("GET", "/v1/zz-secret-path", tok, 404)
	do("BREW", "/v1/cases", tok, 405)
	fams, body := scrape(t, p)
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"GET /v1/cases", "200", 2},
		{"GET /v1/cases/{id}", "404", 1},
		{"GET /v1/cases/{id}", "401", 1},
		{"other", "404", 1},
		{"other", "405", 1},
	} {
		if v, ok := value(fams, "checkinbot_api_requests_total", "route", c.route, "code", c.code); !ok || v != c.want {
			t.Errorf("requests %s %s = %v (present %v), want %v", c.route, c.code, v, ok, c.want)
		}
	}
	if v, ok := value(fams, "checkinbot_api_request_seconds", "route", "GET /v1/cases"); !ok || v != 2 {
		t.Errorf("latency observations of GET /v1/cases: %v (present %v), want 2", v, ok)
	}
	for _, secret := range []string{"424242", "777777", "zz-secret", "BREW", tok, "MY_TOKEN"} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics carries %q", secret)
		}
	}
	// The embassy id is an endpoint id elsewhere, but no API series has it.
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "checkinbot_api_") && strings.Contains(line, "my-mekong") {
			t.Errorf("an API series names the embassy: %s", line)
		}
	}
}
