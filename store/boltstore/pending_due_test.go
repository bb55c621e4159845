package boltstore

import (
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
	bolt "go.etcd.io/bbolt"
)

// refChains is what a round may send at now, computed the slow way the
// store did before the due index: every pending row read in key order,
// each case's run being its pending rows from the first that are all due.
// Chains are written "endpoint:[seqs]" in the order DueChains returns them.
func refChains(t *testing.T, s *Store, now time.Time) (chains []string, next time.Time) {
	t.Helper()
	rows, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	// Pending() is in key order: endpoint, then sequence.
	type chain struct {
		ep   string
		seqs []uint64
	}
	var out []chain
	chainOf := map[string]int{} // endpoint ‖ case → index, -1 closed
	for _, d := range rows {
		ck := d.Endpoint + "\x00" + d.CaseID
		ci, seen := chainOf[ck]
		if d.CaseID != "" && seen && ci < 0 {
			continue
		}
		if d.NextAt.After(now) {
			if next.IsZero() || d.NextAt.Before(next) {
				next = d.NextAt
			}
			if d.CaseID != "" {
				chainOf[ck] = -1
			}
			continue
		}
		if d.CaseID != "" && seen {
			out[ci].seqs = append(out[ci].seqs, d.Seq)
			continue
		}
		if d.CaseID != "" {
			chainOf[ck] = len(out)
		}
		out = append(out, chain{d.Endpoint, []uint64{d.Seq}})
	}
	for _, c := range out {
		chains = append(chains, fmt.Sprintf("%s:%v", c.ep, c.seqs))
	}
	return chains, next
}

func gotChains(b store.DueBatch) []string {
	var out []string
	for _, c := range b.Chains {
		var seqs []uint64
		for _, it := range c.Items {
			seqs = append(seqs, it.Seq)
		}
		out = append(out, fmt.Sprintf("%s:%v", c.Endpoint, seqs))
	}
	return out
}

