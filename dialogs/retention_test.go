package dialogs_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/errs"
)

const day = 24 * time.Hour

// simRegistrant is one generated registrant and what happened to it.
type simRegistrant struct {
	st       dialogs.State
	held     bool
	messages map[int]bool // days on which the citizen writes, at noon
	lastMsg  time.Time    // its last sign of life so far
	noticeAt time.Time    // the outstanding notice, if any
	purged   time.Time
	notices  int
}

// TestRetentionRulesHold simulates 400 generated registrants — every
// status, reachable or not, each held condition, old records without the
// last-seen mark, messages on random days — through 200 days of daily
// sweeps that do what bot.SweepRetention does, and checks the contract on
// every step: a held registrant is never messaged nor removed; a reachable
// one is removed only after a notice at least Notice old with no message
// since; nobody is removed before their period ran out; every notice is
// the catalog's text in the citizen's language with its date; a removal of
// a completed registration tells the embassy, with the reason and nothing
// personal; and nobody removable is left at the end.
func TestRetentionRulesHold(t *testing.T) {
	e := newEngine(t)
	pol := dialogs.Retention{Withdrawn: 30 * day, Inactive: 60 * day, Notice: 7 * day}
	e.Policy.Retention = pol
	rng := rand.New(rand.NewPCG(13, 5))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	langs := e.Catalog.Languages()
	statuses := []dialogs.Status{dialogs.StatusNew, dialogs.StatusActive, dialogs.StatusPaused, dialogs.StatusStopped}
	const days = 200
	regs := make([]*simRegistrant, 400)
	for i := range regs {
		r := &simRegistrant{messages: map[int]bool{}}
		st := dialogs.State{Key: fmt.Sprintf("user-%03d", i), Lang: langs[rng.IntN(len(langs))].Tag, Status: statuses[rng.IntN(len(statuses))],
			Profile: dialogs.Profile{Nationality: "MY", Country: "KH", Name: "Someone"}}
		if rng.IntN(10) < 8 {
			st.Channel, st.Address = "telegram", fmt.Sprint(1000+i)
		}
		start := t0.Add(time.Duration(rng.IntN(20*24)) * time.Hour)
		switch rng.IntN(3) {
		case 0:
			st.Retention.LastSeen = start
		case 1:
			st.LastCheckin = start // a record from before the last-seen mark
		default:
			st.ConsentAt = start
		}
		if st.Status != dialogs.StatusNew {
			st.RegisteredAt = st.ConsentAt
		}
		switch rng.IntN(10) {
		case 0:
			st.OpenCase = "case_000001"
		case 1:
			st.DoNotContact, st.OpenCase = true, "case_000002"
		case 2:
			st.DoNotContact = true
		case 3:
			st.Hidden = &dialogs.Hidden{Channel: "telegram"}
		}
		r.held = dialogs.RetentionHeld(st)
		r.lastMsg = start
		for range rng.IntN(3) {
			r.messages[rng.IntN(days)] = true
		}
		r.st = st
		regs[i] = r
	}
	period := func(st dialogs.State) time.Duration {
		if st.Status == dialogs.StatusStopped {
			return pol.Withdrawn
		}
		return pol.Inactive
	}
	for d := 0; d < days; d++ {
		for _, r := range regs {
			if !r.purged.IsZero() {
				continue
			}
			sweep := t0.Add(time.Duration(d) * day)
			if dialogs.RetentionHeld(r.st) != r.held {
				t.Fatalf("%s: held changed", r.st.Key)
			}
			if pol.Step(r.st, sweep) != dialogs.RetentionKeep {
				before := r.st
				res := e.Handle(r.st, dialogs.Input{Kind: dialogs.KindRetention, Key: r.st.Key}, sweep)
				r.checkRetention(t, e, pol, before, res, sweep, period(before))
			}
			if r.messages[d] {
				at := sweep.Add(12 * time.Hour)
				res := e.Handle(r.st, dialogs.Input{Kind: dialogs.KindText, Key: r.st.Key, Channel: "telegram", Address: fmt.Sprint(r.st.Key), Text: "hello"}, at)
				if !res.State.Retention.RemoveOn.IsZero() || !res.State.Retention.LastSeen.Equal(at) {
					t.Fatalf("%s: a message left retention marks %+v", r.st.Key, res.State.Retention)
				}
				r.st, r.lastMsg, r.noticeAt = res.State, at, time.Time{}
				if res.Erase {
					r.purged = at // declined consent and the like: not retention's doing
				}
			}
		}
	}
	end := t0.Add(days * day)
	removed, notices := 0, 0
	for _, r := range regs {
		notices += r.notices
		if !r.purged.IsZero() {
			removed++
			continue
		}
		if !r.held && end.Sub(r.lastMsg) > period(r.st)+pol.Notice+2*day {
			t.Errorf("%s: removable (last sign of life %s) but kept", r.st.Key, r.lastMsg)
		}
	}
	t.Logf("%d registrants, %d removed, %d notices sent", len(regs), removed, notices)
	if removed == 0 || removed == len(regs) || notices == 0 {
		t.Fatalf("%d of %d removed: the generator does not exercise both outcomes", removed, len(regs))
	}
}

