package config

import (
	"strings"
	"testing"

	"github.com/checkinbot/checkinbot/errs"
)

// TestLoadSecretsNamesTheVariable: every missing or unfit secret is an
// error naming the environment variable to fix, and nothing of its value.
func TestLoadSecretsNamesTheVariable(t *testing.T) {
	good := map[string]string{EnvPepper: strings.Repeat("p", MinPepperLen), EnvTelegramToken: "1:tok", "HOOK": "a-webhook-secret-of-22"}
	webhook := func(c *Config) {
		c.Telegram.Mode, c.Telegram.WebhookURL, c.Telegram.WebhookSecretEnv = "webhook", "https://x.example/", "HOOK"
	}
	for _, tc := range []struct {
		name   string
		env    map[string]string
		cfg    func(*Config)
		need   SecretNeeds
		naming string // "" when it must succeed
	}{
		{"OK", good, webhook, SecretNeeds{Pepper: true}, ""},
		{"OKDemoWithoutPepper", map[string]string{}, nil, SecretNeeds{}, ""},
		{"ErrPepperRequired", map[string]string{}, nil, SecretNeeds{Pepper: true}, EnvPepper},
		{"ErrPepperShort", map[string]string{EnvPepper: "short-secret"}, nil, SecretNeeds{}, EnvPepper},
		{"ErrAPIURL", map[string]string{EnvTelegramAPIURL: "ftp://nope-value"}, nil, SecretNeeds{}, EnvTelegramAPIURL},
		{"ErrWebhookSecretMissing", map[string]string{EnvPepper: good[EnvPepper], EnvTelegramToken: "1:tok"}, webhook, SecretNeeds{}, "HOOK"},
		{"ErrWebhookSecretShort", map[string]string{EnvTelegramToken: "1:tok", "HOOK": "short-value"}, webhook, SecretNeeds{}, "HOOK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			if tc.cfg != nil {
				tc.cfg(c)
			}
			s, err := LoadSecrets(c, func(k string) string { return tc.env[k] }, tc.need)
			if tc.naming == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if string(s.Pepper) != tc.env[EnvPepper] || s.TelegramToken != tc.env[EnvTelegramToken] {
					t.Errorf("secrets not as set: pepper %d bytes, token %q", len(s.Pepper), s.TelegramToken)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.naming) {
				t.Fatalf("error %v, want one naming %s", err, tc.naming)
			}
			for k, v := range tc.env {
				if k != tc.naming && len(v) > 8 && strings.Contains(err.Error(), v) {
					t.Errorf("error reveals the value of %s: %v", k, err)
				}
			}
			if v := tc.env[tc.naming]; v != "" && strings.Contains(err.Error(), v) {
				t.Errorf("error reveals the secret: %v", err)
			}
		})
	}
}

// TestGetenvReadsTheNamedVariable: Getenv's literal names match the
// constants, so LoadSecrets(Getenv) reads what the docs name.
func TestGetenvReadsTheNamedVariable(t *testing.T) {
	for _, name := range []string{EnvPepper, EnvTelegramToken, EnvTelegramAPIURL, "CHECKIN_SOMETHING_ELSE"} {
		t.Setenv(name, "value-of-"+name)
		if got := Getenv(name); got != "value-of-"+name {
			t.Errorf("Getenv(%s) = %q", name, got)
		}
	}
}

// TestSecretErrorsHaveACode: a secret error is EINVALID to errs.ErrorCode,
// like every configuration error, while its message names the variable.
func TestSecretErrorsHaveACode(t *testing.T) {
	_, err := LoadPepper(func(string) string { return "short" }, true)
	if err == nil {
		t.Fatal("a short pepper was accepted")
	}
	if code := errs.ErrorCode(err); code != errs.EINVALID {
		t.Errorf("code %q, want %q", code, errs.EINVALID)
	}
	if !strings.Contains(err.Error(), EnvPepper) || strings.Contains(err.Error(), "short") {
		t.Errorf("message %q: want the variable named and the value hidden", err.Error())
	}
}
