package identity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Algorithms accepted. Anything else (and "none", which go-jose never
// accepts) is refused before a key is looked at.
var (
	signatureAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512,
		jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}
	keyAlgs = []jose.KeyAlgorithm{jose.ECDH_ES_A256KW, jose.ECDH_ES_A192KW, jose.ECDH_ES_A128KW,
		jose.ECDH_ES, jose.RSA_OAEP_256}
	contentEncs = []jose.ContentEncryption{jose.A256CBC_HS512, jose.A192CBC_HS384, jose.A128CBC_HS256,
		jose.A256GCM, jose.A192GCM, jose.A128GCM}
)

// Refusals of an ID token, each its own error class in the log.
var (
	errUnencrypted  = errors.New("identity: ID token not encrypted, but this provider must encrypt it")
	errUnknownKey   = errors.New("identity: ID token signed by a key the provider does not publish")
	errBadSignature = errors.New("identity: ID token signature does not verify")
	errNonce        = errors.New("identity: ID token nonce is not this flow's")
	errDPoPUnbound  = errors.New("identity: token response not DPoP-bound although a DPoP proof was sent")
)

// idClaims are the registered claims we check.
type idClaims struct {
	jwt.Claims
	Nonce string `json:"nonce"`
	AZP   string `json:"azp"`
	ACR   string `json:"acr"`
}

// openIDToken turns the raw ID token into its verified claims: decrypt
// (JWE, with our key) when it is encrypted, refuse it unencrypted when the
// provider must encrypt, verify the signature against the provider's
// published key with the header's kid, then iss, aud, azp, exp, iat (with
// ClockSkew) and the flow's nonce.
func (s *Service) openIDToken(ctx context.Context, p *provider, m metadata, raw, nonce string) (idClaims, map[string]any, error) {
	var c idClaims
	signed := raw
	switch strings.Count(raw, ".") {
	case 4:
		if len(p.encKeys) == 0 {
			return c, nil, fmt.Errorf("%w: encrypted ID token but no encryption key configured", errDecrypt)
		}
		jwe, err := jose.ParseEncryptedCompact(raw, keyAlgs, contentEncs)
		if err != nil {
			return c, nil, fmt.Errorf("%w: %v", errDecrypt, err)
		}
		key := p.encKeys[0]
		if kid := jwe.Header.KeyID; kid != "" {
			found := false
			for _, k := range p.encKeys {
				if k.KeyID == kid {
					key, found = k, true
				}
			}
			if !found {
				return c, nil, fmt.Errorf("%w: encrypted to a key that is not ours", errDecrypt)
			}
		}
		inner, err := jwe.Decrypt(key)
		if err != nil {
			return c, nil, fmt.Errorf("%w: %v", errDecrypt, err)
		}
		signed = string(inner)
	case 2:
		if p.Encrypted() {
			return c, nil, errUnencrypted
		}
	default:
		return c, nil, fmt.Errorf("%w: not a compact JWS or JWE", errBadSignature)
	}
	jws, err := jose.ParseSignedCompact(signed, signatureAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return c, nil, fmt.Errorf("%w: %v", errBadSignature, err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := s.providerKeys(ctx, p, m.JWKSURI, kid)
	if err != nil {
		return c, nil, fmt.Errorf("%w: fetching the provider's keys: %v", errUnknownKey, err)
	}
	if len(keys) == 0 || (kid == "" && len(keys) != 1) {
		return c, nil, errUnknownKey
	}
	var payload []byte
	for _, k := range keys {
		if b, err := jws.Verify(k); err == nil {
			payload = b
			break
		}
	}
	if payload == nil {
		return c, nil, errBadSignature
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, nil, fmt.Errorf("%w: %v", errClaims, err)
	}
	var all map[string]any
	if err := json.Unmarshal(payload, &all); err != nil {
		return c, nil, fmt.Errorf("%w: %v", errClaims, err)
	}
	switch {
	case c.Expiry == nil || c.IssuedAt == nil:
		return c, nil, fmt.Errorf("%w: exp or iat missing", errClaims)
	case c.Subject == "":
		return c, nil, fmt.Errorf("%w: sub missing", errClaims)
	case len(c.Audience) > 1 && c.AZP != p.ClientID:
		return c, nil, fmt.Errorf("%w: several audiences and azp is not our client id", errClaims)
	case c.AZP != "" && c.AZP != p.ClientID:
		return c, nil, fmt.Errorf("%w: azp is not our client id", errClaims)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: p.Issuer, AnyAudience: jwt.Audience{p.ClientID}, Time: s.now()}, ClockSkew); err != nil {
		return c, nil, fmt.Errorf("%w: %v", errClaims, err)
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1 {
		return c, nil, errNonce
	}
	return c, all, nil
}

var (
	errDecrypt = errors.New("identity: ID token cannot be decrypted")
	errClaims  = errors.New("identity: ID token claims refused")
	nricFormat = regexp.MustCompile(`^[A-Z][0-9]{7}[A-Z]$`) // S/T/F/G/M NRIC or FIN, Y for foreign accounts
	alpha2     = regexp.MustCompile(`^[A-Za-z]{2}$`)
)

// singpassSubject reads Singpass's `sub` ("s=S1234567A,u=<uuid>", with
// more attributes for foreigners: "s=…,fid=…,coi=DE,u=…"): the NRIC/UINFIN
// from s and the stable subject from u. The whole sub is never kept, as it
// contains the number in clear.
func singpassSubject(sub string) (nationalID, subject string, err error) {
	for part := range strings.SplitSeq(sub, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "s":
			nationalID = v
		case "u":
			subject = v
		}
	}
	if !nricFormat.MatchString(nationalID) || subject == "" {
		return "", "", fmt.Errorf("%w: sub is not Singpass's s=<NRIC/UINFIN>,u=<uuid>", errClaims)
	}
	return nationalID, subject, nil
}

// claimString reads a string claim by name (empty when absent or not a
// string).
func claimString(all map[string]any, name string) string {
	if name == "" {
		return ""
	}
	v, _ := all[name].(string)
	return strings.TrimSpace(v)
}

// NormalizeNationalID is the form a national id number is hashed in:
// upper case, without spaces and dashes ("900101-14-5678" and
// "900101145678" are one number).
func NormalizeNationalID(id string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.ToUpper(strings.TrimSpace(id)))
}

