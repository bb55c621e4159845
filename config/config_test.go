package config

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/errs"
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

// errorCase is one way a file (or, with endpoints, serve's environment)
// can be wrong, and exactly what the operator is told.
type errorCase struct {
	name      string
	text      string // the whole file
	endpoints bool   // refused by Endpoints(getenv, true), not by Parse
	code      errs.Code
	key       string
	msg       string // the whole message, pinned: operators and docs rely on it
}

// edit returns good with old replaced by new once; a missing old fails
// the test, so no case silently tests the valid file.
func edit(t *testing.T, good, old, new string) string {
	t.Helper()
	if !strings.Contains(good, old) {
		t.Fatalf("edit: %q not in the file", old)
	}
	return strings.Replace(good, old, new, 1)
}

// errorCases lists every validation error config can return, one case
// per return site (and per code where a site has two).
func errorCases(t *testing.T) []errorCase {
	g := twoEmbassies
	e := func(old, new string) string { return edit(t, g, old, new) }
	add := func(s string) string { return g + s }
	countries := "[[country]]\ncode = \"MY\"\nname = \"Malaysia\"\ntimezone = \"Asia/Kuala_Lumpur\"\n[[country]]\ncode = \"KH\"\nname = \"Cambodia\"\ntimezone = \"Asia/Phnom_Penh\"\n"
	primaryA := "webhook_url = \"https://a.example/hook\"\nsecret_env = [\"A_SECRET\"]\n"
	partner := g[strings.Index(g, "[[embassy.partner]]"):]
	noPartner := strings.TrimSuffix(g, partner)
	return []errorCase{
		{name: "Syntax", code: errs.EINVALID, text: e(`operator = "the Ministry"`, "operator = "), key: "operator", msg: "test.toml: operator: line 1: expected value but found '\\n' instead"},
		{name: "BadDuration", code: errs.EINVALID, text: add("[checkin]\nremind_after = \"1hour\"\n"), key: "checkin.remind_after", msg: "test.toml: checkin.remind_after: line 33: \"1hour\" is not a duration (write it like \"90s\", \"3h\" or \"24h\")"},
		// The TOML library names the key of a type mismatch only in its text.
		{name: "WrongType", code: errs.EINVALID, text: e("retention_days = 90", `retention_days = "90"`), key: "", msg: "test.toml: toml: line 3 (last key \"retention_days\"): incompatible types: TOML value has type string; destination has type integer"},
		{name: "UnknownKey", code: errs.EUNKNOWNKEY, text: "operatr = \"x\"\n" + g, key: "operatr", msg: "test.toml: operatr: unknown key (misspelt, or in the wrong table?)"},
		{name: "UnknownKeyInTable", code: errs.EUNKNOWNKEY, text: e(primaryA, primaryA+"webhook_secret = \"x\"\n"), key: "embassy.webhook_secret", msg: "test.toml: embassy.webhook_secret: unknown key (misspelt, or in the wrong table?)"},
		{name: "MissingOperator", code: errs.EMISSING, text: e(`operator = "the Ministry"`, ""), key: "operator", msg: "test.toml: operator: missing: name who runs the service (it appears in the consent notice)"},
		{name: "BlankOperator", code: errs.EMISSING, text: e(`operator = "the Ministry"`, `operator = "  "`), key: "operator", msg: "test.toml: operator: missing: name who runs the service (it appears in the consent notice)"},
		{name: "EmptyOperatorName", code: errs.EMISSING, text: "operator_names = { ms = \" \" }\n" + g, key: "operator_names.ms", msg: "test.toml: operator_names.ms: empty name"},
		{name: "MissingNoticeVersion", code: errs.EMISSING, text: e(`notice_version = "1"`, ""), key: "notice_version", msg: "test.toml: notice_version: missing: a label for the consent notice text, such as \"2026-11\""},
		{name: "RetentionZero", code: errs.EINVALID, text: e("retention_days = 90", "retention_days = 0"), key: "retention_days", msg: "test.toml: retention_days: must be between 1 and 3650, got 0"},
		{name: "RetentionTooLong", code: errs.EINVALID, text: e("retention_days = 90", "retention_days = 3651"), key: "retention_days", msg: "test.toml: retention_days: must be between 1 and 3650, got 3651"},
		{name: "RetentionNegative", code: errs.EINVALID, text: add("[retention]\ninactive = \"-1h\"\n"), key: "retention.inactive", msg: "test.toml: retention.inactive: must not be negative"},
		{name: "RetentionWithdrawnPastNotice", code: errs.EINVALID, text: add("[retention]\nwithdrawn = \"2161h\"\n"), key: "retention.withdrawn", msg: "test.toml: retention.withdrawn: 2161h0m0s is longer than retention_days (90 days), which the consent notice promises"},
		{name: "RetentionNoticeTooLong", code: errs.EINVALID, text: add("[retention]\ninactive = \"240h\"\nnotice = \"240h\"\n"), key: "retention.notice", msg: "test.toml: retention.notice: 240h must be shorter than inactive (240h): the notice goes out before the removal"},
		{name: "RetentionDeliveredTwice", code: errs.ECONFLICT, text: add("[delivery]\nkeep_delivered = \"240h\"\n[retention]\ndelivered = \"480h\"\n"), key: "retention.delivered", msg: "test.toml: retention.delivered: 480h0m0s, but delivery.keep_delivered (its older name) says 240h0m0s: keep one"},
		{name: "ShortInterval", code: errs.EINVALID, text: add("[checkin]\nintervals = [\"24h\", \"30s\"]\n"), key: "checkin.intervals", msg: "test.toml: checkin.intervals: 30s is shorter than a minute"},
		{name: "NegativeRemind", code: errs.EINVALID, text: add("[checkin]\nremind_after = \"-1h\"\n"), key: "checkin.remind_after", msg: "test.toml: checkin.remind_after: must be positive"},
		{name: "FinalBeforeRemind", code: errs.EINVALID, text: add("[checkin]\nremind_after = \"3h\"\nfinal_reminder_after = \"2h\"\n"), key: "checkin.final_reminder_after", msg: "test.toml: checkin.final_reminder_after: must be later than remind_after"},
		{name: "EscalateBeforeFinal", code: errs.EINVALID, text: add("[checkin]\nfinal_reminder_after = \"4h\"\nescalate_after = \"4h\"\n"), key: "checkin.escalate_after", msg: "test.toml: checkin.escalate_after: must be later than final_reminder_after"},
		{name: "NegativeReescalate", code: errs.EINVALID, text: add("[checkin]\nreescalate_every = \"-1h\"\n"), key: "checkin.reescalate_every", msg: "test.toml: checkin.reescalate_every: must be positive"},
		{name: "LongPause", code: errs.EINVALID, text: add("[checkin]\nmax_pause = \"400h\"\n"), key: "checkin.max_pause", msg: "test.toml: checkin.max_pause: must be between 1s and 336h (14 days)"},
		{name: "NegativePause", code: errs.EINVALID, text: add("[checkin]\nmax_pause = \"-1s\"\n"), key: "checkin.max_pause", msg: "test.toml: checkin.max_pause: must be between 1s and 336h (14 days)"},
		{name: "LongSnooze", code: errs.EINVALID, text: add("[checkin]\nsnooze = \"90m\"\n"), key: "checkin.snooze", msg: "test.toml: checkin.snooze: must be between 1s and 1h (a snooze is capped at 1h past the original due time)"},
		{name: "NegativeSnooze", code: errs.EINVALID, text: add("[checkin]\nsnooze = \"-5m\"\n"), key: "checkin.snooze", msg: "test.toml: checkin.snooze: must be between 1s and 1h (a snooze is capped at 1h past the original due time)"},
		{name: "NoCountry", code: errs.EMISSING, text: e(countries, ""), key: "country", msg: "test.toml: country: at least one [[country]] is needed"},
		{name: "CountryCodeFormat", code: errs.EINVALID, text: e(`code = "KH"`, `code = "kh"`), key: "country[1].code", msg: "test.toml: country[1].code: \"kh\" is not an ISO 3166 alpha-2 code like \"KH\""},
		{name: "CountryTwice", code: errs.ECONFLICT, text: e(`code = "KH"`, `code = "MY"`), key: "country[1].code", msg: "test.toml: country[1].code: \"MY\" is listed twice"},
		{name: "CountryNameMissing", code: errs.EMISSING, text: e(`name = "Cambodia"`, ""), key: "country[1].name", msg: "test.toml: country[1].name: missing: the country's English name"},
		{name: "TimezoneMissing", code: errs.EMISSING, text: e(`timezone = "Asia/Phnom_Penh"`, ""), key: "country[1].timezone", msg: "test.toml: country[1].timezone: missing: an IANA time zone like \"Asia/Phnom_Penh\""},
		{name: "TimezoneUnknown", code: errs.EINVALID, text: e("Asia/Phnom_Penh", "Asia/Atlantis"), key: "country[1].timezone", msg: "test.toml: country[1].timezone: \"Asia/Atlantis\" is not a known IANA time zone"},
		{name: "NoEmbassy", code: errs.EMISSING, text: base, key: "embassy", msg: "test.toml: embassy: at least one [[embassy]] is needed"},
		{name: "EmbassyIDFormat", code: errs.EINVALID, text: e(`id = "kh-my"`, `id = "KH MY"`), key: "embassy[1].id", msg: "test.toml: embassy[1].id: \"KH MY\" must be lower-case letters, digits and dashes"},
		{name: "EmbassyIDTwice", code: errs.ECONFLICT, text: e(`id = "kh-my"`, `id = "my-kh"`), key: "embassy[1].id", msg: "test.toml: embassy[1].id: \"my-kh\" is used by two embassies"},
		{name: "EmbassyNameMissing", code: errs.EMISSING, text: e(`name = "Embassy of Cambodia"`, `name = " "`), key: "embassy[1].name", msg: "test.toml: embassy[1].name: missing"},
		{name: "NoNationalities", code: errs.EMISSING, text: e(`nationalities = ["KH"]`, `nationalities = []`), key: "embassy[1].nationalities", msg: "test.toml: embassy[1].nationalities: list at least one passport country code"},
		{name: "NationalityWithoutCountry", code: errs.ENOTFOUND, text: e(`nationalities = ["KH"]`, `nationalities = ["VN"]`), key: "embassy[1].nationalities", msg: "test.toml: embassy[1].nationalities: \"VN\" has no [[country]] entry (needed for its name)"},
		{name: "CountryWithoutEntry", code: errs.ENOTFOUND, text: e(`countries = ["MY"]`, `countries = ["VN"]`), key: "embassy[1].countries", msg: "test.toml: embassy[1].countries: \"VN\" has no [[country]] entry"},
		{name: "OnlyOwnCountry", code: errs.EINVALID, text: e(`countries = ["MY"]`, `countries = ["KH"]`), key: "embassy[1].countries", msg: "test.toml: embassy[1].countries: citizens of \"KH\" are covered in no country other than their own"},
		{name: "PullOnlyWithURL", code: errs.ECONFLICT, text: e(primaryA, primaryA+"pull_only = true\n"), key: "embassy[0].pull_only", msg: "test.toml: embassy[0].pull_only: embassy \"my-kh\" is pull_only but also names webhook_url, secondary_url, secret_env or partners: remove pull_only to deliver webhooks, or the webhook keys to pull"},
		{name: "SecondaryWithoutPrimary", code: errs.EMISSING, text: edit(t, noPartner, `webhook_url = "https://b.example/hook"`, ""), key: "embassy[1].webhook_url", msg: "test.toml: embassy[1].webhook_url: missing, but a secondary URL or partners are set"},
		{name: "PartnersWithoutPrimary", code: errs.EMISSING, text: e(`webhook_url = "https://b.example/hook"`+"\n"+`secondary_url = "https://b2.example/hook"`, ""), key: "embassy[1].webhook_url", msg: "test.toml: embassy[1].webhook_url: missing, but a secondary URL or partners are set"},
		{name: "WebhookURLNotHTTP", code: errs.EINVALID, text: e("https://a.example/hook", "ftp://a.example/hook"), key: "embassy[0].webhook_url", msg: "test.toml: embassy[0].webhook_url: \"ftp://a.example/hook\" is not an absolute http(s) URL"},
		{name: "WebhookURLRelative", code: errs.EINVALID, text: e("https://a.example/hook", "/hook"), key: "embassy[0].webhook_url", msg: "test.toml: embassy[0].webhook_url: \"/hook\" is not an absolute http(s) URL"},
		{name: "SecondaryURLBad", code: errs.EINVALID, text: e("https://b2.example/hook", "https://"), key: "embassy[1].secondary_url", msg: "test.toml: embassy[1].secondary_url: \"https://\" is not an absolute http(s) URL"},
		{name: "NoSecretEnv", code: errs.EMISSING, text: e(`secret_env = ["A_SECRET"]`, `secret_env = []`), key: "embassy[0].secret_env", msg: "test.toml: embassy[0].secret_env: name at least one environment variable holding a whsec_ secret"},
		{name: "SecretEnvName", code: errs.EINVALID, text: e(`"B_SECRET_NEW"`, `"B-SECRET"`), key: "embassy[1].secret_env", msg: "test.toml: embassy[1].secret_env: \"B-SECRET\" is not an environment variable name"},
		{name: "PartnerIDFormat", code: errs.EINVALID, text: e(`id = "ngo"`, `id = "NGO"`), key: "embassy[1].partner[0].id", msg: "test.toml: embassy[1].partner[0].id: \"NGO\" must be lower-case letters, digits and dashes"},
		{name: "PartnerIDTwice", code: errs.ECONFLICT, text: add(partner), key: "embassy[1].partner[1].id", msg: "test.toml: embassy[1].partner[1].id: \"ngo\" is used twice"},
		{name: "PartnerNoEvents", code: errs.EMISSING, text: e(`events = ["sos.raised"]`, `events = []`), key: "embassy[1].partner[0].events", msg: "test.toml: embassy[1].partner[0].events: list the event types this partner receives"},
		{name: "PartnerURLMissing", code: errs.EMISSING, text: e(`url = "https://ngo.example/hook"`, ""), key: "embassy[1].partner[0].url", msg: "test.toml: embassy[1].partner[0].url: \"\" is not an absolute http(s) URL"},
		{name: "PartnerURLBad", code: errs.EINVALID, text: e("https://ngo.example/hook", "mailto:ngo@example.org"), key: "embassy[1].partner[0].url", msg: "test.toml: embassy[1].partner[0].url: \"mailto:ngo@example.org\" is not an absolute http(s) URL"},
		{name: "PartnerNoSecretEnv", code: errs.EMISSING, text: e(`secret_env = ["NGO_SECRET"]`, ""), key: "embassy[1].partner[0].secret_env", msg: "test.toml: embassy[1].partner[0].secret_env: name at least one environment variable holding a whsec_ secret"},
		{name: "PartnerSecretEnvName", code: errs.EINVALID, text: e(`"NGO_SECRET"`, `"1NGO"`), key: "embassy[1].partner[0].secret_env", msg: "test.toml: embassy[1].partner[0].secret_env: \"1NGO\" is not an environment variable name"},
		{name: "PartnerUnknownEvent", code: errs.EINVALID, text: e(`events = ["sos.raised"]`, `events = ["sos.raised", "sos.lowered"]`), key: "embassy[1].partner[0].events", msg: "test.toml: embassy[1].partner[0].events: \"sos.lowered\" is not an event type"},
		{name: "TelegramAPIURL", code: errs.EINVALID, text: add("[telegram]\napi_url = \"localhost:8081\"\n"), key: "telegram.api_url", msg: "test.toml: telegram.api_url: \"localhost:8081\" is not an absolute http(s) URL"},
		{name: "TelegramMode", code: errs.EINVALID, text: add("[telegram]\nmode = \"push\"\n"), key: "telegram.mode", msg: "test.toml: telegram.mode: \"push\": use \"polling\" or \"webhook\""},
		{name: "TelegramWebhookURLMissing", code: errs.EMISSING, text: add("[telegram]\nmode = \"webhook\"\n"), key: "telegram.webhook_url", msg: "test.toml: telegram.webhook_url: \"\" is not an absolute http(s) URL"},
		{name: "TelegramWebhookURLBad", code: errs.EINVALID, text: add("[telegram]\nmode = \"webhook\"\nwebhook_url = \"bot.example\"\n"), key: "telegram.webhook_url", msg: "test.toml: telegram.webhook_url: \"bot.example\" is not an absolute http(s) URL"},
		{name: "TelegramSecretEnvMissing", code: errs.EMISSING, text: add("[telegram]\nmode = \"webhook\"\nwebhook_url = \"https://bot.example/tg\"\n"), key: "telegram.webhook_secret_env", msg: "test.toml: telegram.webhook_secret_env: name the environment variable holding the webhook secret"},
		{name: "TelegramSecretEnvName", code: errs.EINVALID, text: add("[telegram]\nmode = \"webhook\"\nwebhook_url = \"https://bot.example/tg\"\nwebhook_secret_env = \"TG SECRET\"\n"), key: "telegram.webhook_secret_env", msg: "test.toml: telegram.webhook_secret_env: name the environment variable holding the webhook secret"},
		{name: "TelegramListenMissing", code: errs.EMISSING, text: add("[telegram]\nmode = \"webhook\"\nwebhook_url = \"https://bot.example/tg\"\nwebhook_secret_env = \"TG_SECRET\"\n"), key: "telegram.listen", msg: "test.toml: telegram.listen: missing: the local address to serve the webhook on, such as \":8443\""},
		{name: "TelegramRateTooHigh", code: errs.EINVALID, text: add("[telegram]\nglobal_rate = 31.0\n"), key: "telegram.global_rate", msg: "test.toml: telegram.global_rate: must be between 0 (default 30) and 30 messages a second"},
		{name: "TelegramRateNegative", code: errs.EINVALID, text: add("[telegram]\nglobal_rate = -1.0\n"), key: "telegram.global_rate", msg: "test.toml: telegram.global_rate: must be between 0 (default 30) and 30 messages a second"},
		{name: "PaidRateTooHigh", code: errs.EINVALID, text: add("[telegram]\nallow_paid_broadcast = true\npaid_broadcast_rate = 1001.0\n"), key: "telegram.paid_broadcast_rate", msg: "test.toml: telegram.paid_broadcast_rate: must be between 0 (default 1000) and 1000 messages a second (Telegram's paid broadcast limit)"},
		{name: "PaidRateWithoutPaying", code: errs.EINVALID, text: add("[telegram]\npaid_broadcast_rate = 300.0\n"), key: "telegram.paid_broadcast_rate", msg: "test.toml: telegram.paid_broadcast_rate: is set but allow_paid_broadcast is not: set allow_paid_broadcast = true to pay for the higher rate, or remove paid_broadcast_rate"},
		{name: "TelegramPerChatNegative", code: errs.EINVALID, text: add("[telegram]\nper_chat_interval = \"-1s\"\n"), key: "telegram.per_chat_interval", msg: "test.toml: telegram.per_chat_interval: must not be negative"},
		{name: "WhatsAppPerRecipientFast", code: errs.EINVALID, text: add("[whatsapp]\nper_recipient_interval = \"100ms\"\n"), key: "whatsapp.per_recipient_interval", msg: "test.toml: whatsapp.per_recipient_interval: 100ms is too fast for WhatsApp (at least 500ms; default 2s)"},
		{name: "WhatsAppGlobalFast", code: errs.EINVALID, text: add("[whatsapp]\nglobal_interval = \"100ms\"\n"), key: "whatsapp.global_interval", msg: "test.toml: whatsapp.global_interval: 100ms is too fast for WhatsApp (at least 200ms; default 1s)"},
		{name: "LimitsFloodMessagesLow", code: errs.EINVALID, text: add("[limits]\nflood_messages = 4\n"), key: "limits.flood_messages", msg: "test.toml: limits.flood_messages: must be between 5 and 10000 messages (default 20), got 4"},
		{name: "LimitsFloodMessagesHigh", code: errs.EINVALID, text: add("[limits]\nflood_messages = 10001\n"), key: "limits.flood_messages", msg: "test.toml: limits.flood_messages: must be between 5 and 10000 messages (default 20), got 10001"},
		{name: "LimitsFloodWindowShort", code: errs.EINVALID, text: add("[limits]\nflood_window = \"500ms\"\n"), key: "limits.flood_window", msg: "test.toml: limits.flood_window: must be between 1s and 10m (default 10s), got 500ms"},
		{name: "LimitsFloodWindowLong", code: errs.EINVALID, text: add("[limits]\nflood_window = \"11m\"\n"), key: "limits.flood_window", msg: "test.toml: limits.flood_window: must be between 1s and 10m (default 10s), got 11m0s"},
		{name: "LimitsPerChatNegative", code: errs.EINVALID, text: add("[limits]\nregistrations_per_chat = -1\n"), key: "limits.registrations_per_chat", msg: "test.toml: limits.registrations_per_chat: must be between 1 and 1000 a day (default 5), got -1"},
		{name: "LimitsPerChatHigh", code: errs.EINVALID, text: add("[limits]\nregistrations_per_chat = 1001\n"), key: "limits.registrations_per_chat", msg: "test.toml: limits.registrations_per_chat: must be between 1 and 1000 a day (default 5), got 1001"},
		{name: "LimitsPerMinuteNegative", code: errs.EINVALID, text: add("[limits]\nregistrations_per_minute = -5\n"), key: "limits.registrations_per_minute", msg: "test.toml: limits.registrations_per_minute: must be between 1 and 1000000 a minute (default 120), got -5"},
		{name: "LimitsPerMinuteHigh", code: errs.EINVALID, text: add("[limits]\nregistrations_per_minute = 1000001\n"), key: "limits.registrations_per_minute", msg: "test.toml: limits.registrations_per_minute: must be between 1 and 1000000 a minute (default 120), got 1000001"},
		{name: "DeliveryTimeoutNegative", code: errs.EINVALID, text: add("[delivery]\ntimeout = \"-1s\"\n"), key: "delivery.timeout", msg: "test.toml: delivery.timeout: must not be negative"},
		{name: "DeliverySecondaryNegative", code: errs.EINVALID, text: add("[delivery]\nsecondary_after = \"-1s\"\n"), key: "delivery.secondary_after", msg: "test.toml: delivery.secondary_after: must not be negative"},
		{name: "DeliveryGiveUpNegative", code: errs.EINVALID, text: add("[delivery]\ngive_up_after = \"-1s\"\n"), key: "delivery.give_up_after", msg: "test.toml: delivery.give_up_after: must not be negative"},
		{name: "DeliveryKeepNegative", code: errs.EINVALID, text: add("[delivery]\nkeep_delivered = \"-1s\"\n"), key: "delivery.keep_delivered", msg: "test.toml: delivery.keep_delivered: must not be negative"},
		{name: "DeliveryHeartbeatNegative", code: errs.EINVALID, text: add("[delivery]\nheartbeat_every = \"-1s\"\n"), key: "delivery.heartbeat_every", msg: "test.toml: delivery.heartbeat_every: must not be negative"},
		{name: "ServeNoURL", code: errs.EMISSING, endpoints: true, text: e(primaryA, ""), key: "embassy[0].webhook_url", msg: "test.toml: embassy[0].webhook_url: missing for embassy \"my-kh\": its escalations would wait undelivered. Set webhook_url and secret_env (docs/first-delivery.md), or pull_only = true if this embassy will fetch its events from the event API"},
		{name: "ServeSecretUnset", code: errs.EMISSING, endpoints: true, text: e(`"A_SECRET"`, `"A_SECRET_UNSET"`), key: "embassy[0].secret_env", msg: "test.toml: embassy[0].secret_env: environment variable A_SECRET_UNSET is not set"},
		{name: "ServeSecretMalformed", code: errs.EINVALID, endpoints: true, text: e(`"B_SECRET_NEW"`, `"B_SECRET_BAD"`), key: "embassy[1].secret_env", msg: "test.toml: embassy[1].secret_env: environment variable B_SECRET_BAD: a webhook secret starts with whsec_"},
		{name: "ServePartnerSecretUnset", code: errs.EMISSING, endpoints: true, text: e(`"NGO_SECRET"`, `"NGO_SECRET_UNSET"`), key: "embassy[1].partner[0].secret_env", msg: "test.toml: embassy[1].partner[0].secret_env: environment variable NGO_SECRET_UNSET is not set"},
	}
}

