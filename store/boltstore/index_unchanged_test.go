package boltstore_test

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// TestUnchangedIndexRowIsNotRewritten: a timer that changes nothing the
// embassy's list shows (the check-in prompt, its reminder) leaves the
// registrant's index entry as it was — not deleted and written again,
// which at a million registrants dirties two more B-tree leaves per timer
// (issue 15, scheduler tick). A sealed row written again has a fresh
// nonce, so "byte-identical" is what proves it was left alone. A check-in
// changes the row (last check-in): it is rewritten, and the embassy's list
// shows the new time. The equivalence test (TestPreparedPathEquivalent)
// guards the other side: a row left alone when it should have changed.
func TestUnchangedIndexRowIsNotRewritten(t *testing.T) {
	eng := prepEngine(t)
	for _, sealed := range []bool{true, false} {
		t.Run(fmt.Sprint("sealed=", sealed), func(t *testing.T) {
			s := prepStore(t, eng, "idx.db", sealed)
			g := newPrepGen(7, 1)
			pick := func(int) (dialogs.State, bool, []dialogs.Reply) {
				st, found, err := s.Registrant(g.keys[0])
				if err != nil {
					t.Fatal(err)
				}
				return st, found, nil
			}
			for range prepRegistration(g.users[0]) {
				e := g.next(pick)
				if _, err := e.apply(t, eng, s, g.keys); err != nil {
					t.Fatal(err)
				}
			}
			st, _, _ := s.Registrant(g.keys[0])
			if !st.Registered() || st.DueAt().IsZero() {
				t.Fatalf("not registered with a timer after the registration: %+v", st)
			}
			k0, v0 := s.IndexEntryRaw(g.keys[0])
			if k0 == nil {
				t.Fatal("a registered citizen is not in the index")
			}
			timer := prepEvent{user: 0, now: st.DueAt(), in: dialogs.Input{Kind: dialogs.KindTimer, Key: g.keys[0], Channel: "telegram", Address: g.users[0].address}}
			if _, err := timer.apply(t, eng, s, g.keys); err != nil {
				t.Fatal(err)
			}
			after, _, _ := s.Registrant(g.keys[0])
			if reflect.DeepEqual(after, st) {
				t.Fatalf("the timer changed nothing: not a test of an unchanged row (%+v)", after)
			}
			k1, v1 := s.IndexEntryRaw(g.keys[0])
			if !bytes.Equal(k0, k1) || !bytes.Equal(v0, v1) {
				t.Fatalf("the prompt timer rewrote an unchanged index entry (key same %v, value same %v)", bytes.Equal(k0, k1), bytes.Equal(v0, v1))
			}
			checkin := prepEvent{user: 0, now: st.DueAt().Add(5 * 60e9), inboundID: "telegram:u-checkin",
				in: dialogs.Input{Kind: dialogs.KindText, Text: "ok", Key: g.keys[0], Channel: "telegram", Address: g.users[0].address}}
			if _, err := checkin.apply(t, eng, s, g.keys); err != nil {
				t.Fatal(err)
			}
			_, v2 := s.IndexEntryRaw(g.keys[0])
			if bytes.Equal(v1, v2) {
				t.Fatal("a check-in did not rewrite the index row")
			}
			page, err := s.Registrants(eng.Directory.EmbassyFor("MY", "KH"), store.StatusActive, "", 10)
			if err != nil || len(page.Rows) != 1 || page.Rows[0].LastCheckin == nil || !page.Rows[0].LastCheckin.Equal(checkin.now) {
				t.Fatalf("embassy list after the check-in: %+v (%v), want last check-in %v", page.Rows, err, checkin.now)
			}
		})
	}
}
