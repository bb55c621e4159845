package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"
)

// authenticator finds the token a request presents. Every configured
// token is compared, each in constant time over SHA-256 digests (equal
// lengths), so neither the position of a match nor a token's length
// shows in the time taken.
type authenticator struct {
	tokens []authToken
}

type authToken struct {
	Token
	digest [32]byte
}

func newAuthenticator(tokens []Token) *authenticator {
	a := &authenticator{}
	for _, t := range tokens {
		a.tokens = append(a.tokens, authToken{Token: t, digest: sha256.Sum256(t.Secret)})
	}
	return a
}

// authenticate returns the token r presents, if it is one of ours.
func (a *authenticator) authenticate(r *http.Request) (Token, bool) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return Token{}, false
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	found := -1
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(d[:], a.tokens[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Token{}, false
	}
	return a.tokens[found].Token, true
}

// limiter is a token bucket per API token label: Burst requests at once,
// refilled at Rate a second.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time
	mu    sync.Mutex
	b     map[string]*bucket
}

type bucket struct {
	level float64
	at    time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, b: map[string]*bucket{}}
}

// allow takes one request from label's bucket; when empty it says how
// long until one is available.
func (l *limiter) allow(label string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.b[label]
	if b == nil {
		b = &bucket{level: l.burst, at: now}
		l.b[label] = b
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.level = math.Min(l.burst, b.level+el*l.rate)
	}
	b.at = now
	if b.level >= 1 {
		b.level--
		return true, 0
	}
	return false, time.Duration((1 - b.level) / l.rate * float64(time.Second))
}