// serveEnv holds the secrets twoEmbassies names, one of them malformed.
var serveEnv = map[string]string{"A_SECRET": goodSecret, "B_SECRET": goodSecret, "B_SECRET_NEW": goodSecret,
	"NGO_SECRET": goodSecret, "B_SECRET_BAD": "not-a-secret"}

// TestEveryError runs every way a file can be wrong: each is refused with
// its stable code, the file and the key as fields (found with errors.As,
// never by reading text), and with exactly the message operators saw
// before codes existed.
func TestEveryError(t *testing.T) {
	for _, c := range errorCases(t) {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("test.toml", c.text)
			if c.endpoints {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				_, err = cfg.Endpoints(func(k string) string { return serveEnv[k] }, true)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			if ce.File != "test.toml" || ce.Key != c.key || ce.Reason == "" {
				t.Errorf("file %q key %q reason %q; want test.toml, %q", ce.File, ce.Key, ce.Reason, c.key)
			}
			if got := errs.ErrorCode(err); got != c.code || ce.Code != c.code {
				t.Errorf("code %q (ErrorCode %q), want %q", ce.Code, got, c.code)
			}
			if err.Error() != c.msg {
				t.Errorf("message changed:\n got %s\nwant %s", err, c.msg)
			}
		})
	}
}

