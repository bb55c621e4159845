package config

import (
	"fmt"
	"os"
	"path/filepath"
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

func TestLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	raw := strings.Repeat("k", 32)
	hexKey := fmt.Sprintf("%x", raw)
	oldHex := fmt.Sprintf("%x", strings.Repeat("o", 32))
	file := filepath.Join(dir, "master.key")
	os.WriteFile(file, []byte(hexKey+"\n"), 0o600)
	open := filepath.Join(dir, "open.key")
	os.WriteFile(open, []byte(hexKey), 0o644)
	for _, tc := range []struct {
		name      string
		env       map[string]string
		file, old string
		wantOld   bool
		err       string // "" ok; else a part of the error
		none      bool
	}{
		{name: "none", none: true},
		{name: "env", env: map[string]string{EnvMasterKey: hexKey}},
		{name: "file", file: file},
		{name: "rotation", env: map[string]string{EnvMasterKey: hexKey, EnvMasterKeyOld: oldHex}, wantOld: true},
		{name: "both ways", env: map[string]string{EnvMasterKey: hexKey}, file: file, err: "master_key_file"},
		{name: "malformed", env: map[string]string{EnvMasterKey: "not-a-key"}, err: EnvMasterKey},
		{name: "old without current", env: map[string]string{EnvMasterKeyOld: oldHex}, err: "no current one"},
		{name: "old is current", env: map[string]string{EnvMasterKey: hexKey, EnvMasterKeyOld: hexKey}, err: "is the current one"},
		{name: "readable file", file: open, err: "readable by others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Name: "x.toml", MasterKeyFile: tc.file, OldMasterKeyFile: tc.old}
			r, err := LoadKeyring(c, func(k string) string { return tc.env[k] })
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error about %q", err, tc.err)
				}
				if strings.Contains(err.Error(), hexKey) || strings.Contains(err.Error(), "not-a-key") {
					t.Fatalf("the error repeats the key: %v", err)
				}
			case err != nil:
				t.Fatal(err)
			case tc.none:
				if r != nil {
					t.Fatal("a keyring without a key")
				}
			case r == nil || r.Current == nil || (len(r.Old) == 1) != tc.wantOld:
				t.Fatalf("keyring %+v", r)
			}
		})
	}
}
