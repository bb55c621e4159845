package boltstore

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// seedOutage writes n real outbox events (sealed under their citizen's
// data key, with every index entry recordEvent writes) of n/5 citizens,
// five each, all routed to endpoint e1 — which is down: every other event
// is still pending there and due — plus one pending heartbeat for each of
// three endpoints. It returns the citizens' keys.
func seedOutage(tb testing.TB, s *Store, n int) []string {
	tb.Helper()
	users := make([]string, max(1, n/5))
	for i := range users {
		users[i] = store.UserKey([]byte("pepper"), "telegram", strconv.Itoa(7_200_000_000+i))
	}
	const batch = 5000
	for from := 0; from < n; from += batch {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i := from; i < min(from+batch, n); i++ {
				typ, sev, kase := escalation.TypeRegistrationUpdated, escalation.SeverityInfo, ""
				if i%5 == 0 {
					typ, sev, kase = escalation.TypeSOSRaised, escalation.SeverityCritical, fmt.Sprintf("case_%07d", i/5+1)
				}
				ev := store.Event{ID: newEventID(), Type: typ, Version: store.EventVersion, CreatedAt: t0.Add(time.Duration(i) * time.Second),
					EmbassyID: "my-mekong", CaseID: kase, Severity: sev,
					Details: map[string]any{"fields": []string{"last_location"}, "city": "Phnom Penh", "lat": 11.55, "lon": 104.92}}
				seq, err := recordEvent(tx, ev, users[i%len(users)])
				if err != nil {
					return err
				}
				if i%2 == 0 {
					d := store.Delivery{Endpoint: "e1", Seq: seq, EventID: ev.ID, Type: ev.Type, CaseID: kase, Critical: true, NextAt: t0}
					if err := putPending(tx, d); err != nil {
						return err
					}
				}
			}
			return tx.Bucket(bucketMeta).Put(keyRouted, u64(tx.Bucket(bucketOutbox).Sequence()))
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	for _, ep := range []string{"e1", "e2", "e3"} {
		if _, err := s.Heartbeat(ep, "my-mekong", t0, time.Minute); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := s.Route(t0, func(ev store.Event) []store.Target {
		return []store.Target{{Endpoint: ev.Details["endpoint"].(string)}}
	}); err != nil {
		tb.Fatal(err)
	}
	return users
}

// BenchmarkMaintenanceWriterWait: how long a citizen's write waits behind
// each maintenance step of issue 15 item 3 — as it was ("before") and as
// it is ("now"), same binary, same run, same encrypted file, interleaved —
// on a file of N outbox events (default 100,000; CHECKIN_SCALE sets N) of
// N/5 citizens during an outage: half the events still pending at a
// down endpoint, all due. One citizen writes in a loop throughout
// (writerAlongside); "none" is that writer alone, the disk's own noise.
//
//   - erase: the erasure part of a /delete (eraseKeys) in its write
//     transaction; before, it read every outbox event and every pending row.
//   - sweep: Prune's erased-key sweep with the erased keys of the erasures
//     so far present; before, one transaction reading the whole outbox.
//   - heartbeats: the prober's DueOfType(endpoint.heartbeat); before, every
//     due row opened in one read transaction (a reader, not a writer: it
//     stalls writers only when bbolt must grow its memory map).
//   - due-index-build: building pending_due from the pending rows, as at the
//     first open of an older file; before, one write transaction.
//
// Reported per step: the writer's worst wait while it ran (ms) and the
// step's own time (ms), the worst over the iterations.
//
//	go test ./store/boltstore -run '^$' -bench MaintenanceWriterWait -benchtime 2x -count 3
func BenchmarkMaintenanceWriterWait(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CHECKIN_SCALE")); err == nil && v > 0 {
		n = v
	}
	m, err := seal.NewMasterKey(bytes.Repeat([]byte{0x3c}, seal.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	s, err := OpenWith(filepath.Join(b.TempDir(), "checkinbot.db"), Options{Keyring: &seal.Keyring{Current: m}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	users := seedOutage(b, s, n)
	next := 0
	victim := func() string { next++; return users[next*7919%len(users)] }
	stripDue := func() {
		if err := s.db.Update(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketPendingDue); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketPendingDue); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Delete(keyPendingDueBuilt)
		}); err != nil {
			b.Fatal(err)
		}
	}
	type step struct {
		name    string
		prepare func()
		run     func() error
	}
	later := t0.Add(time.Hour)
	steps := []step{
		{"erase-before", nil, func() error {
			key := victim()
			return s.update(func(tx *bolt.Tx) error { return eraseKeysBefore(tx, key, "", nil) })
		}},
		{"erase-now", nil, func() error {
			key := victim()
			return s.update(func(tx *bolt.Tx) error { return eraseKeys(tx, key, "", nil) })
		}},
		{"sweep-before", nil, func() error {
			return s.update(func(tx *bolt.Tx) error { _, err := sweepErasedBefore(tx); return err })
		}},
		{"sweep-now", nil, func() error { _, err := s.sweepErased(); return err }},
		{"heartbeats-before", nil, func() error {
			due, err := s.dueOfTypeBefore(escalation.TypeEndpointHeartbeat, later)
			if err == nil && len(due) != 3 {
				err = fmt.Errorf("%d heartbeats due, want 3", len(due))
			}
			return err
		}},
		{"heartbeats-now", nil, func() error {
			due, err := s.DueOfType(escalation.TypeEndpointHeartbeat, later)
			if err == nil && len(due) != 3 {
				err = fmt.Errorf("%d heartbeats due, want 3", len(due))
			}
			return err
		}},
		{"due-index-build-before", stripDue, s.buildPendingDueBefore},
		{"due-index-build-now", stripDue, s.buildPendingDue},
		{"none", nil, func() error { time.Sleep(300 * time.Millisecond); return nil }},
	}
	worst, took := map[string]time.Duration{}, map[string]time.Duration{}
	b.ResetTimer()
	for range b.N {
		for _, st := range steps {
			if st.prepare != nil {
				st.prepare()
			}
			stop := writerAlongside(b, s, t0)
			time.Sleep(20 * time.Millisecond) // the writer is running
			start := time.Now()
			err := st.run()
			d := time.Since(start)
			waits := stop()
			if err != nil {
				b.Fatalf("%s: %v", st.name, err)
			}
			worst[st.name] = max(worst[st.name], pct(waits, 1))
			took[st.name] = max(took[st.name], d)
		}
	}
	b.StopTimer()
	for _, st := range steps {
		b.ReportMetric(float64(worst[st.name].Microseconds())/1000, st.name+"-worst-wait-ms")
		if st.name != "none" {
			b.ReportMetric(float64(took[st.name].Microseconds())/1000, st.name+"-ms")
		}
	}
}
