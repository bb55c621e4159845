package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// ownerRing is the master key of this file's encrypted stores.
func ownerRing(t testing.TB) *seal.Keyring {
	t.Helper()
	m, err := seal.NewMasterKey(bytes.Repeat([]byte{0x5a}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return &seal.Keyring{Current: m}
}

func openOwnerStore(t testing.TB, path string) *Store {
	t.Helper()
	s, err := OpenWith(path, Options{Keyring: ownerRing(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// opens reports whether outbox event seq's body opens (its key exists),
// or fails the test if it is gone or broken otherwise.
func opens(t *testing.T, s *Store, seq uint64) bool {
	t.Helper()
	var err error
	s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOutbox).Get(u64(seq))
		if v == nil {
			err = fmt.Errorf("event %d is gone", seq)
			return nil
		}
		_, _, err = eventOf(tx, u64(seq), v)
		return nil
	})
	if errors.Is(err, errShredded) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// ownerTraffic drives an encrypted store through random traffic of a few
// citizens: events with and without a case and replies queued, routing,
// deliveries, case resolutions, erasures (real /delete) and prunes. At
// every erasure it checks against a model that exactly the citizen's
// events still owed (not routed, or pending somewhere) or of their open
// case stay readable, and the others are shredded; it returns how many
// erasures it did.
func ownerTraffic(t *testing.T, s *Store, seed uint64) (erasures int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 21))
	now := t0
	events := map[string][]store.Event{} // user key → their events
	targets := func(ev store.Event) []store.Target {
		return []store.Target{{Endpoint: "e1", Critical: true}, {Endpoint: "e2"}}[:1+len(ev.ID)%2]
	}
	// shredded are the events an erasure left unreadable. An erased citizen
	// may come back on the same chat (same user key, a new data key): the
	// events of the earlier registration must still read as shredded,
	// never as damaged, for the embassy's pull, Prune and check.
	var shredded []uint64
	defer func() {
		for _, seq := range shredded {
			if _, live := eventSeqBySeq(s, seq); live && opens(t, s, seq) {
				t.Fatalf("seed %d: event %d of an erased registration opens again", seed, seq)
			}
		}
		pullAll(t, s, "my-mekong", false)
	}()
	for step := range 150 {
		now = now.Add(time.Minute)
		key := fmt.Sprintf("%064x", rng.IntN(8))
		switch r := rng.IntN(20); {
		case r < 12: // a message: maybe an escalation, always a reply
			withCase := rng.IntN(2) == 0
			out, err := s.ProcessSend(key, fmt.Sprintf("telegram:%d", step), now, &store.Envelope{Channel: "telegram", Address: "1"},
				result(func(st *dialogs.State, res *dialogs.Result) {
					st.Key, st.Status, st.Address = key, dialogs.StatusActive, "+85512345678"
					res.Replies = []dialogs.Reply{{Text: "ok"}}
					if rng.IntN(3) > 0 {
						e := dialogs.Escalation{Type: dialogs.EventRegistrationUpdated, Severity: dialogs.SeverityInfo, EmbassyID: "my-mekong"}
						if withCase {
							e = dialogs.Escalation{Type: dialogs.EventSOSRaised, Severity: dialogs.SeverityCritical, EmbassyID: "my-mekong", Case: dialogs.CaseOpen}
						}
						res.Escalations = []dialogs.Escalation{e}
					}
				}))
			if err != nil {
				t.Fatal(err)
			}
			events[key] = append(events[key], out.Events...)
		case r < 14:
			if _, err := s.Route(now, targets); err != nil {
				t.Fatal(err)
			}
		case r < 16: // deliver what is due, at random
			b, err := s.DueChains(now, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			var as []store.Attempt
			for _, c := range b.Chains {
				for _, it := range c.Items {
					if rng.IntN(3) > 0 {
						as = append(as, store.Attempt{Endpoint: it.Endpoint, Seq: it.Seq, Outcome: escalation.AttemptDelivered})
					}
				}
			}
			if err := s.RecordAttempts(now, as); err != nil {
				t.Fatal(err)
			}
		case r < 17: // an officer resolves one of the citizen's cases
			for _, ev := range events[key] {
				if ev.CaseID == "" {
					continue
				}
				if cs, ok, err := s.CaseByID(ev.CaseID); err != nil || !ok || cs.Status == escalation.CaseStatusResolved {
					continue
				}
				if _, _, err := s.ResolveCase(store.CaseChange{Embassy: "my-mekong", CaseID: ev.CaseID, Action: escalation.ActionResolve,
					By: "test", Outcome: escalation.OutcomeSafe}, key, now, nil, result(func(st *dialogs.State, _ *dialogs.Result) { st.OpenCase = "" })); err != nil {
					t.Fatal(err)
				}
				break
			}
		case r < 19: // a real /delete
			st, found, err := s.Registrant(key)
			if err != nil || !found {
				continue
			}
			var routed uint64
			var pending []store.Delivery
			s.db.View(func(tx *bolt.Tx) error {
				if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
					routed = bytesToU64(v)
				}
				return nil
			})
			if pending, err = s.Pending(); err != nil {
				t.Fatal(err)
			}
			owedSeq := map[uint64]bool{}
			for _, d := range pending {
				owedSeq[d.Seq] = true
			}
			caseOpen, _ := func() (bool, error) {
				var open bool
				err := s.db.View(func(tx *bolt.Tx) error { var err error; open, err = caseUnresolved(tx, st.OpenCase); return err })
				return open, err
			}()
			if _, err := s.Process(key, "", now, result(func(_ *dialogs.State, res *dialogs.Result) { res.Erase = true })); err != nil {
				t.Fatal(err)
			}
			erasures++
			for _, ev := range events[key] {
				seq, live := eventSeq(t, s, ev.ID)
				if !live {
					continue // pruned before
				}
				want := seq > routed || owedSeq[seq] || (caseOpen && ev.CaseID == st.OpenCase)
				if got := opens(t, s, seq); got != want {
					t.Fatalf("seed %d step %d: after the erasure event %d (case %q, open case %q) opens: %v, want %v",
						seed, step, seq, ev.CaseID, st.OpenCase, got, want)
				}
				if !want {
					shredded = append(shredded, seq)
				}
			}
			delete(events, key)
			pullAll(t, s, "my-mekong", false)
		default:
			if _, err := s.Prune(now.Add(-10 * time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return erasures
}

func bytesToU64(v []byte) uint64 {
	var n uint64
	for _, b := range v {
		n = n<<8 | uint64(b)
	}
	return n
}

// eventSeq finds the outbox sequence of event id through the event ids
// index, or reports it gone (pruned). Events of no embassy are not in it:
// the outbox is walked for them.
func eventSeq(t *testing.T, s *Store, id string) (uint64, bool) {
	t.Helper()
	var seq uint64
	found := false
	s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketEventIDs).Get([]byte(id)); len(v) == 16 {
			seq, found = bytesToU64(v[:8]), true
		}
		return nil
	})
	return seq, found
}

// TestErasureAndSweepThroughTheOwnerIndex: over random traffic, every
// erasure keeps readable exactly the citizen's events that are owed or of
// their open case (checked at each erasure against a model), the owner
// index agrees with the rows (`check`, with the key), and once everything
// is delivered and every case resolved, Prune's sweep destroys every
// erased key — and no event of an erased citizen opens any more.
// (Mutations: the index entry not written with an event — check reports
// missing entries and the kept events are shredded; the sweep not seeing
// an owed event — its key is destroyed early and the event is shredded.)
func TestErasureAndSweepThroughTheOwnerIndex(t *testing.T) {
	total := 0
	for seed := range uint64(4) {
		path := filepath.Join(t.TempDir(), "checkinbot.db")
		s := openOwnerStore(t, path)
		total += ownerTraffic(t, s, seed)
		// Before the sweep may destroy anything: every erased key still
		// needed stays.
		if _, err := s.Prune(t0); err != nil {
			t.Fatal(err)
		}
		erasedBefore, stillOwed := 0, 0
		s.db.View(func(tx *bolt.Tx) error {
			o := newOwedTo(tx)
			c := tx.Bucket(bucketKeys).Cursor()
			for k, _ := c.Seek([]byte(erasedPrefix)); k != nil && bytes.HasPrefix(k, []byte(erasedPrefix)); k, _ = c.Next() {
				erasedBefore++
				if needed, _, err := erasedNeeded(tx, string(k), o, map[string]bool{}); err != nil || !needed {
					t.Errorf("seed %d: erased key %s kept by the sweep but not needed (%v)", seed, k, err)
				} else {
					stillOwed++
				}
			}
			return nil
		})
		s.Close()
		rep, err := CheckWith(path, Options{Keyring: ownerRing(t)})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rep.Problems {
			t.Errorf("seed %d: %s", seed, p)
		}
		if rep.Counts[string(bucketOwnerRows)] == 0 {
			t.Errorf("seed %d: the owner index is empty: nothing was checked", seed)
		}
	}
	if total == 0 {
		t.Fatal("no erasure happened: the property was not exercised")
	}
}

// TestSweepWaitsForWhatIsOwed: an erased citizen's key stays while their
// withdrawal event is pending, while their case is open and while their
// reply is unsent, and goes with the last of them; then none of their
// events opens.
func TestSweepWaitsForWhatIsOwed(t *testing.T) {
	for _, resolveFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("resolve first=", resolveFirst), func(t *testing.T) { sweepWaits(t, resolveFirst) })
	}
}

// sweepWaits is TestSweepWaitsForWhatIsOwed with the case resolved before
// the reply is sent, or after.
func sweepWaits(t *testing.T, resolveFirst bool) {
	s := openOwnerStore(t, filepath.Join(t.TempDir(), "checkinbot.db"))
	defer s.Close()
	key := fmt.Sprintf("%064x", 7)
	other := fmt.Sprintf("%064x", 8)
	var caseID string
	var seqs []uint64
	for _, k := range []string{key, other} {
		out, err := s.ProcessSend(k, "", t0, &store.Envelope{Channel: "telegram", Address: "1"}, result(func(st *dialogs.State, r *dialogs.Result) {
			st.Key, st.Address = k, "+85512345678"
			r.Escalations = []dialogs.Escalation{{Type: dialogs.EventSOSRaised, Severity: dialogs.SeverityCritical, EmbassyID: "my-mekong", Case: dialogs.CaseOpen}}
		}))
		if err != nil {
			t.Fatal(err)
		}
		if k == key {
			caseID = out.Events[0].CaseID
			seqs = append(seqs, seqOfEvent(t, s, out.Events[0].ID))
		}
	}
	route := func(now time.Time) {
		if _, err := s.Route(now, func(store.Event) []store.Target { return []store.Target{{Endpoint: "e1", Critical: true}} }); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func(now time.Time) {
		b, err := s.DueChains(now, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		var as []store.Attempt
		for _, c := range b.Chains {
			for _, it := range c.Items {
				as = append(as, store.Attempt{Endpoint: it.Endpoint, Seq: it.Seq, Outcome: escalation.AttemptDelivered})
			}
		}
		if err := s.RecordAttempts(now, as); err != nil {
			t.Fatal(err)
		}
	}
	route(t0)
	deliver(t0) // the SOS delivered: owed only as part of the open case
	out, err := s.ProcessSend(key, "", t0.Add(time.Minute), &store.Envelope{Channel: "telegram", Address: "1"}, result(func(_ *dialogs.State, r *dialogs.Result) {
		r.Erase, r.Replies = true, []dialogs.Reply{{Text: "deleted"}}
		r.Escalations = []dialogs.Escalation{{Type: dialogs.EventRegistrationWithdrawn, Severity: dialogs.SeverityInfo, EmbassyID: "my-mekong"}}
	}))
	if err != nil || len(out.Sends) != 1 {
		t.Fatalf("erasure: %v, %d sends", err, len(out.Sends))
	}
	seqs = append(seqs, seqOfEvent(t, s, out.Events[0].ID))
	keysLeft := func() int {
		n := 0
		s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketKeys).Cursor()
			for k, _ := c.Seek([]byte(erasedPrefix)); k != nil && bytes.HasPrefix(k, []byte(erasedPrefix)); k, _ = c.Next() {
				n++
			}
			return nil
		})
		return n
	}
	step := func(what string, wantKeys int) {
		t.Helper()
		if _, err := s.Prune(t0.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := keysLeft(); got != wantKeys {
			t.Fatalf("%s: %d erased keys, want %d", what, got, wantKeys)
		}
		for _, seq := range seqs {
			if got := opens(t, s, seq); got != (wantKeys == 1) {
				t.Fatalf("%s: event %d opens: %v, want %v", what, seq, got, wantKeys == 1)
			}
		}
	}
	step("withdrawal not routed, reply unsent, case open", 1)
	route(t0.Add(2 * time.Minute))
	deliver(t0.Add(2 * time.Minute))
	step("reply unsent, case open", 1)
	resolve := func() {
		if _, _, err := s.ResolveCase(store.CaseChange{Embassy: "my-mekong", CaseID: caseID, Action: escalation.ActionResolve, By: "test",
			Outcome: escalation.OutcomeSafe}, key, t0.Add(3*time.Minute), nil, result(func(*dialogs.State, *dialogs.Result) {})); err != nil {
			t.Fatal(err)
		}
	}
	ack := func() {
		if err := s.AckSends([]store.SendAck{{UserKey: key, Seq: out.Sends[0].Seq}}); err != nil {
			t.Fatal(err)
		}
	}
	if resolveFirst {
		resolve()
		step("reply unsent", 1)
		ack()
	} else {
		ack()
		step("case open", 1)
		resolve()
	}
	step("nothing owed", 0)
}

func seqOfEvent(t *testing.T, s *Store, id string) uint64 {
	t.Helper()
	seq, ok := eventSeq(t, s, id)
	if !ok {
		t.Fatalf("event %s not in the event ids", id)
	}
	return seq
}

// TestCheckFindsOwnerIndexGaps: check names an owner index entry that is
// missing (an event sealed for a registrant, not listed: an erasure would
// shred it though owed) and one that names an event gone.
func TestCheckFindsOwnerIndexGaps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(tx *bolt.Tx) error
		want    string
	}{
		{"entry dropped", func(tx *bolt.Tx) error {
			k, _ := tx.Bucket(bucketOwnerRows).Cursor().First()
			return tx.Bucket(bucketOwnerRows).Delete(k)
		}, "index owner_rows: 1 missing entries (event "},
		{"event gone", func(tx *bolt.Tx) error {
			k, _ := tx.Bucket(bucketOwnerRows).Cursor().First()
			return tx.Bucket(bucketOwnerRows).Put(append(bytes.Clone(k[:ownerTagSize+1]), u64(999)...), nil)
		}, "index owner_rows: 1 dangling entries (event 999)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "checkinbot.db")
			s := openOwnerStore(t, path)
			for i := range 3 {
				key := fmt.Sprintf("%064x", i)
				if _, err := s.Process(key, "", t0, result(func(st *dialogs.State, r *dialogs.Result) {
					st.Key = key
					r.Escalations = []dialogs.Escalation{{Type: dialogs.EventSOSRaised, Severity: dialogs.SeverityCritical, EmbassyID: "my-mekong", Case: dialogs.CaseOpen}}
				})); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			rep, err := CheckWith(path, Options{Keyring: ownerRing(t)})
			if err != nil || len(rep.Problems) != 0 || rep.Counts[string(bucketOwnerRows)] != 3 {
				t.Fatalf("before: %v, %v, %d entries", err, rep.Problems, rep.Counts[string(bucketOwnerRows)])
			}
			boltFile(t, path, tc.breakIt)
			if rep, err = CheckWith(path, Options{Keyring: ownerRing(t)}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(fmt.Sprint(rep.Problems), tc.want) {
				t.Errorf("check: %v, want %q", rep.Problems, tc.want)
			}
		})
	}
}

