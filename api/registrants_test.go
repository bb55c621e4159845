package api_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

type registrantOut struct {
	ID           string               `json:"id"`
	Status       string               `json:"status"`
	Country      string               `json:"country"`
	City         string               `json:"city"`
	LastCheckin  *time.Time           `json:"last_checkin"`
	OverdueSince *time.Time           `json:"overdue_since"`
	LastLocation *escalation.Location `json:"last_location"`
	OpenCase     string               `json:"open_case"`
}

type registrantList struct {
	Registrants []registrantOut `json:"registrants"`
	NextCursor  *string         `json:"next_cursor"`
}

// seeded is one registrant written through the store, as the engine
// would leave them.
type seeded struct {
	key, id, embassy, status string
	since                    time.Time // overdue since (overdue only)
}

// seedRegistrants writes n registrants through the store, cycling
// embassies (by passport) and statuses, each overdue one overdue from a
// different time (newest first, so the index must sort them).
func seedRegistrants(t *testing.T, w *world, n int) []seeded {
	t.Helper()
	now := w.Runner.Now()
	var out []seeded
	for i := range n {
		passport, emb := "MY", "my-mekong"
		if i%2 == 1 {
			passport, emb = "ID", "id-mekong"
		}
		status := []string{"overdue", "active", "paused", "stopped", "overdue"}[i%5]
		key := store.UserKey([]byte("pepper-pepper-pepper-pepper-0000"), "seed", strconv.Itoa(i))
		at := now.Add(-time.Duration(i) * time.Minute).Truncate(time.Second)
		st := dialogs.State{Status: dialogs.StatusActive, Overdue: status == "overdue", LastCheckin: at.Add(-48 * time.Hour),
			Profile: dialogs.Profile{Nationality: passport, Country: "KH", City: "Siem Reap",
				LastLocation: &escalation.Location{Lat: 13.36, Lon: 103.86, At: at.Add(-48 * time.Hour)}}}
		switch status {
		case "paused":
			st.Status = dialogs.StatusPaused
		case "stopped":
			st.Status = dialogs.StatusStopped
		}
		if _, err := w.Store.Process(key, "", at, func(dialogs.State, bool) dialogs.Result { return dialogs.Result{State: st} }); err != nil {
			t.Fatal(err)
		}
		out = append(out, seeded{key: key, id: dialogs.Pseudonym(key), embassy: emb, status: status, since: at})
	}
	return out
}

// walk lists every page of status with limit size and returns the rows in
// order; every response is validated against docs/api.yaml.
func (w *world) walk(token, status string, size int) []registrantOut {
	w.t.Helper()
	var rows []registrantOut
	cursor := ""
	for pages := 0; ; pages++ {
		var l registrantList
		w.must(http.StatusOK, "GET", "/v1/registrants?status="+status+"&limit="+strconv.Itoa(size)+cursor, token, nil).decode(w.t, &l)
		if len(l.Registrants) > size {
			w.t.Fatalf("page of %d for limit %d", len(l.Registrants), size)
		}
		rows = append(rows, l.Registrants...)
		if l.NextCursor == nil {
			return rows
		}
		w.cursors = append(w.cursors, *l.NextCursor)
		cursor = "&cursor=" + url.QueryEscape(*l.NextCursor)
		if pages > 100 {
			w.t.Fatal("pagination does not end")
		}
	}
}