// randomDeliveries drives a store through random traffic: events of a few
// cases (and caseless ones) routed to interleaving endpoints, then rounds
// whose outcomes are random — delivered, failed with a retry at a random
// later time, held with a secondary, given up.
func randomDeliveries(t *testing.T, s *Store, seed uint64, check func(now time.Time)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 15))
	now := t0
	endpoints := []string{"e1", "e1/secondary", "e2", "e"}
	targets := func(ev store.Event) []store.Target {
		var out []store.Target
		for _, ep := range endpoints[:1+int(ev.ID[len(ev.ID)-1])%3] {
			out = append(out, store.Target{Endpoint: ep, Critical: true})
		}
		return out
	}
	for step := range 60 {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		for range rng.IntN(4) {
			key := fmt.Sprintf("%064x", rng.IntN(6))
			withCase := rng.IntN(4) > 0
			s.Process(key, "", now, result(func(_ *dialogs.State, r *dialogs.Result) {
				e := dialogs.Escalation{Type: dialogs.EventRegistrationCreated, Severity: dialogs.SeverityInfo}
				if withCase {
					e = dialogs.Escalation{Type: dialogs.EventCaseUpdated, Severity: dialogs.SeverityCritical, Case: dialogs.CaseOpen}
				}
				r.Escalations = []dialogs.Escalation{e}
			}))
		}
		if _, err := s.Route(now, targets); err != nil {
			t.Fatal(err)
		}
		check(now)
		b, err := s.DueChains(now, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		var attempts []store.Attempt
		for _, c := range b.Chains {
			for _, it := range c.Items {
				a := store.Attempt{Endpoint: it.Endpoint, Seq: it.Seq}
				switch r := rng.IntN(10); {
				case r < 4:
					a.Outcome = escalation.AttemptDelivered
				case r < 8:
					a.Outcome, a.Err, a.NextAt = escalation.AttemptFailed, "HTTP 503", now.Add(time.Duration(1+rng.IntN(300))*time.Second)
					if rng.IntN(3) == 0 && !strings.HasSuffix(it.Endpoint, "/secondary") {
						a.Secondary = it.Endpoint + "/secondary"
					}
				case r < 9:
					a.Outcome, a.Secondary = escalation.AttemptHeld, "e1/secondary"
				default:
					a.Outcome, a.Err = escalation.AttemptGaveUp, "HTTP 400"
				}
				attempts = append(attempts, a)
				if a.Outcome != escalation.AttemptDelivered {
					break // the rest of the chain waits
				}
			}
		}
		if err := s.RecordAttempts(now, attempts); err != nil {
			t.Fatal(err)
		}
		if step%20 == 19 {
			if _, err := s.Prune(now.Add(-10 * time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestDueChainsAgreeWithAFullScan: over random traffic, the rounds read
// through the due index hand out exactly the chains (and the next due
// time) a scan of every pending row finds, at the round's time and at
// times in between — no due row is skipped, none sent out of case order.
// (With the index's time compared as "before" rather than "not after", or
// a case's run cut at the first row, this fails naming the chains.)
func TestDueChainsAgreeWithAFullScan(t *testing.T) {
	for seed := range uint64(4) {
		s := mustOpen(t)
		rounds, withChains := 0, 0
		randomDeliveries(t, s, seed, func(now time.Time) {
			for _, at := range []time.Time{now, now.Add(37 * time.Second), now.Add(5 * time.Minute)} {
				want, wantNext := refChains(t, s, at)
				b, err := s.DueChains(at, nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				got := gotChains(b)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("seed %d at %s: chains\n%v\nwant (full scan)\n%v", seed, at.Format(time.TimeOnly), got, want)
				}
				// A blocked row may fall due before the rows behind it: the
				// index may wake the loop earlier than the scan, never later.
				if !wantNext.IsZero() && (b.Next.IsZero() || b.Next.After(wantNext)) {
					t.Fatalf("seed %d: next %v, the full scan says %v", seed, b.Next, wantNext)
				}
				rounds++
				if len(got) > 1 {
					withChains++
				}
			}
		})
		if withChains < rounds/4 {
			t.Errorf("seed %d: only %d of %d rounds had more than one chain: the traffic does not exercise the index", seed, withChains, rounds)
		}
		s.Close()
		rep, err := Check(s.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range rep.Problems {
			t.Errorf("seed %d: %s", seed, pr)
		}
		if rep.Counts[string(bucketPendingDue)] == 0 {
			t.Errorf("seed %d: the due index is empty at the end: nothing was checked", seed)
		}
	}
}

// TestCheckFindsDueIndexBreaks: a due-index entry missing, left behind, or
// at another time than its row is reported by checkinbot check.
func TestCheckFindsDueIndexBreaks(t *testing.T) {
	first := func(tx *bolt.Tx) []byte {
		k, _ := tx.Bucket(bucketPendingDue).Cursor().First()
		return append([]byte(nil), k...)
	}
	for _, tc := range []struct {
		name   string
		break_ func(tx *bolt.Tx) error
		want   []string
	}{
		{"entry missing", func(tx *bolt.Tx) error { return tx.Bucket(bucketPendingDue).Delete(first(tx)) },
			[]string{"index pending_due: 1 missing entries (delivery "}},
		{"entry left behind", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketPendingDue).Put(pendingDueKey("e2", t0, 99999), nil)
		}, []string{"index pending_due: 1 dangling entries (delivery e2/99999 at "}},
		{"entry at another time", func(tx *bolt.Tx) error {
			k := first(tx)
			ep, _, seq, _ := parseDueKey(k)
			tx.Bucket(bucketPendingDue).Delete(k)
			return tx.Bucket(bucketPendingDue).Put(pendingDueKey(ep, t0.Add(-time.Hour), seq), nil)
		}, []string{"1 missing entries", "1 dangling entries"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "checkinbot.db")
			s, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			randomDeliveries(t, s, 1, func(time.Time) {})
			s.Close()
			boltFile(t, p, tc.break_)
			rep, err := Check(p)
			if err != nil {
				t.Fatal(err)
			}
			all := fmt.Sprint(rep.Problems)
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("no problem says %q: %s", w, all)
				}
			}
		})
	}
}

// TestDueIndexBuiltForAnOlderFile: a file whose pending rows have no due
// index (schema 4) gets one when opened, and its rows go out.
func TestDueIndexBuiltForAnOlderFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	randomDeliveries(t, s, 2, func(time.Time) {})
	want, _ := refChains(t, s, t0.Add(24*time.Hour))
	s.Close()
	boltFile(t, p, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketPendingDue); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketPendingDue); err != nil {
			return err
		}
		tx.Bucket(bucketMeta).Put(keySchema, u64(4))
		return tx.Bucket(bucketMeta).Delete(keyPendingDueBuilt)
	})
	if s, err = Open(p); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.DueChains(t0.Add(24*time.Hour), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || fmt.Sprint(gotChains(b)) != fmt.Sprint(want) {
		t.Errorf("after the rebuild: %v, want %v", gotChains(b), want)
	}
}

