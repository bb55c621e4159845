package api_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// TestRegistrantIdentity: the registrant list shows which registrations
// were linked to a digital ID, by whom, when, and whether the names agree
// (issue 14); unverified ones say identity_verified false and nothing
// more. Every response is validated against docs/api.yaml.
func TestRegistrantIdentity(t *testing.T) {
	w := newWorld(t, func(o *api.Options) { o.Burst = 100000 })
	now := w.Runner.Now().Truncate(time.Second)
	want := map[string]*dialogs.Identity{}
	yes, no := true, false
	for i, v := range []*dialogs.Identity{
		{Provider: "mydigitalid", Subject: "s-0", Name: "SITI AMINAH", VerifiedAt: now.Add(-time.Hour), NameMatches: &yes},
		{Provider: "singpass", Subject: "s-1", Name: "TAN AH KOW", VerifiedAt: now.Add(-2 * time.Hour), NameMatches: &no},
		{Provider: "singpass", Subject: "s-2", VerifiedAt: now.Add(-3 * time.Hour)},
		nil,
	} {
		key := store.UserKey([]byte("pepper-pepper-pepper-pepper-0000"), "idseed", strconv.Itoa(i))
		st := dialogs.State{Status: dialogs.StatusActive, LastCheckin: now, Identity: v,
			Profile: dialogs.Profile{Nationality: "MY", Country: "KH", City: "Kampot"}}
		if _, err := w.Store.Process(key, "", now, func(dialogs.State, bool) dialogs.Result { return dialogs.Result{State: st} }); err != nil {
			t.Fatal(err)
		}
		want[dialogs.Pseudonym(key)] = v
	}
	var l struct {
		Registrants []map[string]any `json:"registrants"`
	}
	w.must(http.StatusOK, "GET", "/v1/registrants?status=active", tokMY, nil).decode(t, &l)
	seen := 0
	for _, row := range l.Registrants {
		v, ok := want[row["id"].(string)]
		if !ok {
			if row["identity_verified"] != false {
				t.Errorf("row %v: identity_verified %v", row["id"], row["identity_verified"])
			}
			continue
		}
		seen++
		if v == nil {
			if row["identity_verified"] != false || row["identity_provider"] != nil || row["identity_verified_at"] != nil || row["identity_name_matches"] != nil {
				t.Errorf("unverified row shows an identity: %v", row)
			}
			continue
		}
		at, _ := json.Marshal(v.VerifiedAt.UTC())
		if row["identity_verified"] != true || row["identity_provider"] != v.Provider || `"`+row["identity_verified_at"].(string)+`"` != string(at) ||
			(v.NameMatches == nil) != (row["identity_name_matches"] == nil) || (v.NameMatches != nil && row["identity_name_matches"] != *v.NameMatches) {
			t.Errorf("row %v, want %+v", row, v)
		}
		if row["name"] != nil || row["subject"] != nil {
			t.Errorf("the list shows more than it should: %v", row)
		}
	}
	if seen != len(want) {
		t.Errorf("%d of %d seeded rows listed", seen, len(want))
	}
}