// TestRegistrantList: for each embassy, status and page size, the pages
// list exactly the embassy's registrants of that status, each once,
// overdue ones longest overdue first; no answer carries a store key.
func TestRegistrantList(t *testing.T) {
	w := newWorld(t, func(o *api.Options) { o.Burst = 100000 })
	seed := seedRegistrants(t, w, 20)
	hexKey := regexp.MustCompile(`[0-9a-f]{64}`)
	for tok, emb := range map[string]string{tokMY: "my-mekong", tokID: "id-mekong"} {
		for _, status := range []string{"overdue", "active", "paused", "stopped"} {
			var want []seeded
			for _, s := range seed {
				if s.embassy == emb && s.status == status {
					want = append(want, s)
				}
			}
			// Overdue: longest overdue (oldest since) first.
			slices.SortStableFunc(want, func(a, b seeded) int { return a.since.Compare(b.since) })
			for _, size := range []int{1, 2, 3, 200} {
				w.t = t
				rows := w.walk(tok, status, size)
				var got, exp []string
				for _, r := range rows {
					if r.Status != status {
						t.Errorf("%s %s: row of status %s", emb, status, r.Status)
					}
					if status == "active" && (r.ID == dialogs.Pseudonym(registrantKey(t, w, w.duressCase(emb)))) {
						continue // the citizen of newWorld, active too
					}
					got = append(got, r.ID)
					if r.Country != "KH" || r.City != "Siem Reap" || r.LastCheckin == nil || r.LastLocation == nil {
						t.Errorf("%s %s: row %+v lacks what the store holds", emb, status, r)
					}
					if (status == "overdue") != (r.OverdueSince != nil) {
						t.Errorf("%s %s: overdue_since %v", emb, status, r.OverdueSince)
					}
				}
				for _, s := range want {
					exp = append(exp, s.id)
				}
				if status != "overdue" {
					slices.Sort(got)
					slices.Sort(exp)
				}
				if strings.Join(got, ",") != strings.Join(exp, ",") {
					t.Errorf("%s status=%s limit=%d: %v, want %v", emb, status, size, got, exp)
				}
			}
		}
	}
	// No page, and no cursor, holds a store key (the index is keyed by
	// them; the API shows pseudonymous ids only).
	for _, tok := range []string{tokMY, tokID} {
		for _, status := range []string{"overdue", "active", "paused", "stopped"} {
			for _, size := range []int{1, 200} {
				r := w.must(http.StatusOK, "GET", "/v1/registrants?status="+status+"&limit="+strconv.Itoa(size), tok, nil)
				for _, s := range seed {
					if strings.Contains(string(r.Body), s.key) {
						t.Errorf("the list shows a store key: %s", r.Body)
					}
				}
				if hexKey.Match(r.Body) {
					t.Errorf("the list shows something like a store key: %s", r.Body)
				}
			}
		}
	}
	// Nor does a cursor, even decoded.
	if len(w.cursors) == 0 {
		t.Fatal("no page had a next cursor")
	}
	for _, c := range w.cursors {
		dec, _ := base64.RawURLEncoding.DecodeString(c)
		for _, s := range seed {
			if strings.Contains(c, s.key) || bytes.Contains(dec, []byte(s.key)) || bytes.Contains(dec, []byte(s.key[:16])) {
				t.Errorf("cursor %s reveals a store key", c)
			}
		}
	}
	// Default status is overdue.
	var def, od registrantList
	w.must(http.StatusOK, "GET", "/v1/registrants", tokMY, nil).decode(t, &def)
	w.must(http.StatusOK, "GET", "/v1/registrants?status=overdue", tokMY, nil).decode(t, &od)
	if len(def.Registrants) == 0 || len(def.Registrants) != len(od.Registrants) {
		t.Errorf("default list %d rows, overdue %d", len(def.Registrants), len(od.Registrants))
	}
}

// TestRegistrantCursorIsolation: a cursor works only for the embassy and
// list it was given for; another embassy presenting it, or the same
// embassy on another status, or a forged one, is 400 — never a page.
func TestRegistrantCursorIsolation(t *testing.T) {
	w := newWorld(t, func(o *api.Options) { o.Burst = 100000 })
	seedRegistrants(t, w, 20)
	var l registrantList
	w.must(http.StatusOK, "GET", "/v1/registrants?status=overdue&limit=1", tokMY, nil).decode(t, &l)
	if l.NextCursor == nil {
		t.Fatal("no second page")
	}
	c := url.QueryEscape(*l.NextCursor)
	w.must(http.StatusOK, "GET", "/v1/registrants?status=overdue&limit=1&cursor="+c, tokMY, nil)
	w.must(http.StatusOK, "GET", "/v1/registrants?status=overdue&limit=1&cursor="+c, tokMYNew, nil) // same embassy, rotated token
	for _, tc := range []struct{ tok, query string }{
		{tokID, "status=overdue&cursor=" + c},
		{tokMY, "status=active&cursor=" + c},
		{tokMY, "status=overdue&cursor=" + c[:len(c)-2] + "AA"},
		{tokMY, "status=overdue&cursor=" + url.QueryEscape(base64Store(t, w))},
	} {
		r := w.do("GET", "/v1/registrants?"+tc.query, tc.tok, nil)
		if r.Status != http.StatusBadRequest || r.code(t) != "invalid" {
			t.Errorf("%s: %d %s, want 400 invalid", tc.query, r.Status, r.Body)
		}
	}
}

// base64Store is the store's own next cursor for my-mekong's overdue list:
// handed in raw, it must be refused (only sealed cursors are accepted).
func base64Store(t *testing.T, w *world) string {
	page, err := w.Store.Registrants("my-mekong", store.StatusOverdue, "", 1)
	if err != nil || page.Next == "" {
		t.Fatalf("store page: %+v %v", page, err)
	}
	return page.Next
}
