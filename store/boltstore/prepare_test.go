package boltstore_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// The prepared path (prepare.go) must be an optimisation only: a store
// that prepares writes outside the commit and one that runs every write
// inside it, given the same events, must end with the same records,
// outbox, send queue, purge list, cases, index, counters and due timers,
// and both audit chains must verify.

// prepEngine is the engine on the real locales and built-in configuration.
func prepEngine(t *testing.T) *dialogs.Engine {
	t.Helper()
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	return &dialogs.Engine{Catalog: cat, Directory: cfg.Directory(), Policy: cfg.Policy(), Pepper: privacyPepper}
}

// prepStore opens an encrypted (or clear) store with an audit key and the
// engine's index router.
func prepStore(t *testing.T, eng *dialogs.Engine, name string, sealed bool) *boltstore.Store {
	t.Helper()
	opt := boltstore.Options{AuditKey: []byte("prepare-test-audit-key-012345678")}
	if sealed {
		opt.Keyring = testKeyring(t, 9)
	}
	s, err := boltstore.OpenWith(filepath.Join(t.TempDir(), name), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.IndexWith(eng.Directory.EmbassyFor, "prepare-test"); err != nil {
		t.Fatal(err)
	}
	return s
}

// prepEvent is one event of a generated sequence.
type prepEvent struct {
	user      int
	in        dialogs.Input
	inboundID string
	now       time.Time
	resolve   string // resolve this case (ResolveCase) instead of an input
}

// apply runs e on s as the runner would (its handler: no record is made
// for a timer or notice about someone without one) and returns the
// outcome with event ids blanked (they are random).
func (e prepEvent) apply(t *testing.T, eng *dialogs.Engine, s *boltstore.Store, keys []string) (store.Outcome, error) {
	t.Helper()
	key := keys[e.user]
	env := &store.Envelope{Channel: "telegram", Address: e.in.Address, Scheduled: e.in.Kind == dialogs.KindTimer}
	if e.inboundID != "" {
		env.DeleteID, env.DeleteBy = e.inboundID, e.now.Add(48*time.Hour)
	}
	h := func(prev dialogs.State, found bool) dialogs.Result {
		if !found && !citizenInput(e.in.Kind) {
			return dialogs.Result{State: prev, Erase: true}
		}
		return eng.Handle(prev, e.in, e.now)
	}
	var out store.Outcome
	var err error
	if e.resolve != "" {
		_, out, err = s.ResolveCase(store.CaseChange{Embassy: eng.Directory.EmbassyFor("MY", "KH"), CaseID: e.resolve, Action: escalation.ActionResolve, By: "test",
			Outcome: escalation.OutcomeSafe}, key, e.now, env, h)
	} else {
		out, err = s.ProcessSend(key, e.inboundID, e.now, env, h)
	}
	for i := range out.Events {
		out.Events[i].ID = ""
	}
	return out, err
}

func citizenInput(k dialogs.InputKind) bool {
	return k == dialogs.KindText || k == dialogs.KindButton || k == dialogs.KindLocation || k == dialogs.KindMedia
}

// prepGen generates events for users: registrations first (interleaved),
// then a random mix of check-ins, duress check-ins, SOS, settings,
// pausing, stopping, deleting (plain and covert), button presses, timers
// fired at their due time, case resolutions and redeliveries.
type prepGen struct {
	rng     *rand.Rand
	users   []citizen
	keys    []string
	regStep []int
	now     time.Time
	msg     int
	lastIDs []string
}

var prepRegistration = func(c citizen) []string {
	return []string{"/start", c.lang, "1", "MY", "KH", c.city, c.name, c.passport, c.employer,
		c.contact + " " + c.phone, "24h", "09:00", c.keyword, c.keyword, "1"}
}

func newPrepGen(seed uint64, users int) *prepGen {
	g := &prepGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)}
	for u := range users {
		c := newCitizen("en", 60+u)
		g.users = append(g.users, c)
		g.keys = append(g.keys, store.UserKey(privacyPepper, "telegram", c.address))
		g.regStep = append(g.regStep, 0)
	}
	return g
}