// TestOwnerIndexBuiltForAnOlderFile: an encrypted file written before the
// owner index gets it at open, in batches that resume after a crash
// (injected after the first), and check then finds it complete — erased
// keys' rows included.
func TestOwnerIndexBuiltForAnOlderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s := openOwnerStore(t, path)
	if ownerTraffic(t, s, 1) == 0 {
		t.Fatal("no erasure: the erased keys' rows were not exercised")
	}
	s.Close()
	var entries int
	boltFile(t, path, func(tx *bolt.Tx) error {
		entries = tx.Bucket(bucketOwnerRows).Stats().KeyN
		if err := tx.DeleteBucket(bucketOwnerRows); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketOwnerRows); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		for _, k := range []string{"owner_rows_built", "owner_rows_outbox_built", "owner_rows_sendq_built", "owner_rows_purge_built"} {
			if err := meta.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	oldBatch := buildBatch
	buildBatch = 2
	t.Cleanup(func() { buildBatch, buildHook = oldBatch, nil })
	buildHook = func(done []byte, _ int) error {
		if string(done) == "owner_rows_outbox_built" {
			return errors.New("crash")
		}
		return nil
	}
	if s, err := OpenWith(path, Options{Keyring: ownerRing(t)}); err == nil {
		s.Close()
		t.Fatal("open with the build stopped succeeded")
	}
	buildHook = nil
	s = openOwnerStore(t, path)
	s.Close()
	rep, err := CheckWith(path, Options{Keyring: ownerRing(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Error(p)
	}
	if got := rep.Counts[string(bucketOwnerRows)]; got == 0 || got > entries {
		t.Errorf("built %d entries; the file had %d", got, entries)
	}
}

// eventSeqBySeq reports whether outbox event seq is still stored.
func eventSeqBySeq(s *Store, seq uint64) (uint64, bool) {
	live := false
	s.db.View(func(tx *bolt.Tx) error {
		live = tx.Bucket(bucketOutbox).Get(u64(seq)) != nil
		return nil
	})
	return seq, live
}
