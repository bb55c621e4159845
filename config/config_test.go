package config

import (
	"fmt"
	"strings"
	"testing"
)

const base = `operator = "the Ministry"
notice_version = "1"
retention_days = 90
[[country]]
code = "MY"
name = "Malaysia"
timezone = "Asia/Kuala_Lumpur"
[[country]]
code = "KH"
name = "Cambodia"
timezone = "Asia/Phnom_Penh"
`

func TestValidate(t *testing.T) {
	embassy := "[[embassy]]\nid = \"my-kh\"\nname = \"Embassy\"\nnationalities = [\"MY\"]\ncountries = [\"KH\"]\n"
	for _, c := range []struct {
		name, text, wantKey string
	}{
		{"OK", base + embassy, ""},
		{"ErrNoEmbassy", base, "embassy"},
		{"ErrBadTimezone", strings.Replace(base, "Asia/Phnom_Penh", "Asia/Atlantis", 1) + embassy, "country[1].timezone"},
		{"ErrDuplicateCountry", strings.Replace(base, `"KH"`, `"MY"`, 1) + embassy, "country[1].code"},
		{"ErrLowerCaseCode", strings.Replace(base, `"KH"`, `"kh"`, 1) + embassy, "country[1].code"},
		{"ErrUnknownCountry", base + strings.Replace(embassy, `["KH"]`, `["VN"]`, 1), "embassy[0].countries"},
		{"ErrOnlyOwnCountry", base + strings.Replace(embassy, `["KH"]`, `["MY"]`, 1), "embassy[0].countries"},
		{"ErrBadID", base + strings.Replace(embassy, `"my-kh"`, `"My KH"`, 1), "embassy[0].id"},
		{"ErrLadderOrder", base + embassy + "[checkin]\nremind_after = \"3h\"\nfinal_reminder_after = \"2h\"\n", "checkin.final_reminder_after"},
		{"ErrLongPause", base + embassy + "[checkin]\nmax_pause = \"400h\"\n", "checkin.max_pause"},
		{"ErrRetention", strings.Replace(base, "retention_days = 90", "retention_days = 0", 1) + embassy, "retention_days"},
		{"ErrEmptyOperatorName", "operator_names = { ms = \" \" }\n" + base + embassy, "operator_names.ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("test.toml", c.text)
			if c.wantKey == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			ce, ok := err.(*Error)
			if !ok || ce.File != "test.toml" || ce.Key != c.wantKey || ce.Reason == "" {
				t.Fatalf("got %#v (%v), want key %q", err, err, c.wantKey)
			}
		})
	}
}

func TestDefaultIsValidAndRoutes(t *testing.T) {
	c := Default()
	d := c.Directory()
	if got := d.EmbassyFor("MY", "KH"); got != "my-mekong" {
		t.Errorf("MY in KH routed to %q", got)
	}
	if got := d.EmbassyFor("ID", "TH"); got != "id-mekong" {
		t.Errorf("ID in TH routed to %q", got)
	}
	if p := c.Policy(); p.EscalateAfter.Hours() != 3 || p.OperatorNames["ms"] == "" {
		t.Errorf("policy %+v", p)
	}
}

// twoEmbassies is base with two embassies, each delivering to a URL.
const twoEmbassies = base + `[[embassy]]
id = "my-kh"
name = "Embassy of Malaysia"
nationalities = ["MY"]
countries = ["KH"]
webhook_url = "https://a.example/hook"
secret_env = ["A_SECRET"]
[[embassy]]
id = "kh-my"
name = "Embassy of Cambodia"
nationalities = ["KH"]
countries = ["MY"]
webhook_url = "https://b.example/hook"
secondary_url = "https://b2.example/hook"
secret_env = ["B_SECRET", "B_SECRET_NEW"]
[[embassy.partner]]
id = "ngo"
url = "https://ngo.example/hook"
secret_env = ["NGO_SECRET"]
events = ["sos.raised"]
`

// goodSecret is a well-formed whsec_ secret (32 bytes of 7).
const goodSecret = "whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="