// next is the next event; st is the user's stored state (from the
// all-in-commit store), replies the last replies that user received.
func (g *prepGen) next(pick func(user int) (dialogs.State, bool, []dialogs.Reply)) prepEvent {
	g.now = g.now.Add(time.Duration(g.rng.IntN(90)) * time.Minute)
	u := g.rng.IntN(len(g.users))
	c := g.users[u]
	st, found, replies := pick(u)
	e := prepEvent{user: u, now: g.now}
	e.in = dialogs.Input{Kind: dialogs.KindText, Key: g.keys[u], Channel: "telegram", Address: c.address, Handle: c.handle,
		LangHint: c.lang, Random: []byte(fmt.Sprintf("random-%d", g.msg))}
	if reg := prepRegistration(c); g.regStep[u] < len(reg) && (!found || !st.Registered()) {
		e.in.Text = reg[g.regStep[u]]
		g.regStep[u]++
		return g.citizen(e)
	}
	switch r := g.rng.IntN(100); {
	case r < 25:
		e.in.Text = []string{"ok", "/checkin", "safe"}[g.rng.IntN(3)]
	case r < 33:
		e.in.Text = c.keyword // a duress check-in
	case r < 37:
		e.in.Text = []string{"/sos", "help"}[g.rng.IntN(2)]
	case r < 55:
		var buttons []dialogs.Button
		for _, rep := range replies {
			buttons = append(buttons, rep.Buttons...)
		}
		if len(buttons) == 0 {
			e.in.Text = "1"
			break
		}
		e.in.Kind, e.in.Text = dialogs.KindButton, buttons[g.rng.IntN(len(buttons))].Data
	case r < 63:
		e.in.Text = []string{"/settings", "/status", "/mydata", "/language", "/pause", "/stop", "/menu", "1", "2", "3", "no", "yes",
			"10:30", "48h", "Kampot"}[g.rng.IntN(15)]
	case r < 66:
		e.in.Text = []string{"/delete", "/delete " + c.keyword, "/stop " + c.keyword}[g.rng.IntN(3)]
	case r < 69:
		e.in.Kind, e.in.Lat, e.in.Lon = dialogs.KindLocation, c.lat, c.lon
	case r < 71:
		e.in.Kind = dialogs.KindMedia
	case r < 85:
		// The user's timer, fired when due.
		if at := st.DueAt(); found && !at.IsZero() {
			if at.After(g.now) {
				g.now = at
			}
			e.now = g.now
			e.in = dialogs.Input{Kind: dialogs.KindTimer, Key: g.keys[u], Channel: "telegram", Address: c.address}
			return e
		}
		e.in.Text = "ok"
	case r < 90:
		if found && st.OpenCase != "" {
			e.resolve = st.OpenCase
			e.in = dialogs.Input{Kind: dialogs.KindCaseResolved, Key: g.keys[u], CaseID: st.OpenCase, Channel: "telegram", Address: c.address}
			return e
		}
		e.in.Text = "ok"
	case r < 94:
		if found && st.Registered() {
			e.in = dialogs.Input{Kind: dialogs.KindPromptDelivered, Key: g.keys[u], Channel: "telegram", Address: c.address}
			return e
		}
		e.in.Text = "ok"
	default:
		if len(g.lastIDs) > 0 { // a redelivered update
			e = g.citizen(e)
			e.inboundID = g.lastIDs[g.rng.IntN(len(g.lastIDs))]
			return e
		}
		e.in.Text = "ok"
	}
	return g.citizen(e)
}

// citizen gives a citizen's message a fresh update id.
func (g *prepGen) citizen(e prepEvent) prepEvent {
	g.msg++
	e.inboundID = "telegram:u" + strconv.Itoa(g.msg)
	g.lastIDs = append(g.lastIDs, e.inboundID)
	return e
}

