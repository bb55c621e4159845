package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/checkinbot/checkinbot/errs"
)

// identityBase is a valid file with one Singpass and one plain OIDC
// provider; each case below breaks one key.
const identityBase = base + `[[country]]
code = "SG"
name = "Singapore"
timezone = "Asia/Singapore"
[[embassy]]
id = "my-kh"
name = "Embassy"
nationalities = ["MY", "SG"]
countries = ["KH"]
[identity]
public_base_url = "https://checkin.example.org"
jwks_path = "/.well-known/jwks.json"
national_id_hmac_env = "CHECKIN_ID_HMAC"
[[identity.providers]]
id = "singpass"
kind = "singpass"
display_name = { en = "Singpass" }
nationalities = ["SG"]
issuer = "https://id.singpass.gov.sg"
client_id = "abc"
signing_key_file = "/etc/checkinbot/sig.pem"
encryption_key_env = "SINGPASS_ENC_KEY"
fapi2 = true
[[identity.providers]]
id = "mydigital"
kind = "oidc"
display_name = { en = "MyDigital ID", ms = "MyDigital ID" }
nationalities = ["MY"]
issuer = "https://sso.digital-id.my/realms/agency"
client_id = "checkinbot"
client_auth = "client_secret"
client_secret_env = "MYDIGITAL_SECRET"
national_id_claim = "nric"
keep_national_id = true
scopes = ["profile"]
`

