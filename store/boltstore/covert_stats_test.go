package boltstore_test

import (
	"encoding/binary"
	"maps"
	"path/filepath"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// TestCovertActionsKeepCounts: a covert stop or delete (the secret word in
// the request) leaves the registration monitored, and the embassy's list
// shows it active. The counters behind /metrics, kept in clear in the
// stat_counts bucket, must say the same: a covertly deleted registration
// counted as "new" (a registration in progress) would tell it apart, in a
// stolen file (a "new" count the index does not match) and in /metrics.
func TestCovertActionsKeepCounts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		request string
	}{
		{"covert stop", "/stop "},
		{"covert delete", "/delete "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := boltstore.OpenWith(filepath.Join(t.TempDir(), "checkinbot.db"), boltstore.Options{Keyring: testKeyring(t, 5)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sc := newScript(t, s)
			c := newCitizen("en", 50)
			sc.register(c)
			sc.say(c, "/checkin")
			before, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if before.Registrants["active"] != 1 {
				t.Fatalf("before: %v, want one active registrant", before.Registrants)
			}
			sc.say(c, tc.request+c.keyword)
			sc.pressFirst(c)
			after, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(before.Registrants, after.Registrants) || before.Overdue != after.Overdue {
				t.Errorf("counters moved: %v (overdue %d) → %v (overdue %d)", before.Registrants, before.Overdue, after.Registrants, after.Overdue)
			}
		})
	}
}

// TestStatCountsRecountedFromVersion1: a file whose counters the previous
// version built (a covertly deleted registration counted as "new") has
// them counted again at open, from its sealed records.
func TestStatCountsRecountedFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	ring := testKeyring(t, 6)
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	sc := newScript(t, s)
	c := newCitizen("en", 51)
	sc.register(c)
	sc.say(c, "/delete "+c.keyword)
	sc.pressFirst(c)
	// What version 1 wrote after a covert delete.
	for k, v := range map[string][]byte{"status:new": u64be(1), "status:active": u64be(0)} {
		if err := s.PutRaw("stat_counts", []byte(k), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutRaw("meta", []byte("stat_counts_built"), []byte{1}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(); st.Registrants["new"] != 1 {
		t.Fatalf("the version 1 counters were not written: %v", st.Registrants)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"active": 1}; !maps.Equal(st.Registrants, want) {
		t.Errorf("after reopening: %v, want %v", st.Registrants, want)
	}
}

func u64be(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// pressLast presses the last button of the latest reply that has any (No,
// in a confirmation).
func (sc *script) pressLast(c citizen) {
	sc.t.Helper()
	rs := sc.chat.last(c.address)
	for i := len(rs) - 1; i >= 0; i-- {
		if b := rs[i].Buttons; len(b) > 0 {
			sc.send(c, dialogs.KindButton, b[len(b)-1].Data, 0, 0)
			return
		}
	}
	sc.t.Fatalf("%s: no button to press", c.lang)
}

// TestCovertActionsLookActive: in one file, a covertly stopped or deleted
// registrant looks like an active one who asked to stop or delete and
// then said No — same keys, counters and stored lengths in the buckets
// below (docs/storage.md "What a duress signal leaves in clear"). Two
// known exceptions are left out and documented there: the record's
// stored length (a covertly deleted record holds its profile inside the
// hidden part, about 50 bytes more than padding reserves, so it may land
// one size class up) and the audit trail (the covert action is one more
// neutral entry of that registrant, as a real stop or delete is).
func TestCovertActionsLookActive(t *testing.T) {
	var buckets []string
	for _, b := range registrantSide {
		if b != "registrants" && b != "audit" {
			buckets = append(buckets, b)
		}
	}
	for _, request := range []string{"/stop", "/delete"} {
		covert := runShape(t, buckets, "", func(sc *script, c citizen) { sc.say(c, request+" "+c.keyword); sc.pressFirst(c) })
		declined := runShape(t, buckets, "", func(sc *script, c citizen) { sc.say(c, request); sc.pressLast(c) })
		compareShapes(t, "covert "+request+" vs "+request+" declined", covert, declined)
	}
}