// TestPreparedPathEquivalent runs random event sequences through a store
// that prepares writes outside the commit and one that runs them all
// inside it, and compares every outcome and, at the end, everything
// stored — for encrypted and clear files.
func TestPreparedPathEquivalent(t *testing.T) {
	eng := prepEngine(t)
	steps := 400
	if testing.Short() {
		steps = 120
	}
	for _, sealed := range []bool{true, false} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("sealed=%v/seed=%d", sealed, seed), func(t *testing.T) {
				fast, slow := prepStore(t, eng, "fast.db", sealed), prepStore(t, eng, "slow.db", sealed)
				slow.SetPrepare(false)
				g := newPrepGen(seed, 5)
				last := make([][]dialogs.Reply, len(g.users))
				pick := func(u int) (dialogs.State, bool, []dialogs.Reply) {
					st, found, err := slow.Registrant(g.keys[u])
					if err != nil {
						t.Fatal(err)
					}
					return st, found, last[u]
				}
				for i := range steps {
					e := g.next(pick)
					want, werr := e.apply(t, eng, slow, g.keys)
					got, gerr := e.apply(t, eng, fast, g.keys)
					if werr != nil || gerr != nil {
						t.Fatalf("step %d (kind %d): all in commit: %v; prepared: %v", i, e.in.Kind, werr, gerr)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("step %d (kind %d): outcomes differ\nprepared:       %+v\nall in commit: %+v", i, e.in.Kind, got, want)
					}
					if len(want.Result.Replies) > 0 {
						last[e.user] = want.Result.Replies
					}
					if (i+1)%10 == 0 {
						compareStores(t, fast, slow, g.keys, eng.Directory.EmbassyFor("MY", "KH"), false)
						if t.Failed() {
							t.Fatalf("after step %d", i)
						}
					}
				}
				compareStores(t, fast, slow, g.keys, eng.Directory.EmbassyFor("MY", "KH"), true)
				prepared, fellBack := fast.PrepareCounts()
				if prepared < int64(steps)/2 || fellBack != 0 {
					t.Errorf("prepared store: %d writes applied prepared, %d fell back, of %d events: the prepared path was not what ran", prepared, fellBack, steps)
				}
				if p, f := slow.PrepareCounts(); p+f != 0 {
					t.Errorf("all-in-commit store prepared %d writes", p+f)
				}
			})
		}
	}
}

// compareStores fails the test unless a and b hold the same state for
// keys (event ids aside, which are random); final also fails it when
// what was compared is empty (a sequence too poor to test anything).
func compareStores(t *testing.T, a, b *boltstore.Store, keys []string, embassy string, final bool) {
	t.Helper()
	same := func(what string, x, y any) {
		t.Helper()
		if !reflect.DeepEqual(x, y) {
			t.Errorf("%s differs:\n  %+v\n  %+v", what, x, y)
		}
	}
	both := func(f func(s *boltstore.Store) (any, error)) (any, any) {
		t.Helper()
		x, err := f(a)
		if err != nil {
			t.Fatal(err)
		}
		y, err := f(b)
		if err != nil {
			t.Fatal(err)
		}
		return x, y
	}
	cases := map[string]bool{}
	for i, k := range keys {
		x, y := both(func(s *boltstore.Store) (any, error) {
			st, found, err := s.Registrant(k)
			return struct {
				Found bool
				State dialogs.State
			}{found, st}, err
		})
		same(fmt.Sprintf("user %d's record", i), x, y)
	}
	x, y := both(func(s *boltstore.Store) (any, error) {
		box, err := s.Outbox()
		for i := range box {
			box[i].ID = ""
			if box[i].CaseID != "" {
				cases[box[i].CaseID] = true
			}
		}
		return box, err
	})
	same("outbox", x, y)

	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range cases {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		x, y := both(func(s *boltstore.Store) (any, error) {
			c, found, err := s.CaseByID(id)
			return struct {
				Found bool
				Case  store.Case
			}{found, c}, err
		})
		same("case "+id, x, y)
	}
	x, y = both(func(s *boltstore.Store) (any, error) {
		// Sequence numbers may skip (a prepared write that fell back is
		// numbered again): what must agree is each citizen's rows in order.
		items, err := s.PendingSends("")
		rank := map[string]uint64{}
		for i := range items {
			rank[items[i].UserKey]++
			items[i].Seq = rank[items[i].UserKey]
		}
		return items, err
	})
	same("send queue", x, y)
	if final && reflect.ValueOf(x).Len() == 0 {
		t.Errorf("the send queue is empty: replies were not compared")
	}
	if final && len(cases) == 0 {
		t.Errorf("no case was opened: case assignment was not compared")
	}
	x, y = both(func(s *boltstore.Store) (any, error) {
		rows, err := s.PurgeRows() // numbered like the send queue
		rank := map[string]int{}
		for i := range rows {
			rank[rows[i].UserKey]++
			rows[i].Key = []byte(fmt.Sprintf("%s#%d", rows[i].UserKey, rank[rows[i].UserKey]))
		}
		return rows, err
	})
	same("purge list", x, y)
	x, y = both(func(s *boltstore.Store) (any, error) { return s.Due(time.Unix(1<<40, 0)) })
	same("due index", x, y)
	x, y = both(func(s *boltstore.Store) (any, error) {
		st, err := s.Stats()
		st.AuditHead.Hash = "" // the entries' reasons name the random event ids
		return st, err
	})
	same("counters", x, y)
	listed := 0
	for _, status := range []store.RegistrantStatus{store.StatusOverdue, store.StatusActive, store.StatusPaused, store.StatusStopped} {
		x, y = both(func(s *boltstore.Store) (any, error) { return s.Registrants(embassy, status, "", store.MaxPage) })
		same("index rows "+string(status), x, y)
		listed += len(x.(store.RegistrantPage).Rows)
	}
	if final && listed == 0 {
		t.Errorf("no registrant is listed under %q: the index rows were not compared", embassy)
	}
	x, y = both(func(s *boltstore.Store) (any, error) { n, err := s.VerifyAudit(); return n, err })
	same("audit entries", x, y)
}