// TestLoadErrors: Load names the path it was given, for a missing file
// (ENOTFOUND, the cause kept for errors.Is) and for a bad one.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "absent.toml")
	_, err := Load(missing)
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != errs.ENOTFOUND || ce.File != missing || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %#v", err)
	}
	if want := missing + ": open " + missing + ": no such file or directory"; err.Error() != want {
		t.Errorf("message changed:\n got %s\nwant %s", err, want)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("operatr = \"x\"\n"+twoEmbassies), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if !errors.As(err, &ce) || ce.Code != errs.EUNKNOWNKEY || ce.File != bad || ce.Key != "operatr" {
		t.Fatalf("bad file: %#v", err)
	}
}

// TestEveryErrorLiteralHasCode reads config.go: every *Error built there
// sets Code (configError takes it as an argument), so a new check cannot
// slip in as EINTERNAL, and none is built from another error's text.
func TestEveryErrorLiteralHasCode(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "config.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	literals := 0
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		if id, ok := lit.Type.(*ast.Ident); !ok || id.Name != "Error" {
			return true
		}
		literals++
		for _, e := range lit.Elts {
			if kv, ok := e.(*ast.KeyValueExpr); ok && kv.Key.(*ast.Ident).Name == "Code" {
				return true
			}
		}
		t.Errorf("%s: an Error literal without a Code", fset.Position(lit.Pos()))
		return true
	})
	if literals < 5 {
		t.Fatalf("found %d Error literals: the scan is broken", literals)
	}
}

