package identity

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/checkinbot/checkinbot/errs"
)

// ClockSkew is how far the provider's clock may differ from ours when the
// ID token's exp and iat are checked (docs/identity.md). One minute covers
// NTP-synchronised hosts with room to spare and is far below the lifetime
// of any token we accept.
const ClockSkew = 60 * time.Second

// Kinds of provider: the protocol rules that differ between them.
const (
	// KindSingpass is Singpass's OpenID Connect for relying parties: the
	// NRIC/UINFIN is read from the `sub` claim ("s=S1234567A,u=…"),
	// client authentication is always private_key_jwt, ID tokens are
	// always encrypted.
	KindSingpass = "singpass"
	// KindOIDC is any standard OpenID provider (MyDigital ID's realms,
	// eIDAS brokers …): claims are read by the names the config gives.
	KindOIDC = "oidc"
)

// Client authentication methods at the token (and PAR) endpoint.
const (
	// AuthPrivateKeyJWT signs a short client assertion with our key (ES256).
	AuthPrivateKeyJWT = "private_key_jwt"
	// AuthClientSecret sends client_id and client_secret in the form
	// (client_secret_post); only for kind oidc, never with fapi2.
	AuthClientSecret = "client_secret"
)

// Settings is the [identity] table of the configuration file: where the
// citizen's browser reaches us, where our JWKS is served, the key for
// national id hashes, and the providers.
type Settings struct {
	// PublicBaseURL is the address citizens' browsers use for this
	// service's HTTP listener (https in production): links are
	// PublicBaseURL/id/start/…, the redirect URI PublicBaseURL/id/callback.
	PublicBaseURL string `toml:"public_base_url"`
	// JWKSPath is where our public signing and encryption keys are served
	// for providers to fetch (register PublicBaseURL+JWKSPath with them).
	JWKSPath string `toml:"jwks_path"`
	// NationalIDHMACEnv names the environment variable holding the key of
	// the national id hashes (at least 32 characters; keep it: changing it
	// changes every hash).
	NationalIDHMACEnv string `toml:"national_id_hmac_env"`
	// Providers are the identity providers offered, in the order offered.
	Providers []ProviderSettings `toml:"providers"`
}

// ProviderSettings is one [[identity.providers]] entry.
type ProviderSettings struct {
	// ID names the provider in links, flows and the stored identity.
	ID string `toml:"id"`
	// Kind is KindSingpass or KindOIDC.
	Kind string `toml:"kind"`
	// DisplayName is the button text per language tag; "en" is required
	// and used for languages not listed.
	DisplayName map[string]string `toml:"display_name"`
	// Nationalities are the passport countries (ISO 3166 alpha-2) whose
	// citizens are offered this provider.
	Nationalities []string `toml:"nationalities"`
	// Issuer is the provider's issuer identifier; discovery is read from
	// Issuer/.well-known/openid-configuration unless DiscoveryURL is set.
	Issuer       string `toml:"issuer"`
	DiscoveryURL string `toml:"discovery_url"`
	// ClientID is what the provider registered us as.
	ClientID string `toml:"client_id"`
	// ClientAuth is AuthPrivateKeyJWT (default) or AuthClientSecret.
	ClientAuth string `toml:"client_auth"`
	// SigningKeyFile / SigningKeyEnv hold our EC P-256 private key (PEM
	// PKCS#8 or SEC 1, or a private JWK) for private_key_jwt: one of them.
	SigningKeyFile string `toml:"signing_key_file"`
	SigningKeyEnv  string `toml:"signing_key_env"`
	// ClientSecretEnv names the variable holding the client secret
	// (client_auth = "client_secret").
	ClientSecretEnv string `toml:"client_secret_env"`
	// FAPI2 selects the FAPI 2.0 profile: pushed authorization requests and
	// DPoP-bound tokens.
	FAPI2 bool `toml:"fapi2"`
	// EncryptionKeyFile / EncryptionKeyEnv hold our private key for
	// encrypted ID tokens (EC for ECDH-ES, or RSA for RSA-OAEP-256). When
	// one is set, an unencrypted ID token is refused.
	EncryptionKeyFile string `toml:"encryption_key_file"`
	EncryptionKeyEnv  string `toml:"encryption_key_env"`
	// Claim names (kind oidc): where the national id number, the name and
	// the nationality are. Empty: not read (name defaults to "name").
	NationalIDClaim  string `toml:"national_id_claim"`
	NameClaim        string `toml:"name_claim"`
	NationalityClaim string `toml:"nationality_claim"`
	// KeepNationalID keeps the number itself besides its keyed hash, only
	// when the embassy needs it.
	KeepNationalID bool `toml:"keep_national_id"`
	// Scopes requested besides "openid" (Singpass: none).
	Scopes []string `toml:"scopes"`
}