// TestPreparedWriteSeesConflicts: a write that touches the registrant
// between an event's prepare and its commit — another write of the
// record, an officer resolving their case, an erasure, an index rebuilt
// under another router — must make the commit fall back to running the
// event on the fresh record. The store must end exactly as one where the
// conflicting write committed first and the event ran wholly inside the
// commit: nothing lost, no stale record written over the other write.
func TestPreparedWriteSeesConflicts(t *testing.T) {
	eng := prepEngine(t)
	conflicts := []struct {
		name string
		run  func(t *testing.T, s *boltstore.Store, key string, now time.Time)
	}{
		{"record changed", func(t *testing.T, s *boltstore.Store, key string, now time.Time) {
			st, _, err := s.Registrant(key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.ProcessSend(key, "", now, &store.Envelope{Channel: "telegram", Address: st.Address}, func(prev dialogs.State, _ bool) dialogs.Result {
				prev.Profile.City = "Kampot, written meanwhile"
				return dialogs.Result{State: prev, Audit: []string{"changed"}, Replies: []dialogs.Reply{{Text: "changed meanwhile"}}}
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"case resolved", func(t *testing.T, s *boltstore.Store, key string, now time.Time) {
			st, _, err := s.Registrant(key)
			if err != nil || st.OpenCase == "" {
				t.Fatalf("no open case to resolve (%v)", err)
			}
			in := dialogs.Input{Kind: dialogs.KindCaseResolved, Key: key, CaseID: st.OpenCase}
			_, _, err = s.ResolveCase(store.CaseChange{Embassy: eng.Directory.EmbassyFor("MY", "KH"), CaseID: st.OpenCase, Action: escalation.ActionResolve, By: "test",
				Outcome: escalation.OutcomeSafe}, key, now, &store.Envelope{Channel: "telegram", Address: st.Address},
				func(prev dialogs.State, _ bool) dialogs.Result { return eng.Handle(prev, in, now) })
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"erased", func(t *testing.T, s *boltstore.Store, key string, now time.Time) {
			_, err := s.Process(key, "", now, func(prev dialogs.State, _ bool) dialogs.Result {
				return dialogs.Result{State: prev, Erase: true, Audit: []string{"erased"}}
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"index rebuilt", func(t *testing.T, s *boltstore.Store, key string, now time.Time) {
			if err := s.IndexWith(func(string, string) string { return "elsewhere" }, "rebuilt"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, sealed := range []bool{true, false} {
		for _, c := range conflicts {
			for _, text := range []string{"ok", "", "/sos"} { // "": the duress keyword
				t.Run(fmt.Sprintf("sealed=%v/%s/%q", sealed, c.name, text), func(t *testing.T) {
					fast, slow := prepStore(t, eng, "fast.db", sealed), prepStore(t, eng, "slow.db", sealed)
					slow.SetPrepare(false)
					g := newPrepGen(7, 1)
					key, cz := g.keys[0], g.users[0]
					for _, s := range []*boltstore.Store{fast, slow} {
						s.SetPrepare(false) // registration and the duress check-in: no hook, no prepare
					}
					pick := func(int) (dialogs.State, bool, []dialogs.Reply) { return dialogs.State{}, false, nil }
					for range prepRegistration(cz) {
						e := g.next(pick)
						for _, s := range []*boltstore.Store{fast, slow} {
							if _, err := e.apply(t, eng, s, g.keys); err != nil {
								t.Fatal(err)
							}
						}
					}
					if c.name == "case resolved" { // a duress check-in opens the case to resolve
						e := g.citizen(prepEvent{now: g.now.Add(time.Hour), in: dialogs.Input{Kind: dialogs.KindText, Key: key,
							Channel: "telegram", Address: cz.address, Text: cz.keyword}})
						for _, s := range []*boltstore.Store{fast, slow} {
							if _, err := e.apply(t, eng, s, g.keys); err != nil {
								t.Fatal(err)
							}
						}
					}
					if text == "" {
						text = cz.keyword
					}
					e := g.citizen(prepEvent{now: g.now.Add(2 * time.Hour), in: dialogs.Input{Kind: dialogs.KindText, Key: key,
						Channel: "telegram", Address: cz.address, Handle: cz.handle, LangHint: cz.lang, Text: text}})
					// Reference: the conflicting write commits first, then the
					// event runs wholly inside the commit.
					c.run(t, slow, key, e.now)
					want, err := e.apply(t, eng, slow, g.keys)
					if err != nil {
						t.Fatal(err)
					}
					// Prepared: the conflicting write commits between the
					// event's prepare and its commit.
					fast.SetPrepare(true)
					hooked, lastSeq := false, uint64(0)
					fast.SetAfterPrepare(func(k string) {
						if hooked || k != key {
							return
						}
						hooked = true
						c.run(t, fast, key, e.now)
						items, err := fast.PendingSends("")
						if err != nil {
							t.Fatal(err)
						}
						for _, it := range items {
							lastSeq = max(lastSeq, it.Seq)
						}
					})
					got, err := e.apply(t, eng, fast, g.keys)
					fast.SetAfterPrepare(nil)
					if err != nil {
						t.Fatal(err)
					}
					if !hooked {
						t.Fatal("the event was not prepared: the conflict never ran between prepare and commit")
					}
					if _, fellBack := fast.PrepareCounts(); fellBack != 1 {
						t.Errorf("%d writes fell back to the commit, want 1: the conflict was not detected", fellBack)
					}
					if len(got.Sends) != len(want.Sends) {
						t.Errorf("prepared: %d rows queued; conflict first: %d", len(got.Sends), len(want.Sends))
					}
					for i := range min(len(got.Sends), len(want.Sends)) {
						if got.Sends[i].Seq <= lastSeq {
							t.Errorf("the event's row is numbered %d, not after the conflicting write's rows (up to %d): out of order", got.Sends[i].Seq, lastSeq)
						}
						got.Sends[i].Seq = want.Sends[i].Seq // numbers may skip (see compareStores)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("outcomes differ\nprepared:       %+v\nconflict first: %+v", got, want)
					}
					compareStores(t, fast, slow, g.keys, eng.Directory.EmbassyFor("MY", "KH"), false)
					compareStores(t, fast, slow, g.keys, "elsewhere", false)
				})
			}
		}
	}
}

// TestSendSeqSurvivesRestart: send-queue and purge-list numbers come
// from counters in memory (rowSeq); the buckets' stored sequences must
// keep up with them, so that after a restart no number is handed out
// again — an unsent row overwritten by a new one would be a reply lost, a
// purge row overwritten a message never deleted.
func TestSendSeqSurvivesRestart(t *testing.T) {
	for _, prepare := range []bool{true, false} {
		t.Run(fmt.Sprintf("prepare=%v", prepare), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "checkinbot.db")
			var seqs []uint64
			for round := range 3 {
				s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: testKeyring(t, 9)})
				if err != nil {
					t.Fatal(err)
				}
				s.SetPrepare(prepare)
				for i := range 4 {
					key := fmt.Sprintf("user-%d", i%2)
					out, err := s.ProcessSend(key, fmt.Sprintf("telegram:%d-%d", round, i), time.Date(2026, 3, 2, 9, round, i, 0, time.UTC),
						&store.Envelope{Channel: "telegram", Address: "770000000" + strconv.Itoa(i%2), DeleteID: strconv.Itoa(round*10 + i),
							DeleteBy: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)},
						func(prev dialogs.State, _ bool) dialogs.Result {
							prev.Key, prev.Status = key, dialogs.StatusActive
							return dialogs.Result{State: prev, Replies: []dialogs.Reply{{Text: fmt.Sprintf("reply %d.%d", round, i)}}, DeleteInbound: true}
						})
					if err != nil || len(out.Sends) != 1 {
						t.Fatalf("round %d event %d: %v, %d rows", round, i, err, len(out.Sends))
					}
					seqs = append(seqs, out.Sends[0].Seq)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
				t.Errorf("send-queue numbers across restarts: %v, want strictly increasing", seqs)
			}
			s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: testKeyring(t, 9)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			items, err := s.PendingSends("")
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(seqs) {
				t.Errorf("%d rows in the send queue, %d were written: rows were overwritten", len(items), len(seqs))
			}
			rows, err := s.PurgeRows()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(seqs) {
				t.Errorf("%d rows in the purge list, %d were written: rows were overwritten", len(rows), len(seqs))
			}
		})
	}
}

// TestPreparedWritesLoseNothingUnderConcurrency: citizens' events run in
// parallel, each citizen's in order (as the runner serialises them),
// while another writer — like retention or the embassy API, outside the
// citizens' order — keeps changing the same records. Each event appends
// one mark to a field of the record; at the end every mark of both
// writers must be there: a prepared write applied over a record that
// changed since it was read would drop the other writer's mark.
func TestPreparedWritesLoseNothingUnderConcurrency(t *testing.T) {
	const users, events, meddles = 8, 60, 150
	for _, sealed := range []bool{true, false} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) {
			s, _ := openSealedOrClear(t, sealed)
			key := func(u int) string { return fmt.Sprintf("user-%02d", u) }
			mark := func(field func(*dialogs.State) *string, m string) store.Handler {
				return func(prev dialogs.State, _ bool) dialogs.Result {
					prev.Status = dialogs.StatusActive
					*field(&prev) += m
					return dialogs.Result{State: prev, Replies: []dialogs.Reply{{Text: "ok"}}}
				}
			}
			city := func(st *dialogs.State) *string { return &st.Profile.City }
			employer := func(st *dialogs.State) *string { return &st.Profile.Employer }
			now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
			for u := range users { // the records exist: their writes can be prepared
				if _, err := s.Process(key(u), "", now, mark(city, "")); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for u := range users {
				wg.Go(func() {
					for i := range events {
						env := &store.Envelope{Channel: "telegram", Address: key(u)}
						if _, err := s.ProcessSend(key(u), fmt.Sprintf("telegram:%d-%d", u, i), now, env, mark(city, "c")); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Go(func() {
				for i := range meddles {
					if _, err := s.Process(key(i%users), "", now, mark(employer, "x")); err != nil {
						t.Error(err)
						return
					}
				}
			})
			wg.Wait()
			for u := range users {
				st, _, err := s.Registrant(key(u))
				if err != nil {
					t.Fatal(err)
				}
				want := meddles / users
				if u < meddles%users {
					want++
				}
				if len(st.Profile.City) != events || len(st.Profile.Employer) != want {
					t.Errorf("%s: %d of %d event marks and %d of %d marks of the other writer: a write was lost",
						key(u), len(st.Profile.City), events, len(st.Profile.Employer), want)
				}
			}
			prepared, fellBack := s.PrepareCounts()
			t.Logf("%d writes applied prepared, %d fell back", prepared, fellBack)
			if prepared == 0 {
				t.Error("no write was applied prepared: the test did not test the prepared path")
			}
		})
	}
}

// openSealedOrClear opens a store in a temp dir, encrypted (the test
// keyring) or in clear, closed when the test ends; the options open it again.
func openSealedOrClear(t *testing.T, sealed bool) (*boltstore.Store, boltstore.Options) {
	t.Helper()
	opt := boltstore.Options{}
	if sealed {
		opt.Keyring = testKeyring(t, 9)
	}
	s, err := boltstore.OpenWith(filepath.Join(t.TempDir(), "checkinbot.db"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, opt
}
