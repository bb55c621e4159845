package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/checkinbot/checkinbot/errs"
	jose "github.com/go-jose/go-jose/v4"
)

// Unit tests that need no provider: key loading and its errors, our JWKS,
// the pages and their headers, Singpass's sub, national id hashing.

func pemFile(t *testing.T, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func testSettings(p ProviderSettings) Settings {
	return Settings{PublicBaseURL: "https://checkin.example.org", JWKSPath: "/jwks", NationalIDHMACEnv: "HMAC",
		Providers: []ProviderSettings{p}}
}

func baseProvider() ProviderSettings {
	return ProviderSettings{ID: "sp", Kind: KindSingpass, DisplayName: map[string]string{"en": "Singpass"},
		Nationalities: []string{"SG"}, Issuer: "https://sp.example", ClientID: "c"}
}

// TestNewKeyErrors: every way a key or secret can be unusable is refused
// at start, naming the configuration key, never quoting the key material.
func TestNewKeyErrors(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalECPrivateKey(p384)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	goodPEM := pemFile(t, "PRIVATE KEY", ecDER)
	secretText := "-----BEGIN PRIVATE KEY-----\nTm90QUtleUJ1dFNlY3JldA==\n-----END PRIVATE KEY-----\n"
	env := map[string]string{"HMAC": strings.Repeat("k", 32), "GARBAGE": secretText, "SECRET": "s"}
	for _, c := range []struct {
		name string
		edit func(p *ProviderSettings, e map[string]string)
		key  string
		code errs.Code
	}{
		{"OK", func(p *ProviderSettings, _ map[string]string) {}, "", ""},
		{"ErrSigningFileMissing", func(p *ProviderSettings, _ map[string]string) { p.SigningKeyFile = "/nonexistent/sig.pem" },
			"identity.providers[0].signing_key_file", errs.ENOTFOUND},
		{"ErrSigningEnvUnset", func(p *ProviderSettings, _ map[string]string) { p.SigningKeyFile, p.SigningKeyEnv = "", "UNSET" },
			"identity.providers[0].signing_key_env", errs.EMISSING},
		{"ErrSigningEnvNotAKey", func(p *ProviderSettings, _ map[string]string) { p.SigningKeyFile, p.SigningKeyEnv = "", "GARBAGE" },
			"identity.providers[0].signing_key_env", errs.EINVALID},
		{"ErrSigningKeyP384", func(p *ProviderSettings, _ map[string]string) {
			p.SigningKeyFile = pemFile(t, "EC PRIVATE KEY", p384DER)
		},
			"identity.providers[0].signing_key_file", errs.EINVALID},
		{"ErrEncryptionRSATooSmall", func(p *ProviderSettings, _ map[string]string) {
			p.EncryptionKeyFile = pemFile(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small))
		}, "identity.providers[0].encryption_key_file", errs.EINVALID},
		{"ErrPublicKeyPEM", func(p *ProviderSettings, _ map[string]string) {
			der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
			p.EncryptionKeyFile = pemFile(t, "PUBLIC KEY", der)
		}, "identity.providers[0].encryption_key_file", errs.EINVALID},
		{"ErrHMACShort", func(_ *ProviderSettings, e map[string]string) { e["HMAC"] = "short" },
			"identity.national_id_hmac_env", errs.EINVALID},
		{"ErrSecretUnset", func(p *ProviderSettings, _ map[string]string) {
			p.Kind, p.ClientAuth, p.SigningKeyFile, p.ClientSecretEnv = KindOIDC, AuthClientSecret, "", "UNSET"
		}, "identity.providers[0].client_secret_env", errs.EMISSING},
		{"ErrInvalidSettings", func(p *ProviderSettings, _ map[string]string) { p.Kind = "saml" },
			"identity.providers[0].kind", errs.EINVALID},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := baseProvider()
			p.SigningKeyFile, p.EncryptionKeyFile = goodPEM, goodPEM
			e := map[string]string{}
			for k, v := range env {
				e[k] = v
			}
			c.edit(&p, e)
			_, err := New(Options{Settings: testSettings(p), Links: newFakeStore(), Recorder: newFakeStore(),
				Getenv: func(k string) string { return e[k] }})
			if c.key == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ee *errs.Error
			if !errors.As(err, &ee) || ee.Key != c.key || ee.Code != c.code || ee.Reason == "" {
				t.Fatalf("got %v (%#v), want key %q code %q", err, err, c.key, c.code)
			}
			if strings.Contains(err.Error(), "Tm90QUtleUJ1dFNlY3JldA") || strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("the error quotes key material: %v", err)
			}
		})
	}
}