func TestIdentityValidate(t *testing.T) {
	// replace swaps the n-th (1-based) occurrence of old.
	replace := func(old, new string, n int) string {
		s := identityBase
		i := -1
		for range n {
			j := strings.Index(s[i+1:], old)
			if j < 0 {
				t.Fatalf("%q occurs fewer than %d times", old, n)
			}
			i += 1 + j
		}
		return s[:i] + new + s[i+len(old):]
	}
	for _, c := range []struct {
		name, text, key string
		code            errs.Code
	}{
		{"OK", identityBase, "", ""},
		{"OKNoProviders", base + "[[embassy]]\nid = \"e\"\nname = \"E\"\nnationalities = [\"MY\"]\ncountries = [\"KH\"]\n", "", ""},
		{"ErrNoBaseURL", replace(`public_base_url = "https://checkin.example.org"`, "", 1), "identity.public_base_url", errs.EMISSING},
		{"ErrBadBaseURL", replace(`"https://checkin.example.org"`, `"checkin.example.org"`, 1), "identity.public_base_url", errs.EINVALID},
		{"ErrJWKSPathUnderID", replace(`"/.well-known/jwks.json"`, `"/id/jwks"`, 1), "identity.jwks_path", errs.EINVALID},
		{"ErrNoJWKSPath", replace(`jwks_path = "/.well-known/jwks.json"`, "", 1), "identity.jwks_path", errs.EMISSING},
		{"ErrNoHMACEnv", replace(`national_id_hmac_env = "CHECKIN_ID_HMAC"`, "", 1), "identity.national_id_hmac_env", errs.EMISSING},
		{"ErrBadHMACEnv", replace(`"CHECKIN_ID_HMAC"`, `"CHECKIN ID"`, 1), "identity.national_id_hmac_env", errs.EINVALID},
		{"ErrBadID", replace(`id = "singpass"`, `id = "Sing Pass"`, 1), "identity.providers[0].id", errs.EINVALID},
		{"ErrDuplicateID", replace(`id = "mydigital"`, `id = "singpass"`, 1), "identity.providers[1].id", errs.ECONFLICT},
		{"ErrBadKind", replace(`kind = "oidc"`, `kind = "saml"`, 1), "identity.providers[1].kind", errs.EINVALID},
		{"ErrNoEnglishName", replace(`{ en = "Singpass" }`, `{ ms = "Singpass" }`, 1), "identity.providers[0].display_name.en", errs.EMISSING},
		{"ErrEmptyName", replace(`ms = "MyDigital ID"`, `ms = " "`, 1), "identity.providers[1].display_name.ms", errs.EMISSING},
		{"ErrNoNationalities", replace(`nationalities = ["SG"]`, `nationalities = []`, 1), "identity.providers[0].nationalities", errs.EMISSING},
		{"ErrBadNationality", replace(`nationalities = ["SG"]`, `nationalities = ["sg"]`, 1), "identity.providers[0].nationalities", errs.EINVALID},
		{"ErrNationalityNotServed", replace(`nationalities = ["MY", "SG"]`, `nationalities = ["MY"]`, 1), "identity.providers[0].nationalities", errs.ENOTFOUND},
		{"ErrNoIssuer", replace(`issuer = "https://id.singpass.gov.sg"`, "", 1), "identity.providers[0].issuer", errs.EMISSING},
		{"ErrBadDiscovery", replace(`client_id = "abc"`, "client_id = \"abc\"\ndiscovery_url = \"ftp://x\"", 1), "identity.providers[0].discovery_url", errs.EINVALID},
		{"ErrNoClientID", replace(`client_id = "abc"`, "", 1), "identity.providers[0].client_id", errs.EMISSING},
		{"ErrBadClientAuth", replace(`client_auth = "client_secret"`, `client_auth = "basic"`, 1), "identity.providers[1].client_auth", errs.EINVALID},
		{"ErrSingpassSecret", replace(`signing_key_file = "/etc/checkinbot/sig.pem"`, "client_auth = \"client_secret\"\nclient_secret_env = \"X\"", 1), "identity.providers[0].client_auth", errs.EINVALID},
		{"ErrNoSigningKey", replace(`signing_key_file = "/etc/checkinbot/sig.pem"`, "", 1), "identity.providers[0].signing_key_file", errs.EMISSING},
		{"ErrTwoSigningKeys", replace(`signing_key_file = "/etc/checkinbot/sig.pem"`, "signing_key_file = \"a\"\nsigning_key_env = \"B\"", 1), "identity.providers[0].signing_key_env", errs.ECONFLICT},
		{"ErrBadSigningKeyEnv", replace(`signing_key_file = "/etc/checkinbot/sig.pem"`, `signing_key_env = "1B"`, 1), "identity.providers[0].signing_key_env", errs.EINVALID},
		{"ErrSecretWithJWT", replace(`signing_key_file = "/etc/checkinbot/sig.pem"`, "signing_key_file = \"a\"\nclient_secret_env = \"S\"", 1), "identity.providers[0].client_secret_env", errs.ECONFLICT},
		{"ErrNoSecretEnv", replace(`client_secret_env = "MYDIGITAL_SECRET"`, "", 1), "identity.providers[1].client_secret_env", errs.EMISSING},
		{"ErrBadSecretEnv", replace(`"MYDIGITAL_SECRET"`, `"MY-SECRET"`, 1), "identity.providers[1].client_secret_env", errs.EINVALID},
		{"ErrSigningKeyWithSecret", replace(`client_secret_env = "MYDIGITAL_SECRET"`, "client_secret_env = \"S\"\nsigning_key_env = \"K\"", 1), "identity.providers[1].signing_key_file", errs.ECONFLICT},
		{"ErrFAPIWithSecret", replace(`client_secret_env = "MYDIGITAL_SECRET"`, "client_secret_env = \"S\"\nfapi2 = true", 1), "identity.providers[1].client_auth", errs.EINVALID},
		{"ErrSingpassUnencrypted", replace(`encryption_key_env = "SINGPASS_ENC_KEY"`, "", 1), "identity.providers[0].encryption_key_file", errs.EMISSING},
		{"ErrTwoEncryptionKeys", replace(`encryption_key_env = "SINGPASS_ENC_KEY"`, "encryption_key_env = \"E\"\nencryption_key_file = \"f\"", 1), "identity.providers[0].encryption_key_env", errs.ECONFLICT},
		{"ErrBadClaim", replace(`national_id_claim = "nric"`, `national_id_claim = "n ric"`, 1), "identity.providers[1].national_id_claim", errs.EINVALID},
		{"ErrSingpassClaim", replace(`fapi2 = true`, "fapi2 = true\nnational_id_claim = \"x\"", 1), "identity.providers[0].national_id_claim", errs.ECONFLICT},
		{"ErrKeepWithoutClaim", replace(`national_id_claim = "nric"`, "", 1), "identity.providers[1].national_id_claim", errs.EMISSING},
		{"ErrBadScope", replace(`scopes = ["profile"]`, `scopes = ["pro file"]`, 1), "identity.providers[1].scopes", errs.EINVALID},
		{"ErrUnknownKey", replace(`fapi2 = true`, "fapi2 = true\nfapi = true", 1), "identity.providers.fapi", errs.EUNKNOWNKEY},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("test.toml", c.text)
			if c.key == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.name == "OK" && (len(cfg.Identity.Providers) != 2 || !cfg.Identity.Providers[0].FAPI2 ||
					len(cfg.Identity.Offered("SG")) != 1 || len(cfg.Identity.Offered("KH")) != 0) {
					t.Errorf("parsed %+v", cfg.Identity)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			if ce.File != "test.toml" || ce.Key != c.key || ce.Code != c.code || ce.Reason == "" {
				t.Errorf("got file %q key %q code %q (%v); want key %q code %q", ce.File, ce.Key, ce.Code, err, c.key, c.code)
			}
		})
	}
}

// TestIdentityError: an identity.New error gets the file name, so it
// reads "file: key: reason".
func TestIdentityError(t *testing.T) {
	cfg, err := Parse("site.toml", identityBase)
	if err != nil {
		t.Fatal(err)
	}
	in := &errs.Error{Code: errs.ENOTFOUND, Key: "identity.providers[0].signing_key_file", Reason: "cannot read x"}
	out := cfg.IdentityError(in)
	if out.Error() != "site.toml: identity.providers[0].signing_key_file: cannot read x" || errs.ErrorCode(out) != errs.ENOTFOUND {
		t.Errorf("got %v", out)
	}
	if cfg.IdentityError(nil) != nil {
		t.Error("nil error became non-nil")
	}
}
