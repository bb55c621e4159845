package bot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

const day = 24 * time.Hour

// retentionPolicy is short enough to read, and distinct periods so a wrong
// rule shows.
var retentionPolicy = dialogs.Retention{Withdrawn: 30 * day, Inactive: 60 * day, Notice: 7 * day}

// retentionRig is a runner on a real store with a fake clock.
type retentionRig struct {
	r   *bot.Runner
	rec *recorder
	s   *boltstore.Store
	mu  sync.Mutex
	now time.Time
}

func newRetentionRig(t *testing.T) *retentionRig {
	t.Helper()
	g := &retentionRig{now: time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)}
	g.r, g.rec = newRunner(t)
	g.r.Engine.Policy.Retention = retentionPolicy
	g.r.Now = func() time.Time { g.mu.Lock(); defer g.mu.Unlock(); return g.now }
	g.s = g.r.Store.(*boltstore.Store)
	if err := g.s.IndexWith(g.r.Engine.Directory.EmbassyFor, "retention-test"); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *retentionRig) at(t time.Time) { g.mu.Lock(); g.now = t; g.mu.Unlock() }

func (g *retentionRig) say(t *testing.T, address string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		if err := g.r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: address,
			Kind: dialogs.KindText, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
}

func (g *retentionRig) sweep(t *testing.T) bot.RetentionReport {
	t.Helper()
	rep, err := g.r.SweepRetention(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (g *retentionRig) replies(address string) []dialogs.Reply {
	g.rec.mu.Lock()
	defer g.rec.mu.Unlock()
	return append([]dialogs.Reply(nil), g.rec.sent[address]...)
}

func (g *retentionRig) present(t *testing.T, address string) bool {
	t.Helper()
	_, found, err := g.s.Registrant(store.UserKey(testkit.Pepper, "telegram", address))
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// noticeFor is the notice as the catalog renders it for lang and date.
func (g *retentionRig) noticeFor(lang string, on time.Time, zone *time.Location) string {
	return g.r.Engine.Catalog.Text(lang, "RetentionNotice", map[string]any{"Date": on.In(zone).Format("02/01/2006")})
}

// withdrawn events recorded for the pseudonym of address.
func (g *retentionRig) withdrawals(t *testing.T, address string) []store.Event {
	t.Helper()
	box, err := g.s.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	id := dialogs.Pseudonym(store.UserKey(testkit.Pepper, "telegram", address))
	var out []store.Event
	for _, e := range box {
		if e.Type == escalation.TypeRegistrationWithdrawn && e.Registrant != nil && e.Registrant.ID == id {
			out = append(out, e)
		}
	}
	return out
}

// TestRetentionNoticeEveryLanguage: a registration left unfinished after
// consent (an address is stored, nothing else comes) is told, in its own
// language, exactly Notice before Inactive runs out — not a sweep earlier —
// with the removal date; without a reply it is removed on that date with
// nothing left behind: no record, no due entry, and `checkinbot check`
// clean.
func TestRetentionNoticeEveryLanguage(t *testing.T) {
	g := newRetentionRig(t)
	t0 := g.now
	for i := range locales.Order {
		g.say(t, fmt.Sprint(7000+i), "/start", fmt.Sprint(i+1), "1") // language by number, then "I agree"
	}
	for i := range locales.Order {
		if !g.present(t, fmt.Sprint(7000+i)) {
			t.Fatalf("registrant %d not stored", i)
		}
	}
	before := map[string]int{}
	for i := range locales.Order {
		before[fmt.Sprint(7000+i)] = len(g.replies(fmt.Sprint(7000 + i)))
	}
	notifyAt := t0.Add(retentionPolicy.Inactive - retentionPolicy.Notice)
	g.at(notifyAt.Add(-time.Hour))
	if rep := g.sweep(t); rep.Notices+rep.Removals != 0 {
		t.Fatalf("an hour before the notice is due: %+v", rep)
	}
	g.at(notifyAt)
	if rep := g.sweep(t); rep.Notices != len(locales.Order) || rep.Removals != 0 {
		t.Fatalf("at the notice time: %+v, want %d notices", rep, len(locales.Order))
	}
	removeOn := t0.Add(retentionPolicy.Inactive)
	english := g.noticeFor("en", removeOn, time.UTC)
	for i, lang := range locales.Order {
		t.Run(lang, func(t *testing.T) {
			addr := fmt.Sprint(7000 + i)
			got := g.replies(addr)[before[addr]:]
			if len(got) != 1 {
				t.Fatalf("%d replies for the notice, want 1: %+v", len(got), got)
			}
			want := g.noticeFor(lang, removeOn, time.UTC)
			if got[0].Text != want {
				t.Errorf("notice %q, want %q", got[0].Text, want)
			}
			if !strings.Contains(got[0].Text, removeOn.Format("02/01/2006")) {
				t.Errorf("notice %q does not give the date", got[0].Text)
			}
			for _, marker := range []string{"{{", "}}", "<no value>", "\x01", "RetentionNotice"} {
				if strings.Contains(got[0].Text, marker) {
					t.Errorf("notice %q holds %q", got[0].Text, marker)
				}
			}
			if lang != "en" && got[0].Text == english {
				t.Errorf("notice not translated: %q", got[0].Text)
			}
		})
	}
	// A second sweep before the date sends nothing more.
	g.at(removeOn.Add(-time.Minute))
	if rep := g.sweep(t); rep.Notices+rep.Removals != 0 {
		t.Fatalf("before the date: %+v", rep)
	}
	g.at(removeOn)
	if rep := g.sweep(t); rep.Removals != len(locales.Order) {
		t.Fatalf("on the date: %+v, want %d removals", rep, len(locales.Order))
	}
	for i := range locales.Order {
		if g.present(t, fmt.Sprint(7000+i)) {
			t.Errorf("registrant %d still stored", i)
		}
		if n := len(g.withdrawals(t, fmt.Sprint(7000+i))); n != 0 {
			t.Errorf("registrant %d: %d withdrawal events for a registration never completed", i, n)
		}
	}
	if keys, _ := g.s.Due(removeOn.Add(10 * 365 * day)); len(keys) != 0 {
		t.Errorf("due entries left: %d", len(keys))
	}
	checkClean(t, g.s)
}

// checkClean closes the store and runs `checkinbot check` on its file.
func checkClean(t *testing.T, s *boltstore.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := boltstore.Check(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Errorf("check: %v", rep.Problems)
	}
}

// TestRetentionWithdrawn: a real stop is removed Withdrawn after the
// citizen last wrote, told Notice before; the embassy learns it as
// registration.withdrawn with the reason and no personal data; the
// registrant index forgets it.
func TestRetentionWithdrawn(t *testing.T) {
	g := newRetentionRig(t)
	t0 := g.now
	const addr = "7101"
	register(t, g.r, addr)
	g.say(t, addr, "/stop", "yes")
	embassy := g.r.Engine.Directory.EmbassyFor("MY", "KH")
	listed := func() bool {
		page, err := g.s.Registrants(embassy, store.StatusStopped, "", store.MaxPage)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range page.Rows {
			if row.Key == store.UserKey(testkit.Pepper, "telegram", addr) {
				return true
			}
		}
		return false
	}
	if !listed() {
		t.Fatal("the stopped registrant is not in the index")
	}
	n := len(g.replies(addr))
	g.at(t0.Add(retentionPolicy.Withdrawn - retentionPolicy.Notice))
	if rep := g.sweep(t); rep.Notices != 1 {
		t.Fatalf("sweep %+v, want one notice", rep)
	}
	removeOn := t0.Add(retentionPolicy.Withdrawn)
	zone := g.r.Engine.Directory.Countries[0].Location
	for _, c := range g.r.Engine.Directory.Countries {
		if c.Code == "KH" {
			zone = c.Location
		}
	}
	if got := g.replies(addr)[n:]; len(got) != 1 || got[0].Text != g.noticeFor("en", removeOn, zone) {
		t.Fatalf("replies %+v, want the notice", got)
	}
	g.at(removeOn)
	if rep := g.sweep(t); rep.Removals != 1 {
		t.Fatalf("sweep %+v, want one removal", rep)
	}
	if g.present(t, addr) || listed() {
		t.Fatal("the withdrawn registrant was not removed from the store and its index")
	}
	evs := g.withdrawals(t, addr)
	if len(evs) != 1 {
		t.Fatalf("%d registration.withdrawn events, want 1", len(evs))
	}
	e := evs[0]
	if e.Details["reason"] != "retention.withdrawn" || e.Registrant.Name != "" || e.Registrant.Address != "" || e.EmbassyID != embassy {
		t.Errorf("event %+v details %v: want reason retention.withdrawn, no personal data, embassy %s", e.Registrant, e.Details, embassy)
	}
	validateEvent(t, e)
	checkClean(t, g.s)
}

// TestRetentionReplyKeeps: any message after the notice keeps the
// registration, and its clock starts again from that message.
func TestRetentionReplyKeeps(t *testing.T) {
	for _, reply := range []string{"ok", "hi", "/status"} {
		t.Run(reply, func(t *testing.T) {
			g := newRetentionRig(t)
			t0 := g.now
			const addr = "7201"
			register(t, g.r, addr)
			g.say(t, addr, "/stop", "yes")
			g.at(t0.Add(retentionPolicy.Withdrawn - retentionPolicy.Notice))
			if rep := g.sweep(t); rep.Notices != 1 {
				t.Fatalf("sweep %+v", rep)
			}
			replied := t0.Add(retentionPolicy.Withdrawn - day)
			g.at(replied)
			g.say(t, addr, reply)
			g.at(t0.Add(retentionPolicy.Withdrawn + day))
			if rep := g.sweep(t); rep.Notices+rep.Removals != 0 || !g.present(t, addr) {
				t.Fatalf("after a reply: %+v, present %v", rep, g.present(t, addr))
			}
			// The clock restarted at the reply: the next notice is due
			// Withdrawn−Notice after it (for a stopped registrant) or
			// Inactive−Notice (a reply like "ok" may resume check-ins).
			st, _, _ := g.s.Registrant(store.UserKey(testkit.Pepper, "telegram", addr))
			period := retentionPolicy.Inactive
			if st.Status == dialogs.StatusStopped {
				period = retentionPolicy.Withdrawn
			}
			g.at(replied.Add(period - retentionPolicy.Notice - time.Minute))
			if rep := g.sweep(t); rep.Notices != 0 {
				t.Fatalf("notice a minute early: %+v", rep)
			}
		})
	}
}

// TestRetentionHeld: a registration with an open case, under duress
// (do_not_contact), covertly deleted, or showing a covert stop is never
// sent the notice and never removed, however old — each condition alone,
// on an otherwise removable record, so each rule is shown to hold by
// itself; and end to end, a citizen who raised an SOS or used the duress
// keyword is never messaged by retention.
func TestRetentionHeld(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*dialogs.State)
	}{
		{"OpenCase", func(st *dialogs.State) { st.OpenCase = "case_000001" }},
		{"DoNotContact", func(st *dialogs.State) { st.DoNotContact = true }},
		{"Hidden", func(st *dialogs.State) { st.Hidden = &dialogs.Hidden{Channel: "telegram"} }},
		{"CovertStopShown", func(st *dialogs.State) { st.Shown = dialogs.StatusStopped }},
		{"None", func(*dialogs.State) {}}, // the control: removable
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newRetentionRig(t)
			t0 := g.now
			const addr = "7301"
			key := store.UserKey(testkit.Pepper, "telegram", addr)
			st := dialogs.State{Key: key, Channel: "telegram", Address: addr, Lang: "en", Status: dialogs.StatusActive,
				RegisteredAt: t0, Profile: dialogs.Profile{Nationality: "MY", Country: "KH", Name: "Test Name"},
				Retention: dialogs.RetentionMarks{LastSeen: t0}}
			c.set(&st)
			if _, err := g.s.Process(key, "", t0, func(dialogs.State, bool) dialogs.Result { return dialogs.Result{State: st} }); err != nil {
				t.Fatal(err)
			}
			for _, at := range []time.Duration{retentionPolicy.Inactive - retentionPolicy.Notice, retentionPolicy.Inactive, 10 * 365 * day} {
				g.at(t0.Add(at))
				g.sweep(t)
			}
			sent, present := len(g.replies(addr)), g.present(t, addr)
			if c.name == "None" {
				if sent != 1 || present {
					t.Fatalf("control: %d messages, present %v; want the notice and the removal", sent, present)
				}
				return
			}
			if sent != 0 {
				t.Errorf("%d messages sent to a held registrant: %+v", sent, g.replies(addr))
			}
			if !present {
				t.Error("a held registrant was removed")
			}
		})
	}
	for _, c := range []struct{ name, text string }{{"SOS", "sos"}, {"Duress", "ok blue mango"}} {
		t.Run("EndToEnd"+c.name, func(t *testing.T) {
			g := newRetentionRig(t)
			t0 := g.now
			const addr = "7401"
			register(t, g.r, addr)
			g.say(t, addr, c.text)
			n := len(g.replies(addr))
			for _, at := range []time.Duration{retentionPolicy.Inactive - retentionPolicy.Notice, retentionPolicy.Inactive, 10 * 365 * day} {
				g.at(t0.Add(at))
				g.sweep(t)
			}
			if got := g.replies(addr)[n:]; len(got) != 0 {
				t.Errorf("retention messaged the citizen: %+v", got)
			}
			if !g.present(t, addr) || len(g.withdrawals(t, addr)) != 0 {
				t.Error("retention removed the registration")
			}
		})
	}
}

