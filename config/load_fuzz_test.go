package config

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/checkinbot/checkinbot"
	"github.com/checkinbot/checkinbot/errs"
)

// secretMarker begins every secret value the fuzzed environment holds, so
// that any error text carrying a secret is found by one search.
const secretMarker = "SECRETMARKERq7Zx"

// FuzzLoad feeds arbitrary bytes to Load as a configuration file on disk,
// then reads the secrets that configuration names from an environment
// holding marker values. Properties:
//
//   - Load never panics;
//   - it returns a configuration that passes its own validation (again,
//     and the same when parsed from text), or an *errs.Error with a code,
//     naming the file, whose message begins with the file name, and naming
//     a key whenever the problem is not the TOML syntax or a type
//     (where only the TOML library knows the position);
//   - no secret value — pepper, Telegram token and webhook secret, webhook
//     signing secrets, API tokens — appears in any error, whatever the
//     variables hold (unset, too short, malformed, valid).
func FuzzLoad(f *testing.F) {
	f.Add([]byte(checkinbot.ExampleConfig), "", uint8(0))
	f.Add([]byte(base), "x", uint8(1))
	f.Add([]byte(""), "", uint8(2))
	f.Add([]byte("operator = \"\xff\"\n"), "whsec_", uint8(3))
	f.Add([]byte(extraEmbassy), "secret-value", uint8(32+1))
	f.Add([]byte(extraEmbassy+"[telegram]\nmode = \"webhook\"\nwebhook_url = \"https://bot.example.org/tg\"\nwebhook_secret_env = \"TG_SECRET\"\nlisten = \"127.0.0.1:8443\"\n"),
		"tg", uint8(32+2))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, secret string, mode uint8) {
		if mode&32 != 0 {
			// More embassies, partners, secrets and tables after a valid
			// file: most such files are valid, so the secrets are read.
			data = append([]byte(checkinbot.ExampleConfig+"\n"), data...)
		}
		path := filepath.Join(dir, "checkinbot.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			checkConfigError(t, path, err)
			return
		}
		if c.Name != path {
			t.Errorf("Name = %q, want %q", c.Name, path)
		}
		if err := c.validate(); err != nil {
			t.Errorf("Load accepted a configuration its own validation refuses: %v", err)
		}
		if _, err := Parse(path, string(data)); err != nil {
			t.Errorf("Load accepted what Parse refuses: %v", err)
		}
		getenv := markedEnv(secret, mode)
		var errsSeen []error
		_, err = LoadSecrets(c, getenv, SecretNeeds{Pepper: mode&4 == 0})
		errsSeen = append(errsSeen, err)
		_, err = c.Endpoints(getenv, mode&8 == 0)
		errsSeen = append(errsSeen, err)
		_, err = LoadAPITokens(c, getenv)
		errsSeen = append(errsSeen, err)
		for _, err := range errsSeen {
			if err == nil {
				continue
			}
			msg := err.Error()
			// Even a truncated secret is a leak: look for the first 8
			// characters of the marker, as typed and as base64 in whsec_.
			if strings.Contains(msg, secretMarker[:8]) || strings.Contains(msg, base64.StdEncoding.EncodeToString([]byte(secretMarker))[:8]) ||
				(len(secret) >= 8 && strings.Contains(msg, secret)) {
				t.Errorf("an error reveals a secret value: %s", msg)
			}
			var ce *errs.Error
			if !errors.As(err, &ce) || ce.Code == "" {
				t.Errorf("secret error without a code: %#v", err)
			}
		}
	})
}

// extraEmbassy appended to the example names every kind of secret.
const extraEmbassy = `
[[embassy]]
id = "fuzz-embassy"
name = "Fuzz Embassy"
nationalities = ["MY"]
countries = ["KH"]
webhook_url = "https://hooks.example.org/a"
secondary_url = "https://backup.example.org/a"
secret_env = ["FUZZ_WHSEC", "FUZZ_WHSEC_NEXT"]
api_token_env = ["FUZZ_API_TOKEN"]
[[embassy.partner]]
id = "ngo"
url = "https://ngo.example.org/hook"
secret_env = ["FUZZ_NGO"]
events = ["sos.raised"]
`

