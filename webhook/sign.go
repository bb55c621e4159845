// Package webhook delivers escalation events to embassies and their
// partners as Standard Webhooks (v1), from the store's durable outbox, and
// provides the reference receiver (Sink).
//
// Signing and verification use only the standard library: HMAC-SHA256 over
// "id.timestamp.body", base64, with every active secret during a rotation.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of Standard Webhooks v1.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// secretPrefix marks a Standard Webhooks secret.
const secretPrefix = "whsec_"

// ParseSecret decodes "whsec_<base64>". The key must be 24 to 64 bytes.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), secretPrefix)
	if !ok {
		return nil, errors.New("a webhook secret starts with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New("the part after whsec_ is not valid base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("the key is %d bytes; use 24 to 64 random bytes", len(key))
	}
	return key, nil
}

// ParseSecrets reads one or more space-separated secrets (a rotation).
func ParseSecrets(s string) ([][]byte, error) {
	var keys [][]byte
	for _, f := range strings.Fields(s) {
		k, err := ParseSecret(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no secret given")
	}
	return keys, nil
}

// FormatSecret encodes a key as "whsec_<base64>".
func FormatSecret(key []byte) string {
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// signature is "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>".
func signature(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Sign sets the three Standard Webhooks headers on h: the event id, the
// timestamp now, and one signature per secret, space-separated.
func Sign(h http.Header, keys [][]byte, id string, now time.Time, body []byte) {
	ts := now.Unix()
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = signature(k, id, ts, body)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
}

// Verification errors.
var (
	ErrMissingHeaders = errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	ErrBadTimestamp   = errors.New("webhook-timestamp is not a Unix time")
	ErrStale          = errors.New("webhook-timestamp is too far from now")
	ErrBadSignature   = errors.New("no valid signature")
)

// Verify checks a delivery: headers present, timestamp within tolerance of
// now, and at least one v1 signature made with one of keys.
func Verify(h http.Header, body []byte, keys [][]byte, now time.Time, tolerance time.Duration) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	for _, k := range keys {
		want := signature(k, id, ts, body)
		for _, got := range strings.Fields(sigs) {
			if hmac.Equal([]byte(got), []byte(want)) {
				return nil
			}
		}
	}
	return ErrBadSignature
}