// TestCheckAcceptsTheDueIndexOfTraffic: after random traffic written only
// through the store, checkinbot check finds the due index in step with the
// pending rows — each entry moved in the transaction that moves its row.
// (With a failed attempt's row rewritten without its entry, this fails:
// check names the missing and dangling entries.)
func TestCheckAcceptsTheDueIndexOfTraffic(t *testing.T) {
	for seed := range uint64(3) {
		s := mustOpen(t)
		randomDeliveries(t, s, seed, func(time.Time) {})
		s.Close()
		rep, err := Check(s.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range rep.Problems {
			t.Errorf("seed %d: %s", seed, pr)
		}
		if rep.Counts[string(bucketPendingDue)] == 0 {
			t.Errorf("seed %d: the due index is empty: nothing was checked", seed)
		}
	}
}

// TestDueRowOutsideCaseEventsStillGoes: a due row whose event is missing
// from case_events (a broken index, which check reports) is still handed
// out, alone, rather than never. (Without the fallback it is held for
// ever: this fails.)
func TestDueRowOutsideCaseEventsStillGoes(t *testing.T) {
	s := mustOpen(t)
	s.Process(fmt.Sprintf("%064x", 1), "", t0, result(func(_ *dialogs.State, r *dialogs.Result) {
		r.Escalations = []dialogs.Escalation{{Type: dialogs.EventDuressTriggered, Severity: dialogs.SeverityCritical, Case: dialogs.CaseOpen}}
	}))
	if _, err := s.Route(t0, func(store.Event) []store.Target { return []store.Target{{Endpoint: "e1"}} }); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketCaseEvents).Cursor().First()
		return tx.Bucket(bucketCaseEvents).Delete(k)
	}); err != nil {
		t.Fatal(err)
	}
	b, err := s.DueChains(t0, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := gotChains(b); fmt.Sprint(got) != "[e1:[1]]" {
		t.Errorf("chains %v, want the row alone", got)
	}
}

