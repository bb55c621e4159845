package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/checkinbot/checkinbot/errs"
	jose "github.com/go-jose/go-jose/v4"
)

// Our keys: one signing key per provider that uses private_key_jwt (ES256
// on P-256, what Singpass and FAPI 2.0 accept) and one decryption key per
// provider that encrypts ID tokens. They come from files or environment
// variables named in the configuration, never from the configuration
// itself; the public halves are served as our JWKS.

// loadKey reads a private key from file or the environment variable env:
// PEM (PKCS#8, SEC 1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY") or a
// private JWK. key names the configuration key in errors; the error never
// contains key material.
func loadKey(key, file, env string, getenv func(string) string) (crypto.Signer, error) {
	var raw []byte
	var where string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, &errs.Error{Code: errs.ENOTFOUND, Key: key + "_file", Reason: fmt.Sprintf("cannot read %s: %v", file, err), Err: err}
		}
		raw, where = b, key+"_file"
	} else {
		v := getenv(env)
		if v == "" {
			return nil, &errs.Error{Code: errs.EMISSING, Key: key + "_env", Reason: fmt.Sprintf("environment variable %s is not set", env)}
		}
		raw, where = []byte(v), key+"_env"
	}
	k, err := parsePrivateKey(raw)
	if err != nil {
		return nil, &errs.Error{Code: errs.EINVALID, Key: where, Reason: err.Error()}
	}
	return k, nil
}

// parsePrivateKey accepts PEM or a private JWK; the error says which
// forms are accepted and never quotes the input.
func parsePrivateKey(raw []byte) (crypto.Signer, error) {
	const want = "not a private key (want PEM \"PRIVATE KEY\", \"EC PRIVATE KEY\" or \"RSA PRIVATE KEY\", or a private JWK)"
	if s := strings.TrimSpace(string(raw)); strings.HasPrefix(s, "{") {
		var j jose.JSONWebKey
		if err := json.Unmarshal([]byte(s), &j); err != nil || j.IsPublic() {
			return nil, fmt.Errorf("%s", want)
		}
		if sg, ok := j.Key.(crypto.Signer); ok {
			return sg, nil
		}
		return nil, fmt.Errorf("%s", want)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, fmt.Errorf("%s", want)
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q: %s", b.Type, want)
	}
	if err != nil {
		return nil, fmt.Errorf("%s", want)
	}
	sg, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s", want)
	}
	return sg, nil
}

// signingJWK makes our private signing key a JWK (kid = RFC 7638
// thumbprint); only EC P-256 is accepted (ES256).
func signingJWK(key string, k crypto.Signer) (jose.JSONWebKey, error) {
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return jose.JSONWebKey{}, &errs.Error{Code: errs.EINVALID, Key: key,
			Reason: "the signing key must be an EC P-256 key (ES256): generate one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`"}
	}
	return withKid(jose.JSONWebKey{Key: ec, Algorithm: string(jose.ES256), Use: "sig"})
}

// encryptionJWK makes our private decryption key a JWK: EC keys for
// ECDH-ES+A256KW (Singpass's choice), RSA (2048 bits or more) for
// RSA-OAEP-256.
func encryptionJWK(key string, k crypto.Signer) (jose.JSONWebKey, error) {
	switch v := k.(type) {
	case *ecdsa.PrivateKey:
		return withKid(jose.JSONWebKey{Key: v, Algorithm: string(jose.ECDH_ES_A256KW), Use: "enc"})
	case *rsa.PrivateKey:
		if v.N.BitLen() >= 2048 {
			return withKid(jose.JSONWebKey{Key: v, Algorithm: string(jose.RSA_OAEP_256), Use: "enc"})
		}
	}
	return jose.JSONWebKey{}, &errs.Error{Code: errs.EINVALID, Key: key,
		Reason: "the encryption key must be an EC key (P-256, P-384, P-521) or RSA of at least 2048 bits"}
}

func withKid(j jose.JSONWebKey) (jose.JSONWebKey, error) {
	pub := j.Public()
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return j, &errs.Error{Code: errs.EINVALID, Reason: "cannot compute the key's thumbprint", Err: err}
	}
	j.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return j, nil
}
