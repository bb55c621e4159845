package api

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// registrantView is one row of the registrant list as the API shows it:
// the pseudonymous id of the webhook bodies and what an officer acts on.
// It is built field by field, so the store's user key can never slip out
// through a change of the store's JSON tags.
type registrantView struct {
	ID           string                 `json:"id"`
	Status       store.RegistrantStatus `json:"status"`
	Country      string                 `json:"country,omitempty"`
	City         string                 `json:"city,omitempty"`
	LastCheckin  *time.Time             `json:"last_checkin,omitempty"`
	OverdueSince *time.Time             `json:"overdue_since,omitempty"`
	LastLocation *escalation.Location   `json:"last_location,omitempty"`
	OpenCase     string                 `json:"open_case,omitempty"`
	// IdentityVerified and the fields after it show a registration linked
	// to a national digital ID (issue 14): by whom, when, and whether the
	// verified name has the words of the typed one.
	IdentityVerified    bool       `json:"identity_verified"`
	IdentityProvider    string     `json:"identity_provider,omitempty"`
	IdentityVerifiedAt  *time.Time `json:"identity_verified_at,omitempty"`
	IdentityNameMatches *bool      `json:"identity_name_matches,omitempty"`
}

// listRegistrants answers GET /v1/registrants: the embassy's registrants
// of one status (default overdue, longest overdue first), a page at a
// time, from the store's index.
func (a *API) listRegistrants(w http.ResponseWriter, r *http.Request, t Token, _ string) {
	q := r.URL.Query()
	status := store.RegistrantStatus(q.Get("status"))
	if status == "" {
		status = store.StatusOverdue
	}
	var err error
	if !status.Valid() {
		err = invalid("status", "must be overdue, active, paused or stopped")
	}
	limit := 0
	if err == nil {
		limit, err = limitParam(q)
	}
	cursor := ""
	if err == nil && q.Get("cursor") != "" {
		cursor, err = a.cursors.open(q.Get("cursor"), t.Embassy, string(status))
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	page, err := a.opt.Store.Registrants(t.Embassy, status, cursor, limit)
	if errors.Is(err, store.ErrBadCursor) {
		err = badCursor
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := struct {
		Registrants []registrantView `json:"registrants"`
		NextCursor  *string          `json:"next_cursor"`
	}{Registrants: []registrantView{}}
	for _, row := range page.Rows {
		out.Registrants = append(out.Registrants, registrantView{ID: row.ID, Status: row.Status, Country: row.Country,
			City: row.City, LastCheckin: row.LastCheckin, OverdueSince: row.OverdueSince,
			LastLocation: row.LastLocation, OpenCase: row.OpenCase, IdentityVerified: row.IdentityProvider != "",
			IdentityProvider: row.IdentityProvider, IdentityVerifiedAt: row.IdentityVerifiedAt, IdentityNameMatches: row.IdentityNameMatches})
	}
	if page.Next != "" {
		s := a.cursors.seal(page.Next, t.Embassy, string(status))
		out.NextCursor = &s
	}
	writeJSON(w, http.StatusOK, out)
}

var badCursor = invalid("cursor", "is not a cursor this list gave out (cursors last until the service restarts: start again without one)")

// cursorSealer wraps the store's page cursors, which hold a registrant's
// store key, so a client sees only an opaque token: AES-GCM under a key
// made at start, bound to the embassy and the status it was issued for.
// A cursor thus reveals nothing, cannot be forged or moved to another
// embassy's list, and expires when the service restarts (the client
// starts the list again).
type cursorSealer struct {
	aead cipher.AEAD
}

func newCursorSealer() *cursorSealer {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	c, err := cursorSealerWith(key)
	if err != nil {
		panic(err) // unreachable: the key is 32 bytes
	}
	return c
}

// cursorSealerWith seals under key (16, 24 or 32 bytes): the event pull's
// cursors use the store's lasting key, so they outlive a restart.
func cursorSealerWith(key []byte) (*cursorSealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &cursorSealer{aead: aead}, nil
}

func cursorAAD(embassy, list string) []byte {
	return append(append([]byte(embassy), 0), list...)
}

func (c *cursorSealer) seal(plain, embassy, list string) string {
	nonce := make([]byte, c.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(c.aead.Seal(nonce, nonce, []byte(plain), cursorAAD(embassy, list)))
}

func (c *cursorSealer) open(token, embassy, list string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < c.aead.NonceSize() {
		return "", badCursor
	}
	n := c.aead.NonceSize()
	plain, err := c.aead.Open(nil, raw[:n], raw[n:], cursorAAD(embassy, list))
	if err != nil {
		return "", badCursor
	}
	return string(plain), nil
}