// TestEndpointsServeCheck is serve's start-up check, over every embassy
// and every way it can be wrong: each error names the file, the key (with
// the embassy's index) and the reason (with the embassy's id); pull_only
// is the one way to run an embassy without a URL.
func TestEndpointsServeCheck(t *testing.T) {
	env := map[string]string{"A_SECRET": goodSecret, "B_SECRET": goodSecret, "B_SECRET_NEW": goodSecret, "NGO_SECRET": goodSecret}
	getenv := func(k string) string { return env[k] }
	ids := []string{"my-kh", "kh-my"}
	urls := []string{`webhook_url = "https://a.example/hook"` + "\nsecret_env = [\"A_SECRET\"]\n",
		`webhook_url = "https://b.example/hook"` + "\nsecondary_url = \"https://b2.example/hook\"\nsecret_env = [\"B_SECRET\", \"B_SECRET_NEW\"]\n"}
	for i, id := range ids {
		for _, c := range []struct {
			name    string
			edit    func(string) string
			loadErr bool   // refused by Parse (config check) rather than by Endpoints
			key     string // "" means accepted
			reason  []string
		}{
			{"OK", func(s string) string { return s }, false, "", nil},
			{"NoURL", func(s string) string {
				if i == 1 { // partners need the embassy's URL: drop them too
					s = s[:strings.Index(s, "[[embassy.partner]]")]
				}
				return strings.Replace(s, urls[i], "", 1)
			}, false, "webhook_url", []string{"missing for embassy \"" + id + "\"", "pull_only = true"}},
			{"PullOnly", func(s string) string {
				if i == 1 {
					s = s[:strings.Index(s, "[[embassy.partner]]")]
				}
				return strings.Replace(s, urls[i], "pull_only = true\n", 1)
			}, false, "", nil},
			{"PullOnlyWithURL", func(s string) string { return strings.Replace(s, urls[i], urls[i]+"pull_only = true\n", 1) },
				true, "pull_only", []string{"embassy \"" + id + "\" is pull_only but"}},
			{"UnsetSecret", func(s string) string {
				return strings.Replace(s, urls[i], strings.Replace(urls[i], "_SECRET\"", "_SECRET_UNSET\"", 1), 1)
			}, false, "secret_env", []string{"_SECRET_UNSET is not set"}},
			{"NotWhsec", func(s string) string {
				return strings.Replace(s, urls[i], strings.Replace(urls[i], "_SECRET\"", "_SECRET_BAD\"", 1), 1)
			}, false, "secret_env", []string{"_SECRET_BAD", "whsec_"}},
			{"EmptySecretList", func(s string) string {
				return strings.Replace(s, urls[i], strings.Split(urls[i], "secret_env")[0]+"secret_env = []\n", 1)
			}, true, "secret_env", []string{"at least one environment variable"}},
		} {
			t.Run(id+"/"+c.name, func(t *testing.T) {
				env["A_SECRET_BAD"], env["B_SECRET_BAD"] = "not-a-secret", "not-a-secret"
				text := c.edit(twoEmbassies)
				cfg, err := Parse("test.toml", text)
				wantKey := fmt.Sprintf("embassy[%d].%s", i, c.key)
				if c.loadErr {
					checkError(t, err, wantKey, c.reason)
					return
				}
				if err != nil {
					t.Fatalf("Parse: %v\n%s", err, text)
				}
				eps, err := cfg.Endpoints(getenv, true)
				if c.key != "" {
					checkError(t, err, wantKey, c.reason)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				// Without requireURLs (the demo) nothing is refused.
				if _, err := cfg.Endpoints(getenv, false); err != nil {
					t.Errorf("demo: %v", err)
				}
				for _, e := range cfg.Embassies {
					found := false
					for _, ep := range eps {
						found = found || (ep.Embassy == e.ID && !ep.Backup && len(ep.Events) == 0)
					}
					if found == e.PullOnly {
						t.Errorf("embassy %s: endpoint %v, pull_only %v", e.ID, found, e.PullOnly)
					}
				}
			})
		}
	}
}

func checkError(t *testing.T, err error, key string, reason []string) {
	t.Helper()
	ce, ok := err.(*Error)
	if !ok || ce.File != "test.toml" || ce.Key != key {
		t.Fatalf("got %#v (%v), want key %q", err, err, key)
	}
	for _, r := range reason {
		if !strings.Contains(ce.Reason, r) {
			t.Errorf("reason %q lacks %q", ce.Reason, r)
		}
	}
}

// TestClearEndpoints: the demo's built-in configuration keeps no URL,
// secret or partner, so it needs no secret and delivers to its own sink.
func TestClearEndpoints(t *testing.T) {
	c, err := Parse("test.toml", twoEmbassies)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearEndpoints()
	eps, err := c.Endpoints(func(string) string { return "" }, false)
	if err != nil || len(eps) != 0 {
		t.Errorf("after ClearEndpoints: %v endpoints, %v", eps, err)
	}
	if _, err := c.Endpoints(func(string) string { return "" }, true); err == nil {
		t.Error("serve accepts embassies with no URL after ClearEndpoints")
	}
}
