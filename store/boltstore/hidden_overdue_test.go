package boltstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// silentFile is one data file with one citizen, driven on a clock the
// test moves from timer to timer, as the scheduler would.
type silentFile struct {
	t       *testing.T
	s       *boltstore.Store
	sc      *script
	c       citizen
	key     string
	embassy string
	mu      sync.Mutex
	now     time.Time
}

func newSilentFile(t *testing.T, n int) *silentFile {
	t.Helper()
	s, err := boltstore.OpenWith(filepath.Join(t.TempDir(), "checkinbot.db"), boltstore.Options{Keyring: testKeyring(t, 7)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	dir := config.Default().Directory()
	if err := s.IndexWith(dir.EmbassyFor, "hidden-overdue"); err != nil {
		t.Fatal(err)
	}
	f := &silentFile{t: t, s: s, sc: newScript(t, s), c: newCitizen("en", n)}
	f.now = time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)
	f.sc.runner.Now = func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
	f.key = store.UserKey(privacyPepper, "telegram", f.c.address)
	f.embassy = dir.EmbassyFor("MY", "KH") // newScript's registration: Malaysian in Cambodia
	return f
}

func (f *silentFile) state() dialogs.State {
	f.t.Helper()
	st, found, err := f.s.Registrant(f.key)
	if err != nil || !found {
		f.t.Fatalf("registrant: found %v, %v", found, err)
	}
	return st
}

// fireNext moves the clock to the registrant's next timer, fires it, and
// waits until its replies are acknowledged and a prompt's delivery is
// recorded (the visible ladder runs from it), so both files see the same
// times.
func (f *silentFile) fireNext() {
	f.t.Helper()
	due := f.state().DueAt()
	if due.IsZero() {
		f.t.Fatal("no timer armed: the registrant is not monitored")
	}
	f.mu.Lock()
	f.now = due
	f.mu.Unlock()
	if _, err := f.sc.runner.FireDue(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.sc.settle(false)
	for deadline := time.Now().Add(10 * time.Second); f.state().PromptPending; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.t.Fatal("prompt delivery never recorded")
		}
	}
}

// silence fires timers until the clock passes until.
func (f *silentFile) silence(until time.Time) {
	f.t.Helper()
	for i := 0; f.state().DueAt().Before(until); i++ {
		if i > 50 {
			f.t.Fatal("more than 50 timers: the ladder does not move")
		}
		f.fireNext()
	}
}

// clear is what a thief sees of the registrant's listing, schedule and
// counters without any key: keys (the user key as a placeholder), the
// stored lengths, and the counters' values.
func (f *silentFile) clear() []string {
	var out []string
	for _, b := range []string{"regindex", "regindex_user", "due", "stat_counts"} {
		for _, k := range f.s.Keys(b) {
			v := f.s.RawValue(b, k)
			row := fmt.Sprintf("%s: %q → %d bytes", b, strings.ReplaceAll(string(k), f.key, "<user>"), len(v))
			if b == "stat_counts" {
				row += fmt.Sprintf(" %x", v)
			}
			out = append(out, row)
		}
	}
	sort.Strings(out)
	return out
}

// listed is the registrant's row in the embassy's list of status, if any.
func (f *silentFile) listed(status store.RegistrantStatus) (store.RegistrantRow, bool) {
	f.t.Helper()
	page, err := f.s.Registrants(f.embassy, status, "", 0)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, r := range page.Rows {
		if r.Key == f.key {
			return r, true
		}
	}
	return store.RegistrantRow{}, false
}