// HashNationalID is the keyed hash kept instead of a national id number:
// hex HMAC-SHA256 of its normalised form under key. Equal numbers give
// equal hashes, so an embassy can match a number it is given, but the
// data file alone does not reveal them.
func HashNationalID(key []byte, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(NormalizeNationalID(id)))
	return hex.EncodeToString(m.Sum(nil))
}

// verified builds what is recorded from the checked claims.
func (s *Service) verified(p *provider, c idClaims, all map[string]any) (Verified, error) {
	v := Verified{Provider: p.ID, Subject: c.Subject, Assurance: c.ACR, VerifiedAt: s.now().UTC()}
	var number string
	if p.Kind == KindSingpass {
		n, sub, err := singpassSubject(c.Subject)
		if err != nil {
			return Verified{}, err
		}
		number, v.Subject = n, sub
	} else {
		number = claimString(all, p.NationalIDClaim)
	}
	name := p.NameClaim
	if name == "" && p.Kind == KindOIDC {
		name = "name"
	}
	v.Name = claimString(all, name)
	if n := claimString(all, p.NationalityClaim); alpha2.MatchString(n) {
		v.Nationality = strings.ToUpper(n)
	}
	if number != "" {
		v.NationalIDHash = HashNationalID(s.hmacKey, number)
		if p.KeepNationalID {
			v.NationalID = NormalizeNationalID(number)
		}
	}
	return v, nil
}
