package config

import (
	"fmt"
	"os"

	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/store/seal"
	"github.com/checkinbot/checkinbot/webhook"
)

// Secrets come from the environment, never from the configuration file,
// and are read and validated here only: serve, demo and tests all take
// them from LoadSecrets, and every error names the variable to fix.

// Environment variables holding secrets (besides the ones the
// configuration names: telegram.webhook_secret_env, embassies' secret_env).
const (
	// EnvPepper keys user ids and duress keyword hashes.
	EnvPepper = "CHECKIN_PEPPER"
	// EnvTelegramToken is the bot token from @BotFather; unset: no Telegram.
	EnvTelegramToken = "CHECKIN_TELEGRAM_TOKEN"
	// EnvTelegramAPIURL overrides telegram.api_url (a local Bot API server, tests).
	EnvTelegramAPIURL = "CHECKIN_TELEGRAM_API_URL"
	// EnvMasterKey is the master key encrypting the data file (32 bytes,
	// base64 or hex); or master_key_file in the configuration.
	EnvMasterKey = "CHECKIN_MASTER_KEY"
	// EnvMasterKeyOld is the previous master key, during a rotation.
	EnvMasterKeyOld = "CHECKIN_MASTER_KEY_OLD"
)

// MinPepperLen is the shortest pepper accepted: 32 characters of a random
// secret give at least 128 bits even if hex-encoded.
const MinPepperLen = 32

// minWebhookSecretLen is the shortest Telegram webhook secret accepted.
const minWebhookSecretLen = 16

// Secrets are the secrets one run of the service needs.
type Secrets struct {
	// Pepper keys user ids and duress keyword hashes; empty only when
	// SecretNeeds.Pepper was false and it was unset.
	Pepper []byte
	// TelegramToken is empty when Telegram is not served.
	TelegramToken string
	// TelegramAPIURL is the Bot API base URL: telegram.api_url, or the
	// environment's override; empty means the library's default.
	TelegramAPIURL string
	// TelegramWebhookSecret is the secret Telegram presents in webhook
	// mode (from telegram.webhook_secret_env).
	TelegramWebhookSecret string
	// Endpoints are the embassies' webhook receivers with their signing
	// secrets (from each embassy's secret_env): LoadEndpoints fills them.
	Endpoints []webhook.Endpoint
	// APITokens are the embassy API's bearer tokens (from each embassy's
	// api_token_env): LoadSecrets fills them.
	APITokens []APIToken
	// Keyring holds the master key encrypting the data file (and the old
	// one during a rotation); nil when none is given (LoadKeyring).
	Keyring *seal.Keyring
}

// SecretNeeds says which secrets a command requires.
type SecretNeeds struct {
	// Pepper: CHECKIN_PEPPER must be set (serve); else it may be unset
	// and the caller generates one (demo).
	Pepper bool
}

// SecretError is a secret missing or unfit; Var names the environment
// variable.
type SecretError struct {
	Var    string
	Reason string
}

func (e *SecretError) Error() string {
	return fmt.Sprintf("environment variable %s: %s", e.Var, e.Reason)
}

// Unwrap gives the error its stable code (errs.EINVALID) for errs.ErrorCode,
// like every other configuration error; the message stays the one above.
func (e *SecretError) Unwrap() error {
	return &errs.Error{Code: errs.EINVALID, Key: e.Var, Reason: e.Reason}
}

// LoadPepper reads CHECKIN_PEPPER: nil when unset and not required.
func LoadPepper(getenv func(string) string, required bool) ([]byte, error) {
	pepper := getenv(EnvPepper)
	switch {
	case pepper == "" && !required:
		return nil, nil
	case len(pepper) < MinPepperLen:
		return nil, &SecretError{Var: EnvPepper, Reason: fmt.Sprintf("must be set to a secret of at least %d characters "+
			"(for example: export %s=$(openssl rand -base64 32)); keep it: changing it "+
			"makes every registration unreachable", MinPepperLen, EnvPepper)}
	}
	return []byte(pepper), nil
}

