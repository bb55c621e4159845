package boltstore_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"fmt"
	"github.com/checkinbot/checkinbot/bot"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
)

// TestPreparedWriteSeesOtherWriters extends TestPreparedWriteSeesConflicts
// to the writers that run outside the citizen's turn and do NOT rewrite
// the registrant's record, so `current` lets the prepared bytes through:
// a master-key rotation (re-wraps the data key the record was sealed
// under), an officer's ack, note or resolution of the open case without
// the engine's step (what ResolveCase falls back to), the acknowledgement
// of the citizen's earlier replies (purge rows numbered from the same
// counter, made due), settled purges, a roll call listing the citizen,
// and retention pruning. Each runs between the event's prepare and its
// commit; the store must end exactly as one where it committed first and
// the event ran wholly inside the commit — for a plain check-in, a duress
// one and an SOS, on an encrypted file and a clear one. (For the
// acknowledgement the serial order is the event first: see its entry.)
func TestPreparedWriteSeesOtherWriters(t *testing.T) {
	eng := prepEngine(t)
	embassy := eng.Directory.EmbassyFor("MY", "KH")
	old, next := testKeyring(t, 5), testKeyring(t, 6)
	change := func(a escalation.CaseAction) func(t *testing.T, s *boltstore.Store, key string, now time.Time) {
		return func(t *testing.T, s *boltstore.Store, key string, now time.Time) {
			st, _, err := s.Registrant(key)
			if err != nil || st.OpenCase == "" {
				t.Fatalf("no open case (%v)", err)
			}
			ch := store.CaseChange{Embassy: embassy, CaseID: st.OpenCase, Action: a, By: "officer", Text: "called"}
			if a == escalation.ActionResolve {
				ch.Outcome = escalation.OutcomeSafe
			}
			if _, err := s.ChangeCase(ch, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	conflicts := []struct {
		name   string
		sealed bool // only on an encrypted file
		// eventFirst: the serial order the prepared write must match is
		// the event first, then the other writer (see below).
		eventFirst bool
		run        func(t *testing.T, s *boltstore.Store, key string, now time.Time)
	}{
		{"master key rotated", true, false, func(t *testing.T, s *boltstore.Store, _ string, _ time.Time) {
			if n, err := s.RotateMasterKey(); err != nil || n == 0 {
				t.Fatalf("rotation re-wrapped %d keys (%v)", n, err)
			}
		}},
		{"case acknowledged", false, false, change(escalation.ActionAck)},
		{"case noted", false, false, change(escalation.ActionNote)},
		{"case resolved without the engine's step", false, false, change(escalation.ActionResolve)},
		// The acknowledgement of the citizen's earlier replies, with the
		// ids of sent messages to delete later (purge rows numbered from
		// the counter the event's prepared purge row came from, outside
		// the citizen's turn) and the purge made due. The event's purge
		// row was numbered at prepare, before the ack's rows: the serial
		// order it matches is the event's commit first (rowSeq in
		// sendq.go: purge rows need not follow commit order, and
		// numbering the event's row again would make the stored sequence
		// depend on timing). The rows acknowledged are those queued
		// before the event, in either order.
		{"earlier replies acknowledged", false, true, func(t *testing.T, s *boltstore.Store, key string, now time.Time) {
			all, err := s.PendingSends(key)
			if err != nil {
				t.Fatal(err)
			}
			var items []store.SendItem
			for _, it := range all {
				if it.Created.Before(now) {
					items = append(items, it)
				}
			}
			if len(items) == 0 {
				t.Fatal("no pending row to acknowledge")
			}
			var acks []store.SendAck
			for i, it := range items {
				acks = append(acks, store.SendAck{Seq: it.Seq, UserKey: key, Accepted: true, Purge: true, PurgeAt: now,
					Remember: []store.PurgeRow{{Channel: "telegram", Address: it.Address, MsgID: fmt.Sprintf("sent-%d", i),
						Due: now.Add(time.Hour), Deadline: now.Add(47 * time.Hour)}}})
			}
			if err := s.AckSends(acks); err != nil {
				t.Fatal(err)
			}
		}},
		{"purges settled", false, false, func(t *testing.T, s *boltstore.Store, _ string, _ time.Time) {
			rows, err := s.PurgeRows()
			if err != nil || len(rows) == 0 {
				t.Fatalf("no purge row to settle (%v)", err)
			}
			if err := s.SettlePurges(rows[:1], nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"roll call created", false, false, func(t *testing.T, s *boltstore.Store, key string, now time.Time) {
			if err := s.CreateRollCall(store.RollCall{ID: "rc-review", EmbassyID: embassy, Country: "KH", CreatedAt: now,
				Deadline: now.Add(6 * time.Hour), Members: []string{key}}); err != nil {
				t.Fatal(err)
			}
		}},
		{"retention pruned", false, false, func(t *testing.T, s *boltstore.Store, _ string, now time.Time) {
			if _, err := s.Prune(now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	open := func(t *testing.T, path string, ring *seal.Keyring) *boltstore.Store {
		t.Helper()
		s, err := boltstore.OpenWith(path, boltstore.Options{AuditKey: []byte("prepare-test-audit-key-012345678"), Keyring: ring})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.IndexWith(eng.Directory.EmbassyFor, "prepare-test"); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, sealed := range []bool{true, false} {
		for _, c := range conflicts {
			if c.sealed && !sealed {
				continue
			}
			for _, text := range []string{"ok", "", "/sos"} { // "": the duress keyword
				t.Run(fmt.Sprintf("sealed=%v/%s/%q", sealed, c.name, text), func(t *testing.T) {
					dir := t.TempDir()
					var ring *seal.Keyring
					if sealed {
						ring = old
					}
					paths := []string{filepath.Join(dir, "fast.db"), filepath.Join(dir, "slow.db")}
					g := newPrepGen(11, 1)
					key, cz := g.keys[0], g.users[0]
					{ // registration, then a duress check-in (the open case), all in the commit, under the old key
						fast, slow := open(t, paths[0], ring), open(t, paths[1], ring)
						both := []*boltstore.Store{fast, slow}
						pick := func(int) (dialogs.State, bool, []dialogs.Reply) { return dialogs.State{}, false, nil }
						evs := []prepEvent{}
						for range prepRegistration(cz) {
							evs = append(evs, g.next(pick))
						}
						evs = append(evs, g.citizen(prepEvent{now: g.now.Add(time.Hour), in: dialogs.Input{Kind: dialogs.KindText, Key: key,
							Channel: "telegram", Address: cz.address, Text: cz.keyword}}))
						for _, s := range both {
							s.SetPrepare(false)
							for _, e := range evs {
								if _, err := e.apply(t, eng, s, g.keys); err != nil {
									t.Fatal(err)
								}
							}
							if err := s.Close(); err != nil {
								t.Fatal(err)
							}
						}
					}
					if sealed {
						ring = &seal.Keyring{Current: next.Current, Old: []*seal.MasterKey{old.Current}}
					}
					fast, slow := open(t, paths[0], ring), open(t, paths[1], ring)
					slow.SetPrepare(false)
					if text == "" {
						text = cz.keyword
					}
					e := g.citizen(prepEvent{now: g.now.Add(2 * time.Hour), in: dialogs.Input{Kind: dialogs.KindText, Key: key,
						Channel: "telegram", Address: cz.address, Handle: cz.handle, LangHint: cz.lang, Text: text}})
					if !c.eventFirst {
						c.run(t, slow, key, e.now)
					}
					want, err := e.apply(t, eng, slow, g.keys)
					if err != nil {
						t.Fatal(err)
					}
					if c.eventFirst {
						c.run(t, slow, key, e.now)
					}
					hooked := false
					fast.SetAfterPrepare(func(k string) {
						if !hooked && k == key {
							hooked = true
							c.run(t, fast, key, e.now)
						}
					})
					got, err := e.apply(t, eng, fast, g.keys)
					fast.SetAfterPrepare(nil)
					if err != nil {
						t.Fatal(err)
					}
					if !hooked {
						t.Fatal("the event was not prepared: the other writer never ran between prepare and commit")
					}
					for i := range min(len(got.Sends), len(want.Sends)) {
						got.Sends[i].Seq = want.Sends[i].Seq // numbers may skip
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("outcomes differ\nprepared:    %+v\nwriter first: %+v", got, want)
					}
					compareStores(t, fast, slow, g.keys, embassy, false)
					if c.name == "roll call created" {
						x, _, xerr := fast.RollCallMember("rc-review", key)
						y, _, yerr := slow.RollCallMember("rc-review", key)
						if x != y || xerr != nil || yerr != nil {
							t.Errorf("roll-call member state: prepared %v (%v), writer first %v (%v)", x, xerr, y, yerr)
						}
					}
					p, f := fast.PrepareCounts()
					t.Logf("%d applied prepared, %d fell back", p, f)
				})
			}
		}
	}
}

// TestRunnerPreparedWritesLoseNothing drives the real runner, engine and
// an encrypted bbolt file with many citizens at once — each citizen's
// messages in order, plain and duress check-ins alternating — so events
// are prepared in parallel in the callers' goroutines (the engine now
// runs concurrently, which it never did inside the one commit goroutine;
// run with -race) and committed in shared groups. Every duress check-in
// must leave its duress.triggered event, in the registrant's one open
// case, and every message the same replies as a plain check-in: nothing
// lost, nothing that differs with duress.
func TestRunnerPreparedWritesLoseNothing(t *testing.T) {
	const users, msgs = 6, 16
	s := openSealed(t)
	sc := newScript(t, s)
	var cs []citizen
	for u := range users {
		c := newCitizen("en", 80+u)
		sc.register(c)
		cs = append(cs, c)
	}
	// One plain check-in alone: the replies every message must get.
	before := len(sc.chat.last(cs[0].address))
	sc.say(cs[0], "ok")
	perMsg := len(sc.chat.last(cs[0].address)) - before
	if perMsg == 0 {
		t.Fatal("a check-in got no reply")
	}
	sc.mu.Lock()
	sc.events = nil
	sc.mu.Unlock()
	p0, _ := s.PrepareCounts()
	var wg sync.WaitGroup
	var msgID atomic.Int64
	start := make([]int, users)
	for u, c := range cs {
		start[u] = len(sc.chat.last(c.address))
		wg.Go(func() {
			for i := range msgs {
				text := "ok"
				if i%2 == 1 {
					text = c.keyword
				}
				n := msgID.Add(1)
				in := bot.Inbound{Channel: "telegram", Address: c.address, MessageID: fmt.Sprintf("c%d", n), DeleteID: fmt.Sprintf("%d", 500000+n),
					Handle: c.handle, LangHint: c.lang, Kind: dialogs.KindText, Text: text}
				if err := sc.runner.Handle(context.Background(), in); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := sc.runner.DrainReplies(context.Background()); err != nil {
		t.Fatal(err)
	}
	sc.mu.Lock()
	events := slices.Clone(sc.events)
	sc.mu.Unlock()
	duress := map[string][]string{} // case → event ids
	for _, ev := range events {
		if ev.Type != dialogs.EventDuressTriggered {
			t.Errorf("unexpected %s event from a check-in", ev.Type)
			continue
		}
		duress[ev.CaseID] = append(duress[ev.CaseID], ev.ID)
	}
	box, err := s.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, ev := range box {
		if ev.Type == dialogs.EventDuressTriggered {
			stored++
		}
	}
	for u, c := range cs {
		st, _, err := s.Registrant(store.UserKey(privacyPepper, "telegram", c.address))
		if err != nil {
			t.Fatal(err)
		}
		if st.OpenCase == "" || len(duress[st.OpenCase]) != msgs/2 {
			t.Errorf("citizen %d: open case %q holds %d duress events, want %d (one per duress check-in)", u, st.OpenCase, len(duress[st.OpenCase]), msgs/2)
		}
		if got := len(sc.chat.last(c.address)) - start[u]; got != msgs*perMsg {
			t.Errorf("citizen %d: %d replies to %d messages, want %d each", u, got, msgs, perMsg)
		}
	}
	if len(duress) != users || stored != users*msgs/2 {
		t.Errorf("%d cases and %d duress events stored, want %d and %d", len(duress), stored, users, users*msgs/2)
	}
	if p, _ := s.PrepareCounts(); p-p0 < users*msgs/2 {
		t.Errorf("only %d of %d writes applied prepared: the prepared path was not what ran", p-p0, users*msgs)
	}
}

// TestPreparedPathFaults: what can go wrong around a prepared write must
// end as it did before preparing existed — a handler that panics fails
// the event with ErrBadEvent and writes nothing (it runs once ahead and
// once in the commit, never more); a store that cannot write fails it
// without running the handler, and the event written once the fault is
// gone is applied prepared and complete; a closed store fails it with
// ErrClosed without running the handler; closing while events are being
// prepared never panics and leaves every acknowledged event stored.
func TestPreparedPathFaults(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	env := func(i int) *store.Envelope {
		return &store.Envelope{Channel: "telegram", Address: "7701", DeleteID: strconv.Itoa(i), DeleteBy: now.Add(47 * time.Hour)}
	}
	var runs atomic.Int64
	mark := func(m string) store.Handler {
		return func(prev dialogs.State, _ bool) dialogs.Result {
			runs.Add(1)
			prev.Key, prev.Status = "user-f", dialogs.StatusActive
			prev.Profile.City += m
			return dialogs.Result{State: prev, Replies: []dialogs.Reply{{Text: "ok " + m}}, DeleteInbound: true, Audit: []string{"checkin"}}
		}
	}
	rows := func(t *testing.T, s *boltstore.Store) (int, int, string) {
		t.Helper()
		items, err := s.PendingSends("user-f")
		if err != nil {
			t.Fatal(err)
		}
		purges, err := s.PurgeRows()
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := s.Registrant("user-f")
		if err != nil {
			t.Fatal(err)
		}
		return len(items), len(purges), st.Profile.City
	}
	for _, sealed := range []bool{true, false} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) {
			s, opt := openSealedOrClear(t, sealed)
			if _, err := s.ProcessSend("user-f", "telegram:0", now, env(0), mark("a")); err != nil {
				t.Fatal(err)
			}
			q0, p0, city0 := rows(t, s)

			runs.Store(0)
			_, err := s.ProcessSend("user-f", "telegram:1", now, env(1), func(prev dialogs.State, _ bool) dialogs.Result {
				runs.Add(1)
				replies := prev.Profile.City[:len(prev.Profile.City)+1] // a runtime panic, as a bug in the engine would raise
				return dialogs.Result{State: prev, Replies: []dialogs.Reply{{Text: replies}}}
			})
			if !errors.Is(err, store.ErrBadEvent) {
				t.Errorf("a panicking handler: %v, want ErrBadEvent", err)
			}
			if n := runs.Load(); n != 2 {
				t.Errorf("a panicking handler ran %d times, want twice (prepared, then in the commit to report it)", n)
			}
			if q, p, city := rows(t, s); q != q0 || p != p0 || city != city0 {
				t.Errorf("a panicking event wrote something: %d/%d rows (were %d/%d), record %q (was %q)", q, p, q0, p0, city, city0)
			}

			runs.Store(0)
			s.SetWriteFault(errors.New("disk full"))
			if _, err := s.ProcessSend("user-f", "telegram:2", now, env(2), mark("b")); err == nil || errors.Is(err, store.ErrBadEvent) {
				t.Errorf("a write fault: %v, want the store's error (not ErrBadEvent: the update must come again)", err)
			}
			s.SetWriteFault(nil)
			if n := runs.Load(); n != 0 {
				t.Errorf("the handler ran %d times for a store that cannot write", n)
			}
			p1, _ := s.PrepareCounts()
			out, err := s.ProcessSend("user-f", "telegram:2", now, env(2), mark("b"))
			if err != nil || out.Duplicate || len(out.Sends) != 1 || out.Purges != 1 {
				t.Fatalf("the update again once the disk has room: %+v, %v", out, err)
			}
			if p2, _ := s.PrepareCounts(); p2 != p1+1 {
				t.Errorf("the retried update was not applied prepared (%d → %d)", p1, p2)
			}
			if q, p, city := rows(t, s); q != q0+1 || p != p0+1 || city != city0+"b" {
				t.Errorf("after the retried update: %d/%d rows, record %q; want %d/%d, %q", q, p, city, q0+1, p0+1, city0+"b")
			}

			// Close while citizens' events are being prepared: each ends
			// stored or with ErrClosed, never a panic, nothing half-written.
			var wg sync.WaitGroup
			var ok atomic.Int64
			for u := range 8 {
				wg.Go(func() {
					key := fmt.Sprintf("user-c%d", u)
					for i := 0; ; i++ {
						_, err := s.ProcessSend(key, fmt.Sprintf("telegram:c%d-%d", u, i), now, env(i), func(prev dialogs.State, _ bool) dialogs.Result {
							prev.Key, prev.Status = key, dialogs.StatusActive
							prev.Profile.City += "c"
							return dialogs.Result{State: prev, Replies: []dialogs.Reply{{Text: "ok"}}}
						})
						if errors.Is(err, store.ErrClosed) {
							return
						}
						if err != nil {
							t.Errorf("%s: %v", key, err)
							return
						}
						ok.Add(1)
					}
				})
			}
			for ok.Load() < 200 {
				time.Sleep(time.Millisecond)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			runs.Store(0)
			if _, err := s.ProcessSend("user-f", "telegram:3", now, env(3), mark("c")); !errors.Is(err, store.ErrClosed) {
				t.Errorf("an event on a closed store: %v, want ErrClosed", err)
			}
			if n := runs.Load(); n != 0 {
				t.Errorf("the handler ran %d times on a closed store", n)
			}
			s, err = boltstore.OpenWith(s.Path(), opt)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			total := 0
			for u := range 8 {
				key := fmt.Sprintf("user-c%d", u)
				st, _, err := s.Registrant(key)
				if err != nil {
					t.Fatal(err)
				}
				items, err := s.PendingSends(key)
				if err != nil {
					t.Fatal(err)
				}
				if len(items) != len(st.Profile.City) {
					t.Errorf("%s: %d events in the record, %d replies queued", key, len(st.Profile.City), len(items))
				}
				total += len(st.Profile.City)
			}
			if int64(total) != ok.Load() {
				t.Errorf("%d events acknowledged before the close, %d stored", ok.Load(), total)
			}
		})
	}
}