// Encrypted says whether ID tokens from this provider must be encrypted.
func (p ProviderSettings) Encrypted() bool {
	return p.EncryptionKeyFile != "" || p.EncryptionKeyEnv != ""
}

// Name returns the display name in lang, or in English.
func (p ProviderSettings) Name(lang string) string {
	if n := p.DisplayName[lang]; n != "" {
		return n
	}
	return p.DisplayName["en"]
}

// Offered lists the providers offered to citizens of nationality, in
// configuration order: the chat shows "verify my identity" only when it
// is not empty.
func (s Settings) Offered(nationality string) []ProviderSettings {
	var out []ProviderSettings
	for _, p := range s.Providers {
		if slices.Contains(p.Nationalities, nationality) {
			out = append(out, p)
		}
	}
	return out
}

// Provider returns the provider with this id.
func (s Settings) Provider(id string) (ProviderSettings, bool) {
	for _, p := range s.Providers {
		if p.ID == id {
			return p, true
		}
	}
	return ProviderSettings{}, false
}

var (
	providerID  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	envVarName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	countryCode = regexp.MustCompile(`^[A-Z]{2}$`)
	claimName   = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)
	scopeToken  = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)
)

// Validate checks the table without reading keys or the network; each
// error is an *errs.Error whose Key is relative to [identity]
// ("providers[0].client_id"). An empty table (no providers) is valid:
// the feature is off.
func (s Settings) Validate() error {
	bad := func(code errs.Code, key, format string, args ...any) error {
		return &errs.Error{Code: code, Key: key, Reason: fmt.Sprintf(format, args...)}
	}
	if len(s.Providers) == 0 {
		return nil
	}
	u, err := url.Parse(s.PublicBaseURL)
	switch {
	case s.PublicBaseURL == "":
		return bad(errs.EMISSING, "public_base_url", "missing: the https address citizens' browsers use to reach this service")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		return bad(errs.EINVALID, "public_base_url", "%q is not an absolute http(s) URL without query", s.PublicBaseURL)
	}
	if s.JWKSPath != "" && (!strings.HasPrefix(s.JWKSPath, "/") || strings.HasPrefix(s.JWKSPath, "/id/") ||
		strings.ContainsAny(s.JWKSPath, "?#{} ")) {
		return bad(errs.EINVALID, "jwks_path", "%q must be a path like \"/.well-known/jwks.json\" (not under /id/)", s.JWKSPath)
	}
	switch {
	case s.NationalIDHMACEnv == "":
		return bad(errs.EMISSING, "national_id_hmac_env", "missing: name the environment variable holding the key of national id hashes")
	case !envVarName.MatchString(s.NationalIDHMACEnv):
		return bad(errs.EINVALID, "national_id_hmac_env", "%q is not an environment variable name", s.NationalIDHMACEnv)
	}
	ids := map[string]bool{}
	for i, p := range s.Providers {
		if err := p.validate(fmt.Sprintf("providers[%d]", i)); err != nil {
			return err
		}
		if ids[p.ID] {
			return bad(errs.ECONFLICT, fmt.Sprintf("providers[%d].id", i), "%q is used by two providers", p.ID)
		}
		ids[p.ID] = true
		if p.keyNeeded() && s.JWKSPath == "" {
			return bad(errs.EMISSING, "jwks_path", "missing: provider %q needs our public keys served (for example \"/.well-known/jwks.json\")", p.ID)
		}
	}
	return nil
}

// keyNeeded says whether the provider fetches our JWKS.
func (p ProviderSettings) keyNeeded() bool {
	return p.ClientAuth != AuthClientSecret || p.Encrypted()
}