// TestSeveralBadDelivery: of several bad [delivery] keys the first in
// file order is named, every time (it used to be a random one).
func TestSeveralBadDelivery(t *testing.T) {
	text := twoEmbassies + "[delivery]\ntimeout = \"-1s\"\ngive_up_after = \"-1s\"\nheartbeat_every = \"-1s\"\n"
	for range 20 {
		_, err := Parse("test.toml", text)
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "delivery.timeout" {
			t.Fatalf("got %v, want delivery.timeout", err)
		}
	}
}

// TestRetentionPolicy: [retention] reaches the engine with its defaults
// filled in — withdrawn from retention_days (the consent notice's promise),
// a notice never as long as the period it announces — and delivered
// reaches webhook delivery under either of its names.
func TestRetentionPolicy(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		name, text                        string
		withdrawn, inactive, notice, keep time.Duration
	}{
		{"Defaults", twoEmbassies, 90 * day, 180 * day, 14 * day, 30 * day},
		{"ShortRetentionDays", strings.Replace(twoEmbassies, "retention_days = 90", "retention_days = 10", 1), 10 * day, 180 * day, 5 * day, 30 * day},
		{"Set", twoEmbassies + "[retention]\nwithdrawn = \"720h\"\ninactive = \"2160h\"\nnotice = \"168h\"\ndelivered = \"240h\"\n", 30 * day, 90 * day, 7 * day, 10 * day},
		{"OlderName", twoEmbassies + "[delivery]\nkeep_delivered = \"48h\"\n", 90 * day, 180 * day, 14 * day, 2 * day},
		{"BothNamesAgree", twoEmbassies + "[delivery]\nkeep_delivered = \"48h\"\n[retention]\ndelivered = \"48h\"\n", 90 * day, 180 * day, 14 * day, 2 * day},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("test.toml", c.text)
			if err != nil {
				t.Fatal(err)
			}
			r := cfg.Policy().Retention
			if r.Withdrawn != c.withdrawn || r.Inactive != c.inactive || r.Notice != c.notice {
				t.Errorf("retention %+v, want withdrawn %s inactive %s notice %s", r, c.withdrawn, c.inactive, c.notice)
			}
			if got := cfg.DeliveryPolicy().KeepDelivered; got != c.keep {
				t.Errorf("keep delivered %s, want %s", got, c.keep)
			}
		})
	}
}

// TestLimits: [limits] keys parse, and unset ones stay zero (the runner's
// defaults apply, app.limits).
func TestLimits(t *testing.T) {
	text := edit(t, twoEmbassies, "[[country]]", "[limits]\nflood_messages = 30\nflood_window = \"1m\"\nregistrations_per_chat = 2\n\n[[country]]")
	c, err := Parse("test.toml", text)
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{FloodMessages: 30, FloodWindow: Duration{time.Minute}, RegistrationsPerChat: 2}
	if c.Limits != want {
		t.Errorf("limits %+v, want %+v", c.Limits, want)
	}
}

// TestAuditRetention: unset is the documented default (400 days); a set
// value is taken as it is.
func TestAuditRetention(t *testing.T) {
	if got := Default().AuditRetention(); got != 9600*time.Hour {
		t.Errorf("default audit retention %v, want 400 days (9600h, as documented)", got)
	}
	c, err := Parse("test.toml", twoEmbassies+"[audit]\nretention = \"720h\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.AuditRetention(); got != 720*time.Hour {
		t.Errorf("audit retention %v, want 720h", got)
	}
}