// TestCovertlySilentListedOverdue (privacy review F3): a citizen who
// covertly stops, pauses or deletes (the secret word in the request) and
// then goes silent is monitored by a ladder that fires the same timers as
// a visible one. They must be listed overdue exactly like a visibly
// active citizen who goes silent — in the embassy's overdue list, and in
// the clear index rows and counters of the file, which must have the same
// shape as the twin's (an active row whose ladder runs and never goes
// overdue would single them out) — and back to active after a check-in.
func TestCovertlySilentListedOverdue(t *testing.T) {
	pol := config.Default().Policy()
	for _, tc := range []struct {
		action  string
		covert  func(sc *script, c citizen) // the coerced request, confirmed
		checkin string                      // the sign of life the phone can still give
	}{
		{"stop", func(sc *script, c citizen) { sc.say(c, "/stop "+c.keyword); sc.pressFirst(c) }, "/checkin"},
		// The longest pause: its visible end must not come before the ladder.
		{"pause", func(sc *script, c citizen) { sc.say(c, "/pause "+c.keyword); sc.pressLast(c) }, "/checkin"},
		// The phone looks new: the secret word is its only sign of life.
		{"delete", func(sc *script, c citizen) { sc.say(c, "/delete "+c.keyword); sc.pressFirst(c) }, "hello %s"},
	} {
		t.Run(tc.action, func(t *testing.T) {
			covert, twin := newSilentFile(t, 60), newSilentFile(t, 60)
			for _, f := range []*silentFile{covert, twin} {
				f.sc.register(f.c)
				f.sc.say(f.c, "/checkin")
			}
			tc.covert(covert.sc, covert.c)
			if st := covert.state(); st.Shown == "" && st.Hidden == nil {
				t.Fatalf("the covert %s did not happen (shown %q)", tc.action, st.Shown)
			}
			due := twin.state().NextDue
			if got := covert.state().DueAt(); !got.Equal(due) {
				t.Fatalf("covert timer %v, twin's due %v: not the same schedule", got, due)
			}
			// Silence: past the first escalation and one re-escalation.
			until := due.Add(pol.EscalateAfter + pol.ReescalateEvery + time.Minute)
			for _, f := range []*silentFile{covert, twin} {
				f.silence(until)
			}
			for _, f := range []*silentFile{covert, twin} {
				row, ok := f.listed(store.StatusOverdue)
				if !ok {
					t.Fatalf("%s: not in the embassy's overdue list after %v of silence", f.c.address, until.Sub(due))
				}
				if row.OverdueSince == nil || row.OverdueSince.Before(due) || row.OverdueSince.After(until) {
					t.Errorf("overdue since %v, want between the due %v and %v", row.OverdueSince, due, until)
				}
				if _, ok := f.listed(store.StatusActive); ok {
					t.Errorf("listed active as well as overdue")
				}
				stats, err := f.s.Stats()
				if err != nil {
					t.Fatal(err)
				}
				if stats.Overdue != 1 || stats.Registrants["active"] != 1 {
					t.Errorf("counters %v overdue %d, want one active registrant, overdue", stats.Registrants, stats.Overdue)
				}
			}
			compareShapes(t, "covert "+tc.action+" vs visibly active, silent (overdue)", covert.clear(), twin.clear())
			rc, _ := covert.listed(store.StatusOverdue)
			rt, _ := twin.listed(store.StatusOverdue)
			if !rc.OverdueSince.Equal(*rt.OverdueSince) {
				t.Errorf("overdue since %v, the twin's %v", rc.OverdueSince, rt.OverdueSince)
			}

			// A sign of life: back to active in both.
			for _, f := range []*silentFile{covert, twin} {
				text := "/checkin"
				if f == covert && strings.Contains(tc.checkin, "%s") {
					text = fmt.Sprintf(tc.checkin, f.c.keyword)
				}
				f.sc.say(f.c, text)
				if _, ok := f.listed(store.StatusOverdue); ok {
					t.Errorf("%s: still overdue after a check-in", tc.action)
				}
				if _, ok := f.listed(store.StatusActive); !ok {
					t.Errorf("%s: not listed active after a check-in", tc.action)
				}
				stats, err := f.s.Stats()
				if err != nil {
					t.Fatal(err)
				}
				if stats.Overdue != 0 || stats.Registrants["active"] != 1 {
					t.Errorf("after a check-in: counters %v overdue %d", stats.Registrants, stats.Overdue)
				}
			}
			// The twin's /checkin and the coerced sign of life must leave
			// the same clear listing, schedule and counters.
			compareShapes(t, "covert "+tc.action+" vs visibly active, after a check-in", covert.clear(), twin.clear())
		})
	}
}

// TestHiddenOverdueAfterUpgrade: a file an earlier version wrote filed a
// silent, covertly deleted citizen active and never counted them overdue.
// At the next open and IndexWith the counters are counted again and the
// index rebuilt: listed overdue since the hidden ladder's due, counted
// overdue, and `checkinbot check` finds the file consistent.
func TestHiddenOverdueAfterUpgrade(t *testing.T) {
	pol := config.Default().Policy()
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	ring := testKeyring(t, 8)
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	dir := config.Default().Directory()
	if err := s.IndexWith(dir.EmbassyFor, "fp"); err != nil {
		t.Fatal(err)
	}
	f := &silentFile{t: t, s: s, sc: newScript(t, s), c: newCitizen("en", 61), embassy: dir.EmbassyFor("MY", "KH")}
	f.now = time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)
	f.sc.runner.Now = func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
	f.key = store.UserKey(privacyPepper, "telegram", f.c.address)
	f.sc.register(f.c)
	f.sc.say(f.c, "/checkin")
	f.sc.say(f.c, "/delete "+f.c.keyword)
	f.sc.pressFirst(f.c)
	due := f.state().DueAt()
	f.silence(due.Add(pol.EscalateAfter + time.Minute))
	hidden := f.state().Hidden
	if !hidden.Overdue() {
		t.Fatal("the hidden ladder did not go overdue")
	}
	// What the earlier version left: the index filed under "a" (its user
	// entry is what a rebuild reads the overdue-since from), built under
	// the bare fingerprint; the counters built by version 2, overdue 0.
	f.sc.settle(false)
	for _, w := range []struct {
		bucket, key string
		v           []byte
	}{
		{"regindex_user", f.key, []byte(f.embassy + "\x00a" + f.key)},
		{"meta", "regindex_fingerprint", []byte("fp")},
		{"stat_counts", "overdue", u64be(0)},
		{"meta", "stat_counts_built", []byte{2}},
	} {
		if err := s.PutRaw(w.bucket, []byte(w.key), w.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.IndexWith(dir.EmbassyFor, "fp"); err != nil {
		t.Fatal(err)
	}
	f.s = s
	row, ok := f.listed(store.StatusOverdue)
	if !ok || row.OverdueSince == nil || !row.OverdueSince.Equal(hidden.NextDue) {
		t.Fatalf("after the upgrade: listed overdue %v since %v, want since the hidden due %v", ok, row.OverdueSince, hidden.NextDue)
	}
	stats, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Overdue != 1 {
		t.Errorf("after the upgrade: overdue counter %d, want 1", stats.Overdue)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := boltstore.CheckWith(path, boltstore.Options{Keyring: ring})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check after the upgrade: %v %+v", err, rep.Problems)
	}
}
