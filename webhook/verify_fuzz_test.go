package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzNow is the receiver's clock in FuzzVerify: whole seconds, so that
// the tolerance boundary is exact.
var fuzzNow = time.Unix(1772416800, 0)

// FuzzVerify checks the sink's verification (Verify, and Sink over real
// HTTP) two ways. Properties:
//
//   - never a panic, whatever the headers and body;
//   - arbitrary headers and body: Verify accepts exactly when refVerify —
//     Standard Webhooks v1 written out independently from the spec —
//     does, and the Sink answers 401 exactly when it refuses;
//   - round trip: what Sign produced with one to three keys, at a time
//     within the tolerance, verifies with each of those keys (and not
//     outside it, nor with another key); any single-byte change of the
//     body, the id or the timestamp is refused with every key, and one of
//     the signature header is refused by exactly the keys whose signature
//     it no longer carries intact; a changed body is refused by the Sink
//     over HTTP too.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"type":"duress.triggered"}`), "evt_1", "1772416800", "v1,abc", int64(0), uint8(1), uint64(1), uint32(0), byte('x'), uint8(0))
	f.Add([]byte{}, "", "", "", int64(299), uint8(2), uint64(2), uint32(5), byte(' '), uint8(3))
	f.Add([]byte("x"), "msg_2ZG", "+1772416800", "v1,a v1,b", int64(-301), uint8(3), uint64(3), uint32(17), byte(0), uint8(2))
	sink := &Sink{Secrets: [][]byte{fuzzKeys(7, 1)[0]}, Now: func() time.Time { return fuzzNow }}
	srv := httptest.NewServer(sink)
	f.Cleanup(srv.Close)
	f.Fuzz(func(t *testing.T, body []byte, id, ts, sig string, off int64, nkeys uint8, seed uint64, pos uint32, b byte, field uint8) {
		// Arbitrary headers: the same verdict as the reference, in Verify
		// and in the Sink (in process: headers need not be sendable).
		keys := fuzzKeys(seed, int(nkeys%3)+1)
		if field&0x80 != 0 && len(keys) > 0 {
			// Let the fuzzer reach a correct signature by the real key.
			sig = sig + " " + refSignature(keys[0], id, ts, body)
		}
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		want := refVerify(h, body, keys, fuzzNow, DefaultTolerance)
		if got := Verify(h, body, keys, fuzzNow, DefaultTolerance) == nil; got != want {
			t.Errorf("Verify(id %q, ts %q, sig %q, body %q) accepted=%v, the reference says %v", id, ts, sig, body, got, want)
		}
		s := &Sink{Secrets: keys, Now: func() time.Time { return fuzzNow }}
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header = h.Clone()
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if (rec.Code == http.StatusUnauthorized) == want {
			t.Errorf("Sink answered %d to a delivery the reference %s", rec.Code, map[bool]string{true: "accepts", false: "refuses"}[want])
		}

		// Round trip: sign, then change one byte.
		if id == "" {
			id = "evt_" + strconv.FormatUint(seed, 36)
		}
		signedAt := fuzzNow.Add(time.Duration(off%1200) * time.Second)
		within := off%1200 >= -300 && off%1200 <= 300
		sh := http.Header{}
		Sign(sh, keys, id, signedAt, body)
		tokens := strings.Fields(sh.Get(HeaderSignature))
		for i, k := range keys {
			if want := refSignature(k, id, sh.Get(HeaderTimestamp), body); i >= len(tokens) || tokens[i] != want {
				t.Errorf("Sign's signature %d is not the spec's %q: %q", i, want, tokens)
			}
			if got := Verify(sh, body, [][]byte{k}, fuzzNow, DefaultTolerance) == nil; got != within {
				t.Errorf("signed %s from now: key %d accepted=%v, want %v", signedAt.Sub(fuzzNow), i, got, within)
			}
		}
		if Verify(sh, body, fuzzKeys(seed+1, 1), fuzzNow, DefaultTolerance) == nil {
			t.Errorf("a delivery verified with a key it was not signed with")
		}
		if !within {
			return
		}
		mh, mbody := sh.Clone(), slices.Clone(body)
		var where string
		switch field % 4 {
		case 0:
			if len(mbody) == 0 {
				return
			}
			i := int(pos) % len(mbody)
			mbody[i] = changed(mbody[i], b)
			where = "body"
		case 1:
			mh.Set(HeaderID, changeByte(id, pos, b))
			where = "id"
		case 2:
			mh.Set(HeaderTimestamp, changeByte(sh.Get(HeaderTimestamp), pos, b))
			where = "timestamp"
		default:
			mh.Set(HeaderSignature, changeByte(sh.Get(HeaderSignature), pos, b))
			where = "signature"
		}
		fields := strings.Fields(mh.Get(HeaderSignature))
		for i, k := range keys {
			// Only a change of the signature header can leave a key's
			// signature, as Sign wrote it, intact.
			keep := where == "signature" && i < len(tokens) && slices.Contains(fields, tokens[i])
			if got := Verify(mh, mbody, [][]byte{k}, fuzzNow, DefaultTolerance) == nil; got != keep {
				t.Errorf("one byte of the %s changed: key %d accepted=%v, want %v (headers %v)", where, i, got, keep, mh)
			}
		}
		if where == "body" {
			// The same over HTTP, signed with the Sink's key under an id
			// any HTTP client can send.
			hh := http.Header{}
			Sign(hh, sink.Secrets, "evt_"+strconv.FormatUint(seed, 36), signedAt, body)
			if code := post(t, srv.URL, hh, body); code == http.StatusUnauthorized {
				t.Errorf("the Sink refused a correctly signed delivery over HTTP")
			}
			if code := post(t, srv.URL, hh, mbody); code != http.StatusUnauthorized {
				t.Errorf("the Sink answered %d over HTTP to a changed body", code)
			}
		}
	})
}