// markedEnv is an environment in which every variable holds a secret
// carrying secretMarker, shaped by mode: unset, marker text (too short or
// malformed for most uses), a marker long enough for a pepper or token,
// or a valid whsec_ secret whose key bytes are the marker. The Telegram
// API URL override is set (to an invalid value) on some modes only.
func markedEnv(secret string, mode uint8) func(string) string {
	long := secretMarker + strings.Repeat("k", 32) + secret
	return func(name string) string {
		if name == EnvTelegramAPIURL && mode&16 == 0 {
			return ""
		}
		switch (mode + uint8(len(name))) % 4 {
		case 0:
			return ""
		case 1:
			return secretMarker + secret
		case 2:
			return long
		default:
			key := []byte(long)[:min(len(long), 48)]
			return "whsec_" + base64.StdEncoding.EncodeToString(key)
		}
	}
}

// checkConfigError asserts what every configuration error must be.
func checkConfigError(t *testing.T, path string, err error) {
	t.Helper()
	var ce *errs.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error is not an *errs.Error: %#v", err)
	}
	if ce.Code == "" || ce.File != path || ce.Reason == "" && ce.Err == nil {
		t.Errorf("error without code, file or reason: %#v", ce)
	}
	if !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("error does not begin with the file name: %q", err.Error())
	}
	var pe toml.ParseError
	fromTOML := ce.Err != nil && !errors.As(ce.Err, new(*errs.Error))
	if !fromTOML && ce.Key == "" {
		t.Errorf("a validation error names no key: %q", err.Error())
	}
	if errors.As(err, &pe) && pe.Position.Line > 0 && !strings.Contains(ce.Reason, "line ") {
		t.Errorf("a syntax error names no line: %q", err.Error())
	}
}

// TestKeysAreCaseSensitive: a key that differs from a known one only in
// case is refused with the key to write, every time — the TOML library
// would decode it into the same field as the right key, and which of the
// two won changed from run to run (found by FuzzLoad:
// testdata/fuzz/FuzzLoad/crash-miscased-embassy-table). Map keys (the
// languages of operator_names) stay the user's.
func TestKeysAreCaseSensitive(t *testing.T) {
	example := checkinbot.ExampleConfig
	for _, c := range []struct {
		name, text, key, want string
	}{
		{"SecondTableArray", example + "\n[[emBassY]]\nwebhook_url = \"0\"\n", "emBassY", `"embassy"`},
		{"TopLevelKey", "Operator = \"x\"\n" + example, "Operator", `"operator"`},
		{"Table", strings.Replace(example, "[checkin]", "[Checkin]", 1), "Checkin", `"checkin"`},
		{"KeyInTable", strings.Replace(example, "remind_after =", "Remind_After =", 1), "checkin.Remind_After", `"checkin.remind_after"`},
		{"KeyInTableArray", strings.Replace(example, "timezone = \"Asia/Jakarta\"", "TimeZone = \"Asia/Jakarta\"", 1), "country.TimeZone", `"country.timezone"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "checkinbot.toml")
			if err := os.WriteFile(path, []byte(c.text), 0o600); err != nil {
				t.Fatal(err)
			}
			for range 20 { // the library's map order varies between runs
				_, err := Load(path)
				var ce *errs.Error
				if !errors.As(err, &ce) || ce.Code != errs.EUNKNOWNKEY || ce.Key != c.key || !strings.Contains(ce.Reason, c.want) {
					t.Fatalf("got %v, want %s at %s naming %s", err, errs.EUNKNOWNKEY, c.key, c.want)
				}
			}
		})
	}
	mapKeys := strings.Replace(example, "operator_names = { ms =", "operator_names = { MS = \"x\", ms =", 1)
	if _, err := Parse("test.toml", mapKeys); err != nil {
		t.Errorf("operator_names keys are languages, any case: %v", err)
	}
}
