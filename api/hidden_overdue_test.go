package api_test

import (
	"net/http"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
)

// TestOverdueListsCovertlyDeletedSilent (privacy review F3): a citizen
// under duress who covertly deletes and then goes silent is on the
// embassy's overdue list (GET /v1/registrants, its default), not the
// active one, once the hidden ladder escalates — the embassy already knows
// the case is duress through the case, and the ladder's events still say
// do_not_contact.
func TestOverdueListsCovertlyDeletedSilent(t *testing.T) {
	w := newWorld(t)
	key := registrantKey(t, w, w.duressCase("my-mekong"))
	id := dialogs.Pseudonym(key)
	w.Say(w.siti, "/delete")
	w.Say(w.siti, "1") // Yes: only pretends, a duress case is open
	w.WaitFor("the covert delete", func() bool {
		st, _, err := w.Store.Registrant(key)
		return err == nil && st.Hidden != nil && !st.Registered()
	})
	listed := func(status string) (registrantOut, bool) {
		var l registrantList
		w.must(http.StatusOK, "GET", "/v1/registrants?status="+status, tokMY, nil).decode(t, &l)
		for _, r := range l.Registrants {
			if r.ID == id {
				return r, true
			}
		}
		return registrantOut{}, false
	}
	if _, ok := listed("active"); !ok {
		t.Fatal("before its ladder runs, the covertly deleted citizen is not listed active")
	}
	// Silence: the hidden ladder's timers, fired by the engine through
	// the store as the scheduler would, one at a time at their times.
	for i := 0; ; i++ {
		st, _, err := w.Store.Registrant(key)
		if err != nil {
			t.Fatal(err)
		}
		if st.Hidden.Overdue() {
			break
		}
		if i > 10 || st.Hidden.Timer.IsZero() {
			t.Fatalf("the hidden ladder does not escalate (stage %d, timer %v)", st.Hidden.Ladder, st.Hidden.Timer)
		}
		at := st.Hidden.Timer
		if _, err := w.Store.Process(key, "", at, func(prev dialogs.State, _ bool) dialogs.Result {
			return w.Engine.Handle(prev, dialogs.Input{Kind: dialogs.KindTimer, Key: key}, at)
		}); err != nil {
			t.Fatal(err)
		}
	}
	row, ok := listed("overdue")
	if !ok || row.Status != "overdue" || row.OverdueSince == nil {
		t.Fatalf("the silent covertly deleted citizen is not on the overdue list: %v %+v", ok, row)
	}
	if _, ok := listed("active"); ok {
		t.Error("listed active as well as overdue")
	}
	var def registrantList
	w.must(http.StatusOK, "GET", "/v1/registrants", tokMY, nil).decode(t, &def)
	if len(def.Registrants) == 0 || def.Registrants[0].ID != id {
		t.Errorf("the default (overdue) list does not show them: %+v", def.Registrants)
	}
	outbox, err := w.Store.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	missed := 0
	for _, ev := range outbox {
		if ev.Type == escalation.TypeCheckinMissed && ev.Registrant.ID == id {
			missed++
			if !ev.DoNotContact {
				t.Error("the hidden ladder's checkin.missed lost do_not_contact")
			}
		}
	}
	if missed == 0 {
		t.Error("no checkin.missed from the hidden ladder")
	}
}
