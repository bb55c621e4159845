package boltstore_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// recountSlots is the slot counters as the test reads them off the
// records, written apart from the store's promptSlots: a registrant's
// prompts fall at its next due time and, for an interval that divides a
// day, every interval after it; a covertly deleted registration counts by
// its hidden schedule; registrations in progress and stopped ones by none.
func recountSlots(states map[string]dialogs.State) map[string][dialogs.SlotsPerDay]int {
	out := map[string][dialogs.SlotsPerDay]int{}
	for _, st := range states {
		channel, next, interval := st.Channel, st.NextDue, st.Interval
		if h := st.Hidden; h != nil && st.Status == dialogs.StatusNew {
			channel, next, interval = h.Channel, h.NextDue, h.Interval
		} else if st.Status != dialogs.StatusActive && st.Status != dialogs.StatusPaused {
			continue
		}
		if next.IsZero() || channel == "" {
			continue
		}
		load := out[channel]
		for at := next; at.Before(next.Add(24 * time.Hour)); at = at.Add(interval) {
			load[dialogs.SlotOf(at)]++
			if interval < time.Hour || interval >= 24*time.Hour || (24*time.Hour)%interval != 0 {
				break
			}
		}
		out[channel] = load
	}
	return out
}

// withoutEmpty drops channels whose every slot is zero: a counter that
// went back to 0 is as good as none.
func withoutEmpty(m map[string][dialogs.SlotsPerDay]int) map[string][dialogs.SlotsPerDay]int {
	out := map[string][dialogs.SlotsPerDay]int{}
	for ch, load := range m {
		if load != ([dialogs.SlotsPerDay]int{}) {
			out[ch] = load
		}
	}
	return out
}

// randomState is a registrant as any write may leave it: in progress,
// active, paused, stopped, or covertly deleted (the phone's fresh state
// holding the hidden registration), on one of three channels, with any
// interval and next due time.
func randomState(r *rand.Rand, key string, now time.Time) dialogs.State {
	channels := []string{"telegram", "whatsapp", "terminal"}
	intervals := []time.Duration{24 * time.Hour, 12 * time.Hour, 8 * time.Hour, 48 * time.Hour, 72 * time.Hour, 30 * time.Second, 0}
	statuses := []dialogs.Status{dialogs.StatusNew, dialogs.StatusActive, dialogs.StatusActive, dialogs.StatusPaused, dialogs.StatusStopped}
	next := now.Add(time.Duration(r.IntN(72*60)) * time.Minute)
	if r.IntN(10) == 0 {
		next = time.Time{}
	}
	st := dialogs.State{Key: key, Lang: "en", Channel: channels[r.IntN(len(channels))], Address: key,
		Status: statuses[r.IntN(len(statuses))], Interval: intervals[r.IntN(len(intervals))],
		CheckinTime: fmt.Sprintf("%02d:%02d", r.IntN(24), r.IntN(60)), NextDue: next}
	switch r.IntN(6) {
	case 0: // covertly deleted: what the engine leaves (engine.go fresh)
		return dialogs.State{Key: key, DoNotContact: true, Hidden: &dialogs.Hidden{
			Channel: st.Channel, Address: st.Address, Interval: st.Interval, CheckinTime: st.CheckinTime, NextDue: st.NextDue}}
	case 1: // covertly stopped: monitoring goes on, the phone sees stopped
		st.Status, st.Shown = dialogs.StatusActive, dialogs.StatusStopped
	}
	return st
}

// TestSlotCountersMatchRecount is the property behind the time question's
// crowding advice: after any sequence of registrations, schedule changes,
// real and covert deletes, the slot counters equal a recount from the
// records — read live, after a reopen, and as `checkinbot check` sees them.
func TestSlotCountersMatchRecount(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 15))
			path := filepath.Join(t.TempDir(), "checkinbot.db")
			ring := testKeyring(t, 9)
			s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)
			states := map[string]dialogs.State{}
			for i := range 400 {
				key := fmt.Sprintf("k%02d", r.IntN(40))
				next, erase := randomState(r, key, now), r.IntN(8) == 0
				if _, err := s.Process(key, "", now, func(dialogs.State, bool) dialogs.Result {
					return dialogs.Result{State: next, Erase: erase}
				}); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				if erase {
					delete(states, key)
				} else {
					states[key] = next
				}
				now = now.Add(7 * time.Minute)
				if i%50 == 49 {
					compareSlots(t, s, states, fmt.Sprint("after write ", i))
				}
			}
			compareSlots(t, s, states, "at the end")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rep, err := boltstore.CheckWith(path, boltstore.Options{Keyring: ring})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range rep.Problems {
				// The synthetic keys are no user keys: only the counters are checked here.
				if strings.HasPrefix(p.Where, "counter") {
					t.Errorf("checkinbot check: %s", p)
				}
			}
			s, err = boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			compareSlots(t, s, states, "after reopening")
		})
	}
}

func compareSlots(t *testing.T, s *boltstore.Store, states map[string]dialogs.State, when string) {
	t.Helper()
	got, err := s.SlotLoads()
	if err != nil {
		t.Fatal(err)
	}
	want := recountSlots(states)
	got, want = withoutEmpty(got), withoutEmpty(want)
	if len(want) == 0 {
		t.Fatalf("%s: the recount is empty: the property would hold vacuously", when)
	}
	for ch := range mergeKeys(got, want) {
		if got[ch] != want[ch] {
			t.Errorf("%s: channel %s: counters %v, the records say %v", when, ch, got[ch], want[ch])
		}
	}
}

func mergeKeys(a, b map[string][dialogs.SlotsPerDay]int) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// TestSlotCountersRecountedFromVersion3: a file whose counters version 3
// built (no slot counters) gets them at open, from its sealed records.
func TestSlotCountersRecountedFromVersion3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	ring := testKeyring(t, 10)
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	sc := newScript(t, s)
	c := newCitizen("en", 52)
	sc.register(c)
	key := store.UserKey(privacyPepper, "telegram", c.address)
	st, _, err := s.Registrant(key)
	if err != nil {
		t.Fatal(err)
	}
	slot := dialogs.SlotOf(st.NextDue)
	m := slot * 15
	if err := s.PutRaw("stat_counts", fmt.Appendf(nil, "slot:telegram:%02d%02d", m/60, m%60), u64be(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRaw("meta", []byte("stat_counts_built"), []byte{3}); err != nil {
		t.Fatal(err)
	}
	if loads, _ := s.SlotLoads(); loads["telegram"][slot] != 0 {
		t.Fatalf("the version 3 counters were not written: %v", loads["telegram"][slot])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	loads, err := s.SlotLoads()
	if err != nil {
		t.Fatal(err)
	}
	if loads["telegram"][slot] != 1 {
		t.Errorf("after reopening: slot %d holds %d, want 1 (09:00 in Cambodia)", slot, loads["telegram"][slot])
	}
}