// TestJWKS: our JWKS has the public half of every key, each with a
// thumbprint kid, use and alg, and no private part; headers allow
// providers to cache it.
func TestJWKS(t *testing.T) {
	sig, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	enc, _ := rsa.GenerateKey(rand.Reader, 2048)
	sigDER, _ := x509.MarshalPKCS8PrivateKey(sig)
	encJWK, _ := json.Marshal(jose.JSONWebKey{Key: enc})
	p := baseProvider()
	p.SigningKeyFile, p.EncryptionKeyEnv = pemFile(t, "PRIVATE KEY", sigDER), "ENC"
	q := p
	q.ID, q.Kind = "again", KindOIDC // same keys: served once
	s := testSettings(p)
	s.Providers = append(s.Providers, q)
	svc, err := New(Options{Settings: s, Links: newFakeStore(), Recorder: newFakeStore(),
		Getenv: func(k string) string {
			return map[string]string{"HMAC": strings.Repeat("k", 32), "ENC": string(encJWK)}[k]
		}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/jwks", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("status %d, type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var raw struct{ Keys []map[string]any }
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Keys) != 2 {
		t.Fatalf("%d keys, want 2 (signing, encryption; duplicates once): %s", len(raw.Keys), rec.Body)
	}
	want := map[string]string{"sig": "ES256", "enc": "RSA-OAEP-256"}
	for _, k := range raw.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Errorf("JWKS reveals the private %q of %v", private, k["kid"])
			}
		}
		if k["alg"] != want[k["use"].(string)] || k["kid"] == "" {
			t.Errorf("key %v", k)
		}
	}
}

// TestPages: both pages carry the security headers; the language given is
// used when it is a tag, English otherwise; no script can run (CSP), and
// unknown routes under /id/ get the failure page.
func TestPages(t *testing.T) {
	svc, err := New(Options{Settings: Settings{}})
	if err != nil {
		t.Fatal(err)
	}
	svc.pages = PagesFunc(func(kind PageKind, lang string) PageText {
		return PageText{Title: "t", Body: map[PageKind]string{PageDone: "done-", PageFailed: "failed-"}[kind] + lang + "<script>"}
	})
	for _, c := range []struct {
		kind     PageKind
		lang     string
		status   int
		wantLang string
	}{
		{PageDone, "ms", 200, "ms"}, {PageFailed, "zh-Hant", 400, "zh-Hant"}, {PageFailed, "", 400, "en"},
		{PageDone, `"><script>`, 200, "en"},
	} {
		rec := httptest.NewRecorder()
		status := map[PageKind]int{PageDone: 200, PageFailed: 400}[c.kind]
		svc.page(rec, status, c.kind, c.lang)
		body, _ := io.ReadAll(rec.Body)
		h := rec.Header()
		if rec.Code != c.status || h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" ||
			!strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'none'; style-src 'sha256-") {
			t.Errorf("%v %q: status %d headers %v", c.kind, c.lang, rec.Code, h)
		}
		if !strings.Contains(string(body), `lang="`+c.wantLang+`"`) || strings.Contains(string(body), "<script>") {
			t.Errorf("%v %q: body %s", c.kind, c.lang, body)
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), styleHash) {
			t.Errorf("CSP does not allow the page's style")
		}
	}
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/id/other", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "failed-") {
		t.Errorf("unknown route: %d %s", rec.Code, rec.Body)
	}
}

// TestSingpassSubject: the NRIC/UINFIN from s=, the stable subject from
// u=, for citizens and foreigners; anything else refused.
func TestSingpassSubject(t *testing.T) {
	for _, c := range []struct{ sub, id, subject string }{
		{"s=S8979373D,u=a9865837-7bd7-46ac-bef4-42a76a946424", "S8979373D", "a9865837-7bd7-46ac-bef4-42a76a946424"},
		{"s=Y4581892I,fid=G730Z-H5P96,coi=DE,u=acf8edda", "Y4581892I", "acf8edda"}, // a foreign (SFA) account
		{"s=F1612359P,fid=x,coi=MY,u=08df8d35", "F1612359P", "08df8d35"},
		{"u=only-uuid", "", ""},
		{"s=S8979373D", "", ""},
		{"s=not-an-nric,u=x", "", ""},
		{"", "", ""},
	} {
		id, subject, err := singpassSubject(c.sub)
		if (err == nil) != (c.id != "") || id != c.id || subject != c.subject {
			t.Errorf("%q: got %q %q %v, want %q %q", c.sub, id, subject, err, c.id, c.subject)
		}
	}
}

// TestHashNationalID: one number in its usual spellings gives one hash;
// other numbers and other keys give others.
func TestHashNationalID(t *testing.T) {
	k := []byte(strings.Repeat("k", 32))
	same := []string{"900101-14-5678", "900101145678", " 900101 14 5678 "}
	for _, s := range same {
		if HashNationalID(k, s) != HashNationalID(k, same[0]) {
			t.Errorf("%q hashes differently from %q", s, same[0])
		}
	}
	if HashNationalID(k, "s8979373d") != HashNationalID(k, "S8979373D") {
		t.Error("case changes the hash")
	}
	if HashNationalID(k, "900101145679") == HashNationalID(k, same[0]) ||
		HashNationalID([]byte(strings.Repeat("j", 32)), same[0]) == HashNationalID(k, same[0]) {
		t.Error("different number or key, same hash")
	}
	if strings.Contains(HashNationalID(k, same[0]), "900101") {
		t.Error("the hash contains the number")
	}
}
