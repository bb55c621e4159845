package boltstore

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// seedPrunable writes, directly and in a few big transactions (seeding,
// not the code under test), old rows past cutoff in every bucket Prune
// cleans, newer rows it must keep, and old outbox events still owed to an
// endpoint, which it must keep too.
func seedPrunable(t testing.TB, s *Store, cutoff time.Time, old, recent, owedN int) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		outbox, pending, delivered := tx.Bucket(bucketOutbox), tx.Bucket(bucketPending), tx.Bucket(bucketDelivered)
		inbound := tx.Bucket(bucketInbound)
		var seq uint64
		add := func(at time.Time, owe bool) error {
			seq++
			ev := store.Event{ID: fmt.Sprintf("evt_%d", seq), Type: escalation.TypeCheckinMissed, CreatedAt: at}
			if err := putJSON(outbox, u64(seq), ev); err != nil {
				return err
			}
			d := store.Delivery{Endpoint: "emb", Seq: seq, EventID: ev.ID, NextAt: at}
			if owe {
				if err := tx.Bucket(bucketPendingDue).Put(pendingDueKey("emb", at, seq), nil); err != nil {
					return err
				}
				return putJSON(pending, pendingKey("emb", seq), d)
			}
			d.DoneAt = at
			return putJSON(delivered, append(u64(uint64(at.UnixNano())), pendingKey("emb", seq)...), d)
		}
		for i := range old {
			at := cutoff.Add(-time.Duration(old-i) * time.Second)
			if err := add(at, i%(old/max(owedN, 1)+1) == 0 && owedN > 0); err != nil {
				return err
			}
			if err := inbound.Put(fmt.Appendf(nil, "telegram:%08d", (i*7919)%old), u64(uint64(at.Unix()))); err != nil {
				return err
			}
		}
		for i := range recent {
			at := cutoff.Add(time.Duration(i+1) * time.Second)
			if err := add(at, false); err != nil {
				return err
			}
			if err := inbound.Put(fmt.Appendf(nil, "whatsapp:%08d", i), u64(uint64(at.Unix()))); err != nil {
				return err
			}
		}
		if err := outbox.SetSequence(seq); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyRouted, u64(seq))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func bucketLen(t *testing.T, s *Store, b []byte) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(b).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPruneIsBatched: with 10,000 rows past the cutoff in the archive, the
// outbox and the inbound ids, no write transaction of Prune deletes more
// than PruneBatch rows; everything old goes, everything recent and every
// event still owed stays; a citizen's write made meanwhile waits only for
// a batch (its worst wait is logged beside the same run's baseline).
func TestPruneIsBatched(t *testing.T) {
	const old, recent = 10_000, 500
	s := mustOpen(t)
	cutoff := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	seedPrunable(t, s, cutoff, old, recent, 37)
	owedBefore := bucketLen(t, s, bucketPending)
	if owedBefore == 0 {
		t.Fatal("seed has no owed events")
	}

	var mu sync.Mutex
	writes := map[string][]int{}
	pruneHook = func(bucket string, n int) { mu.Lock(); writes[bucket] = append(writes[bucket], n); mu.Unlock() }
	t.Cleanup(func() { pruneHook = nil })

	// A citizen writing throughout: each write's wait, during the prune
	// and (baseline) after it.
	write := func(i int) time.Duration {
		start := time.Now()
		if _, err := s.Process(store.UserKey([]byte("pepper"), "telegram", fmt.Sprint(i%50)), "", cutoff, result(func(st *dialogs.State, _ *dialogs.Result) { st.Lang = "en" })); err != nil {
			t.Error(err)
		}
		return time.Since(start)
	}
	stop := make(chan struct{})
	var during []time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			during = append(during, write(i))
		}
	})
	start := time.Now()
	n, err := s.Prune(cutoff)
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	var baseline []time.Duration
	for i := range len(during) + 20 {
		baseline = append(baseline, write(i))
	}

	for bucket, ns := range writes {
		for _, d := range ns {
			if d > PruneBatch {
				t.Errorf("%s: one write transaction deleted %d rows, the batch is %d", bucket, d, PruneBatch)
			}
		}
	}
	if got := len(writes["delivered"]); got < old/PruneBatch {
		t.Errorf("delivered pruned in %d writes, want at least %d", got, old/PruneBatch)
	}
	owed := owedBefore
	if want := old - owed; n != want {
		t.Errorf("pruned %d outbox events, want %d (old minus %d owed)", n, want, owed)
	}
	for _, c := range []struct {
		b    []byte
		want int
	}{{bucketDelivered, recent}, {bucketOutbox, recent + owed}, {bucketInbound, recent}, {bucketPending, owed}} {
		if got := bucketLen(t, s, c.b); got != c.want {
			t.Errorf("%s: %d rows left, want %d", c.b, got, c.want)
		}
	}
	// The owed events are exactly those kept among the old ones.
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			if tx.Bucket(bucketOutbox).Get(k[len(k)-8:]) == nil {
				t.Errorf("owed event %x was pruned", k[len(k)-8:])
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("prune of %d rows ×3 buckets took %s in %v writes; concurrent writes: %d, worst wait %s, p99 %s; same-run baseline worst %s, p99 %s",
		old, took, lens(writes), len(during), pct(during, 1), pct(during, 0.99), pct(baseline, 1), pct(baseline, 0.99))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Errorf("check after prune: %v", rep.Problems)
	}
}

func lens(m map[string][]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s)-1)+0.5))]
}

// TestRegistrantsAfterPages: pages cover every registrant once, in key
// order, whatever the page size.
func TestRegistrantsAfterPages(t *testing.T) {
	s := mustOpen(t)
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("key%03d", i)
		want = append(want, k)
		if _, err := s.Process(k, "", time.Now(), result(func(st *dialogs.State, _ *dialogs.Result) { st.Lang = "en" })); err != nil {
			t.Fatal(err)
		}
	}
	for _, size := range []int{1, 7, 25, 26, 1000} {
		var got []string
		after := ""
		for range 100 {
			page, next, bad, err := s.RegistrantsAfter(after, size)
			if err != nil || bad != 0 {
				t.Fatal(bad, err)
			}
			for _, st := range page {
				got = append(got, st.Key)
			}
			if next == "" {
				break
			}
			after = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("page size %d: %v", size, got)
		}
	}
	// A damaged record is skipped and counted, never a panic, and never
	// stops the pages after it.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRegistrants).Put([]byte("key010"), []byte("{")) }); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 7, 1000} {
		var got []string
		skipped, after := 0, ""
		for range 100 {
			page, next, bad, err := s.RegistrantsAfter(after, size)
			if err != nil {
				t.Fatal(err)
			}
			skipped += bad
			for _, st := range page {
				got = append(got, st.Key)
			}
			if next == "" {
				break
			}
			after = next
		}
		wantOK := slices.DeleteFunc(slices.Clone(want), func(k string) bool { return k == "key010" })
		if skipped != 1 || !slices.Equal(got, wantOK) {
			t.Errorf("page size %d with a damaged record: skipped %d, read %v", size, skipped, got)
		}
	}
}
