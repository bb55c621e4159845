package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// TestEventCursorOutlivesRestartAndStaysWithItsEmbassy pulls events page
// by page from one API, then goes on with the cursor from a new API on a
// reopened data file (a restart): nothing is missed or repeated. A cursor
// is refused by every other embassy, and a cursor of a per-embassy
// sequence never grows with another embassy's events.
func TestEventCursorOutlivesRestartAndStaysWithItsEmbassy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	var want []string // a's events, in order
	for i := range 30 {
		emb := []string{"a", "b", "b"}[i%3] // b has twice a's volume
		key := fmt.Sprintf("%064x", i)
		o, err := s.Process(key, "", t0.Add(time.Duration(i)*time.Minute), func(prev dialogs.State, _ bool) dialogs.Result {
			return dialogs.Result{State: prev, Escalations: []dialogs.Escalation{{Type: escalation.TypeSOSRaised,
				Severity: escalation.SeverityCritical, EmbassyID: emb, Case: dialogs.CaseOpen}}}
		})
		if err != nil {
			t.Fatal(err)
		}
		if emb == "a" {
			want = append(want, o.Events[0].ID)
		}
	}
	tokens := []api.Token{{Embassy: "a", Label: "A", Secret: []byte("token-of-a-0123456789")},
		{Embassy: "b", Label: "B", Secret: []byte("token-of-b-0123456789")}}
	serve := func(s *boltstore.Store) *httptest.Server {
		srv := httptest.NewServer(api.New(api.Options{Store: s, Tokens: tokens, Now: func() time.Time { return t0 }}))
		t.Cleanup(srv.Close)
		return srv
	}
	type page struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
		NextCursor *string `json:"next_cursor"`
		More       bool    `json:"more"`
	}
	get := func(srv *httptest.Server, token, query string, code int) page {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/v1/events?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p page
		if resp.StatusCode != code {
			t.Fatalf("GET %s: %d, want %d", query, resp.StatusCode, code)
		}
		if code == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	first := serve(s)
	var got []string
	p := get(first, "token-of-a-0123456789", "limit=4", http.StatusOK)
	for _, e := range p.Events {
		got = append(got, e.ID)
	}
	cursor := *p.NextCursor
	// b may not use a's cursor, neither may anyone forge one.
	get(first, "token-of-b-0123456789", "after="+cursor, http.StatusBadRequest)
	get(first, "token-of-a-0123456789", "after=4", http.StatusBadRequest)

	// A restart: the file reopened, a new API.
	s.Close()
	if s, err = boltstore.Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	second := serve(s)
	for range 10 {
		p = get(second, "token-of-a-0123456789", "limit=4&after="+cursor, http.StatusOK)
		for _, e := range p.Events {
			got = append(got, e.ID)
		}
		cursor = *p.NextCursor
		if !p.More {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pulled across a restart: %v, want %v", got, want)
	}
	// The cursor is a's own count: b's volume does not move it.
	pg, err := s.Events(storeQuery("a", 0, 100))
	if err != nil || pg.Next != uint64(len(want)) {
		t.Errorf("a's cursor after its %d events is %d (%v): it should count a's events alone", len(want), pg.Next, err)
	}
}

func storeQuery(embassy string, after uint64, limit int) store.EventQuery {
	return store.EventQuery{Embassy: embassy, After: after, Limit: limit}
}