// stripDueIndexes makes the file at p look written before the due indexes
// existed: both empty and unmarked.
func stripDueIndexes(t *testing.T, p string) {
	t.Helper()
	boltFile(t, p, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPendingDue, bucketPendingBeat} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		for _, k := range [][]byte{keyPendingDueBuilt, keyPendingBeatBuilt} {
			if err := tx.Bucket(bucketMeta).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// withHeartbeats records and routes a heartbeat for each endpoint at a few
// times, so pending rows of both kinds exist.
func withHeartbeats(t *testing.T, s *Store, endpoints ...string) {
	t.Helper()
	for i := range 3 {
		at := t0.Add(time.Duration(i) * time.Hour)
		for _, ep := range endpoints {
			if _, err := s.Heartbeat(ep, "my-mekong", at, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Route(at, func(ev store.Event) []store.Target {
			if ep, ok := ev.Details["endpoint"].(string); ok {
				return []store.Target{{Endpoint: ep}}
			}
			return []store.Target{{Endpoint: "e1", Critical: true}}
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDueIndexBuildResumesAfterACrash: building the due indexes of an
// older file goes in transactions of buildBatch rows, each recording how
// far it got. Stopped after the first (a crash, injected), the open fails
// with exactly one batch filed and its progress recorded; the next open
// resumes after it — filing only the rest — and the result is what check
// and the delivery rounds expect. (With the built mark written by the
// first batch, or the progress ignored, this fails.)
func TestDueIndexBuildResumesAfterACrash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	withHeartbeats(t, s, "e1", "e2")
	randomDeliveries(t, s, 4, func(time.Time) {})
	later := t0.Add(24 * time.Hour)
	want, _ := refChains(t, s, later)
	wantBeats, err := s.DueOfType(escalation.TypeEndpointHeartbeat, later)
	if err != nil || len(wantBeats) == 0 {
		t.Fatalf("heartbeats due before: %d, %v", len(wantBeats), err)
	}
	rows, _ := s.Pending()
	s.Close()
	stripDueIndexes(t, p)

	oldBatch := buildBatch
	buildBatch = 3
	t.Cleanup(func() { buildBatch, buildHook = oldBatch, nil })
	buildHook = func(done []byte, _ int) error { return errors.New("crash") }
	if s, err = Open(p); err == nil {
		s.Close()
		t.Fatal("open with the build stopped after one batch succeeded")
	}
	var filed int
	boltFile(t, p, func(tx *bolt.Tx) error {
		filed = tx.Bucket(bucketPendingDue).Stats().KeyN
		if tx.Bucket(bucketMeta).Get(keyPendingDueBuilt) != nil || tx.Bucket(bucketMeta).Get(keyPendingDueProgress) == nil {
			t.Error("after a stopped build: marked built, or no progress recorded")
		}
		return nil
	})
	if filed != buildBatch || len(rows) <= buildBatch {
		t.Fatalf("after one batch %d entries filed of %d rows, want %d", filed, len(rows), buildBatch)
	}
	filedAgain := 0
	buildHook = func(done []byte, n int) error {
		if string(done) == string(keyPendingDueBuilt) {
			filedAgain += n
		}
		return nil
	}
	if s, err = Open(p); err != nil {
		t.Fatal(err)
	}
	if filedAgain != len(rows)-buildBatch {
		t.Errorf("the next open filed %d rows, want the %d left", filedAgain, len(rows)-buildBatch)
	}
	b, err := s.DueChains(later, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(gotChains(b)) != fmt.Sprint(want) {
		t.Errorf("after the resumed build: %v, want %v", gotChains(b), want)
	}
	beats, err := s.DueOfType(escalation.TypeEndpointHeartbeat, later)
	if err != nil || fmt.Sprint(beats) != fmt.Sprint(wantBeats) {
		t.Errorf("heartbeats after the resumed build: %d, %v; want %d", len(beats), err, len(wantBeats))
	}
	s.Close()
	rep, err := Check(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range rep.Problems {
		t.Error(pr)
	}
	if rep.Counts[string(bucketPendingDue)] != len(rows) || rep.Counts[string(bucketPendingBeat)] != len(wantBeats) {
		t.Errorf("index entries after the build: %d and %d, want %d and %d", rep.Counts[string(bucketPendingDue)],
			rep.Counts[string(bucketPendingBeat)], len(rows), len(wantBeats))
	}
}

// TestDueOfTypeMatchesEveryRowOpened: DueOfType, through the heartbeat
// index or in batches through the due index, returns exactly the due rows
// of the type that opening every pending row finds, in key order, at
// every moment of random traffic and whatever the batch size.
func TestDueOfTypeMatchesEveryRowOpened(t *testing.T) {
	oldBatch := buildBatch
	t.Cleanup(func() { buildBatch = oldBatch })
	for seed := range uint64(3) {
		s := mustOpen(t)
		withHeartbeats(t, s, "e1", "e2", "e")
		buildBatch = []int{1, 4, 1000}[seed]
		randomDeliveries(t, s, seed, func(now time.Time) {
			rows, err := s.Pending()
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{escalation.TypeEndpointHeartbeat, escalation.TypeCaseUpdated, escalation.TypeRegistrationCreated} {
				var want []string
				for _, d := range rows {
					if d.Type == typ && !d.NextAt.After(now) {
						want = append(want, fmt.Sprintf("%s/%d", d.Endpoint, d.Seq))
					}
				}
				due, err := s.DueOfType(typ, now)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, d := range due {
					if len(d.Body) == 0 {
						t.Fatalf("seed %d: %s/%d without its body", seed, d.Endpoint, d.Seq)
					}
					got = append(got, fmt.Sprintf("%s/%d", d.Endpoint, d.Seq))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("seed %d, %s at %s: %v, want %v", seed, typ, now.Format(time.TimeOnly), got, want)
				}
			}
		})
	}
}