// post delivers a body with headers to the Sink over HTTP.
func post(t *testing.T, url string, h http.Header, body []byte) int {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// fuzzKeys are n keys of 24 to 64 bytes derived from seed.
func fuzzKeys(seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 99))
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = make([]byte, 24+rng.IntN(41))
		for j := range keys[i] {
			keys[i][j] = byte(rng.Uint32())
		}
	}
	return keys
}

// changed is b, or if that is what was there, something else.
func changed(old, b byte) byte {
	if b == old {
		return old ^ 0x01
	}
	return b
}

// changeByte replaces the byte of s at pos (mod its length).
func changeByte(s string, pos uint32, b byte) string {
	bs := []byte(s)
	i := int(pos) % len(bs)
	bs[i] = changed(bs[i], b)
	return string(bs)
}

// refSignature is the v1 signature of the spec: base64 of HMAC-SHA256
// over "id.timestamp.body", the timestamp as the integer it denotes.
func refSignature(key []byte, id, ts string, body []byte) string {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "v1,<no timestamp>"
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(n, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// refVerify is Standard Webhooks v1 verification written from the spec:
// the three headers present, the timestamp a decimal Unix time no further
// than tolerance from now (in exact arithmetic), and a whitespace-
// separated token of the signature header equal to the v1 signature of
// one of keys.
func refVerify(h http.Header, body []byte, keys [][]byte, now time.Time, tolerance time.Duration) bool {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	d := new(big.Int).Sub(big.NewInt(now.UnixNano()), new(big.Int).Mul(big.NewInt(n), big.NewInt(1e9)))
	if d.Abs(d).Cmp(big.NewInt(int64(tolerance))) > 0 {
		return false
	}
	for _, k := range keys {
		if slices.Contains(strings.Fields(sigs), refSignature(k, id, ts, body)) {
			return true
		}
	}
	return false
}