// checkRetention checks one KindRetention result against the contract.
func (r *simRegistrant) checkRetention(t *testing.T, e *dialogs.Engine, pol dialogs.Retention, before dialogs.State, res dialogs.Result, now time.Time, period time.Duration) {
	t.Helper()
	key := before.Key
	if r.held && (len(res.Replies) > 0 || res.Erase || len(res.Escalations) > 0) {
		t.Fatalf("%s: held (case %q, dnc %v, hidden %v) but retention acted: %+v", key, before.OpenCase, before.DoNotContact, before.Hidden != nil, res)
	}
	reachable := before.Channel != "" && before.Address != ""
	switch {
	case res.Erase:
		if now.Before(r.lastMsg.Add(period)) {
			t.Fatalf("%s: removed at %s, before its period ran out (%s + %s)", key, now, r.lastMsg, period)
		}
		if reachable && (r.noticeAt.IsZero() || now.Sub(r.noticeAt) < pol.Notice) {
			t.Fatalf("%s: removed at %s with notice at %v (want ≥ %s before)", key, now, r.noticeAt, pol.Notice)
		}
		if len(res.Replies) != 0 {
			t.Fatalf("%s: a removal sent %d replies", key, len(res.Replies))
		}
		want := 0
		if before.Registered() {
			want = 1
		}
		if len(res.Escalations) != want {
			t.Fatalf("%s: %d escalations on removal, want %d", key, len(res.Escalations), want)
		}
		for _, esc := range res.Escalations {
			reason := "retention.inactive"
			if before.Status == dialogs.StatusStopped {
				reason = "retention.withdrawn"
			}
			v := esc.Registrant
			if esc.Type != dialogs.EventRegistrationWithdrawn || esc.Details["reason"] != reason || v.Name != "" || v.Address != "" || v.Country != "" {
				t.Fatalf("%s: removal event %+v", key, esc)
			}
		}
		r.purged = now
	case len(res.Replies) > 0:
		if !reachable || len(res.Replies) != 1 || len(res.Escalations) != 0 {
			t.Fatalf("%s: notice %+v to reachable=%v", key, res, reachable)
		}
		on := res.State.Retention.RemoveOn
		if on.Sub(now) < pol.Notice || on.Before(r.lastMsg.Add(period)) {
			t.Fatalf("%s: notice at %s announces %s", key, now, on)
		}
		zone := time.UTC
		for _, c := range e.Directory.Countries {
			if c.Code == before.Profile.Country && c.Location != nil {
				zone = c.Location
			}
		}
		if want := e.Catalog.Text(before.Lang, "RetentionNotice", map[string]any{"Date": on.In(zone).Format("02/01/2006")}); res.Replies[0].Text != want {
			t.Fatalf("%s: notice %q, want %q", key, res.Replies[0].Text, want)
		}
		r.noticeAt = now
		r.notices++
	default:
		t.Fatalf("%s: the sweep proposed %v but the engine did nothing", key, pol.Step(before, now))
	}
	r.st = res.State
}

// TestRetentionValidate: every inconsistent policy is refused naming its
// key; the zero policy (retention off) and sound ones pass.
func TestRetentionValidate(t *testing.T) {
	for _, c := range []struct {
		r   dialogs.Retention
		key string
	}{
		{dialogs.Retention{}, ""},
		{dialogs.Retention{Withdrawn: 30 * day, Inactive: 180 * day, Notice: 14 * day}, ""},
		{dialogs.Retention{Inactive: 180 * day}, ""},
		{dialogs.Retention{Withdrawn: -1}, "withdrawn"},
		{dialogs.Retention{Inactive: -1}, "inactive"},
		{dialogs.Retention{Notice: -1}, "notice"},
		{dialogs.Retention{Withdrawn: 10 * day, Notice: 10 * day}, "notice"},
		{dialogs.Retention{Inactive: 10 * day, Notice: 11 * day}, "notice"},
	} {
		err := c.r.Validate()
		got := ""
		var pe *errs.Error
		if errors.As(err, &pe) {
			got = pe.Key
		} else if err != nil {
			got = "not an *errs.Error"
		}
		if got != c.key {
			t.Errorf("%+v: error %v (key %q), want key %q", c.r, err, got, c.key)
		}
	}
}