// LoadSecrets reads and validates every secret c and need call for from
// getenv (os.Getenv in production); the embassies' webhook secrets come
// from LoadEndpoints.
func LoadSecrets(c *Config, getenv func(string) string, need SecretNeeds) (Secrets, error) {
	var s Secrets
	var err error
	if s.Pepper, err = LoadPepper(getenv, need.Pepper); err != nil {
		return s, err
	}
	s.TelegramToken = getenv(EnvTelegramToken)
	s.TelegramAPIURL = c.Telegram.APIURL
	if v := getenv(EnvTelegramAPIURL); v != "" {
		if err := validateURL(EnvTelegramAPIURL, v); err != nil {
			return s, &SecretError{Var: EnvTelegramAPIURL, Reason: "not an http(s) URL"}
		}
		s.TelegramAPIURL = v
	}
	if s.TelegramToken != "" && c.Telegram.Mode == "webhook" {
		name := c.Telegram.WebhookSecretEnv
		v := getenv(name)
		if len(v) < minWebhookSecretLen {
			return s, &Error{Code: errs.EINVALID, File: c.Name, Key: "telegram.webhook_secret_env",
				Reason: fmt.Sprintf("environment variable %s must hold a secret of at least %d characters (A-Z, a-z, 0-9, _ and -)",
					name, minWebhookSecretLen)}
		}
		s.TelegramWebhookSecret = v
	}
	if s.APITokens, err = LoadAPITokens(c, getenv); err != nil {
		return s, err
	}
	if s.Keyring, err = LoadKeyring(c, getenv); err != nil {
		return s, err
	}
	return s, nil
}

// LoadKeyring reads the master key from CHECKIN_MASTER_KEY or the file
// master_key_file names (not both), and the previous one, during a
// rotation, from CHECKIN_MASTER_KEY_OLD or old_master_key_file. It returns
// nil when no key is given: the caller decides whether that is allowed
// (serve only with --insecure-no-encryption). c may be nil (commands
// without a configuration file read the environment only).
func LoadKeyring(c *Config, getenv func(string) string) (*seal.Keyring, error) {
	var file, oldFile, name string
	if c != nil {
		file, oldFile, name = c.MasterKeyFile, c.OldMasterKeyFile, c.Name
	}
	load := func(env, key, path string) (*seal.MasterKey, error) {
		v := getenv(env)
		switch {
		case v != "" && path != "":
			return nil, &Error{Code: errs.EINVALID, File: name, Key: key,
				Reason: fmt.Sprintf("the environment sets %s too: give the key one way only", env)}
		case v != "":
			k, err := seal.ParseMasterKey(v)
			if err != nil {
				return nil, &SecretError{Var: env, Reason: err.Error()}
			}
			return k, nil
		case path != "":
			k, err := seal.LoadMasterKeyFile(path)
			if err != nil {
				return nil, &Error{Code: errs.EINVALID, File: name, Key: key, Reason: err.Error()}
			}
			return k, nil
		}
		return nil, nil
	}
	cur, err := load(EnvMasterKey, "master_key_file", file)
	if err != nil {
		return nil, err
	}
	old, err := load(EnvMasterKeyOld, "old_master_key_file", oldFile)
	if err != nil {
		return nil, err
	}
	switch {
	case cur == nil && old != nil:
		return nil, &SecretError{Var: EnvMasterKey, Reason: "an old master key is given but no current one: " +
			"set the new key in CHECKIN_MASTER_KEY (or master_key_file) and the old one in CHECKIN_MASTER_KEY_OLD"}
	case cur == nil:
		return nil, nil
	case old != nil && old.ID() == cur.ID():
		return nil, &SecretError{Var: EnvMasterKeyOld, Reason: "the old master key is the current one"}
	}
	r := &seal.Keyring{Current: cur}
	if old != nil {
		r.Old = []*seal.MasterKey{old}
	}
	return r, nil
}

// LoadEndpoints reads the embassies' webhook signing secrets (each
// embassy's secret_env). With requireURLs, every embassy must have a
// receiver or be pull_only (serve); the demo gives the others its sink.
func (s *Secrets) LoadEndpoints(c *Config, getenv func(string) string, requireURLs bool) error {
	eps, err := c.Endpoints(getenv, requireURLs)
	if err != nil {
		return err
	}
	s.Endpoints = eps
	return nil
}

// Getenv is os.Getenv for LoadSecrets, reading each fixed variable by its
// literal name, so that a search of the source (and the documentation
// test) finds every variable the service reads. Variables the
// configuration names are read as named.
func Getenv(name string) string {
	switch name {
	case EnvPepper:
		return os.Getenv("CHECKIN_PEPPER")
	case EnvTelegramToken:
		return os.Getenv("CHECKIN_TELEGRAM_TOKEN")
	case EnvTelegramAPIURL:
		return os.Getenv("CHECKIN_TELEGRAM_API_URL")
	case EnvMasterKey:
		return os.Getenv("CHECKIN_MASTER_KEY")
	case EnvMasterKeyOld:
		return os.Getenv("CHECKIN_MASTER_KEY_OLD")
	}
	return os.Getenv(name)
}