// TestRetentionSweepIsCapped: a sweep stops at the cap and says so; the
// next one goes on; each notice announces a date its full notice period
// after it was sent, however many sweeps it took to reach it.
func TestRetentionSweepIsCapped(t *testing.T) {
	g := newRetentionRig(t)
	bot.SetMaxRetentionActions(t, 2)
	t0 := g.now
	const users = 5
	for i := range users {
		g.say(t, fmt.Sprint(7500+i), "/start", "1", "1")
	}
	at := t0.Add(retentionPolicy.Inactive) // late: every notice is overdue
	var got []int
	for sweep := 0; sweep < 4; sweep++ {
		g.at(at.Add(time.Duration(sweep) * bot.RetentionEvery))
		rep := g.sweep(t)
		got = append(got, rep.Notices)
		if rep.More != (rep.Notices == 2 && sweep < 2) {
			t.Errorf("sweep %d: %+v", sweep, rep)
		}
	}
	if fmt.Sprint(got) != "[2 2 1 0]" {
		t.Fatalf("notices per sweep %v, want [2 2 1 0]", got)
	}
	// Keys are in HMAC order, not address order: compare the dates as a set.
	var on, want []time.Time
	for i := range users {
		st, _, _ := g.s.Registrant(store.UserKey(testkit.Pepper, "telegram", fmt.Sprint(7500+i)))
		on = append(on, st.Retention.RemoveOn)
		want = append(want, at.Add(time.Duration(i/2)*bot.RetentionEvery+retentionPolicy.Notice))
	}
	slices.SortFunc(on, time.Time.Compare)
	if !slices.EqualFunc(on, want, time.Time.Equal) {
		t.Errorf("removal dates %v, want %v (each the full notice period after its sweep)", on, want)
	}
}

// validateEvent checks a recorded event against docs/webhook-event.schema.json
// with ajv, the independent validator webhook's tests use (skipped, as
// there, where node or ajv is not installed).
func validateEvent(t *testing.T, e store.Event) {
	t.Helper()
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs(filepath.Join("..", "webhook", "testdata", "interop"))
	node, err := exec.LookPath("node")
	if _, modErr := os.Stat(filepath.Join(dir, "node_modules", "ajv")); err != nil || modErr != nil {
		t.Log("node or ajv missing: the event is not validated against the schema")
		return
	}
	cmd := exec.Command(node, filepath.Join(dir, "validate-schema.js"), filepath.Join("..", "docs", "webhook-event.schema.json"))
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the event does not match the schema: %v\n%s", err, out)
	}
}