func (p ProviderSettings) validate(key string) error {
	bad := func(code errs.Code, k, format string, args ...any) error {
		return &errs.Error{Code: code, Key: key + "." + k, Reason: fmt.Sprintf(format, args...)}
	}
	if !providerID.MatchString(p.ID) {
		return bad(errs.EINVALID, "id", "%q must be lower-case letters, digits and dashes", p.ID)
	}
	if p.Kind != KindSingpass && p.Kind != KindOIDC {
		return bad(errs.EINVALID, "kind", "%q is not %q or %q", p.Kind, KindSingpass, KindOIDC)
	}
	if strings.TrimSpace(p.DisplayName["en"]) == "" {
		return bad(errs.EMISSING, "display_name.en", "missing: the English button text (other languages fall back to it)")
	}
	for lang, n := range p.DisplayName {
		if strings.TrimSpace(n) == "" {
			return bad(errs.EMISSING, "display_name."+lang, "empty name")
		}
	}
	if len(p.Nationalities) == 0 {
		return bad(errs.EMISSING, "nationalities", "list the passport countries offered this provider, like [\"SG\"]")
	}
	for _, n := range p.Nationalities {
		if !countryCode.MatchString(n) {
			return bad(errs.EINVALID, "nationalities", "%q is not an ISO 3166 alpha-2 code like \"SG\"", n)
		}
	}
	for _, k := range []struct{ key, v string }{{"issuer", p.Issuer}, {"discovery_url", p.DiscoveryURL}} {
		if k.v == "" && k.key == "discovery_url" {
			continue
		}
		u, err := url.Parse(k.v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			code := errs.EINVALID
			if k.v == "" {
				code = errs.EMISSING
			}
			return bad(code, k.key, "%q is not an absolute http(s) URL", k.v)
		}
	}
	if p.ClientID == "" {
		return bad(errs.EMISSING, "client_id", "missing: the client id the provider registered this service as")
	}
	switch p.ClientAuth {
	case "", AuthPrivateKeyJWT:
		if err := oneOf(key, "signing_key", p.SigningKeyFile, p.SigningKeyEnv); err != nil {
			return err
		}
		if p.ClientSecretEnv != "" {
			return bad(errs.ECONFLICT, "client_secret_env", "set only with client_auth = \"client_secret\"")
		}
	case AuthClientSecret:
		switch {
		case p.Kind == KindSingpass:
			return bad(errs.EINVALID, "client_auth", "Singpass accepts only \"private_key_jwt\"")
		case p.FAPI2:
			return bad(errs.EINVALID, "client_auth", "FAPI 2.0 (fapi2 = true) requires \"private_key_jwt\"")
		case p.ClientSecretEnv == "":
			return bad(errs.EMISSING, "client_secret_env", "missing: name the environment variable holding the client secret")
		case !envVarName.MatchString(p.ClientSecretEnv):
			return bad(errs.EINVALID, "client_secret_env", "%q is not an environment variable name", p.ClientSecretEnv)
		case p.SigningKeyFile != "" || p.SigningKeyEnv != "":
			return bad(errs.ECONFLICT, "signing_key_file", "set only with client_auth = \"private_key_jwt\"")
		}
	default:
		return bad(errs.EINVALID, "client_auth", "%q is not %q or %q", p.ClientAuth, AuthPrivateKeyJWT, AuthClientSecret)
	}
	if p.Encrypted() || p.Kind == KindSingpass {
		if err := oneOf(key, "encryption_key", p.EncryptionKeyFile, p.EncryptionKeyEnv); err != nil {
			if p.Kind == KindSingpass {
				err.Reason += " (Singpass always encrypts ID tokens)"
			}
			return err
		}
	}
	for _, c := range []struct{ key, v string }{{"national_id_claim", p.NationalIDClaim},
		{"name_claim", p.NameClaim}, {"nationality_claim", p.NationalityClaim}} {
		if c.v != "" && !claimName.MatchString(c.v) {
			return bad(errs.EINVALID, c.key, "%q is not a claim name", c.v)
		}
		if c.v != "" && p.Kind == KindSingpass && c.key == "national_id_claim" {
			return bad(errs.ECONFLICT, c.key, "Singpass gives the NRIC/UINFIN in `sub`; leave it unset")
		}
	}
	if p.KeepNationalID && p.Kind == KindOIDC && p.NationalIDClaim == "" {
		return bad(errs.EMISSING, "national_id_claim", "keep_national_id is set but no claim holds the number")
	}
	for _, s := range p.Scopes {
		if !scopeToken.MatchString(s) {
			return bad(errs.EINVALID, "scopes", "%q is not a scope", s)
		}
	}
	return nil
}

// oneOf checks that exactly one of name_file and name_env is set, and that
// an env name is one.
func oneOf(key, name, file, env string) *errs.Error {
	switch {
	case file == "" && env == "":
		return &errs.Error{Code: errs.EMISSING, Key: key + "." + name + "_file",
			Reason: fmt.Sprintf("missing: set %s_file (a path) or %s_env (an environment variable)", name, name)}
	case file != "" && env != "":
		return &errs.Error{Code: errs.ECONFLICT, Key: key + "." + name + "_env",
			Reason: fmt.Sprintf("set %s_file or %s_env, not both", name, name)}
	case env != "" && !envVarName.MatchString(env):
		return &errs.Error{Code: errs.EINVALID, Key: key + "." + name + "_env",
			Reason: fmt.Sprintf("%q is not an environment variable name", env)}
	}
	return nil
}
