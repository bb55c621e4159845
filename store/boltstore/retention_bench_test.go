package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// pruneOneTransaction is Prune as it was before batching (one write
// transaction over the whole archive, outbox and inbound ids), kept only
// as the benchmark's same-run baseline.
func (s *Store) pruneOneTransaction(cutoff time.Time) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		c := tx.Bucket(bucketDelivered).Cursor()
		limit := u64(uint64(cutoff.UnixNano()))
		var old [][]byte
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := tx.Bucket(bucketDelivered).Delete(k); err != nil {
				return err
			}
		}
		owed := map[uint64]bool{}
		_ = tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			owed[binary.BigEndian.Uint64(k[len(k)-8:])] = true
			return nil
		})
		var routed uint64
		if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
			routed = binary.BigEndian.Uint64(v)
		}
		outbox := tx.Bucket(bucketOutbox)
		var gone [][]byte
		oc := outbox.Cursor()
		for k, v := oc.First(); k != nil && binary.BigEndian.Uint64(k) <= routed; k, v = oc.Next() {
			var ev struct {
				CreatedAt time.Time `json:"created_at"`
			}
			if json.Unmarshal(v, &ev) == nil && ev.CreatedAt.Before(cutoff) && !owed[binary.BigEndian.Uint64(k)] {
				gone = append(gone, bytes.Clone(k))
			}
		}
		for _, k := range gone {
			if err := outbox.Delete(k); err != nil {
				return err
			}
			n++
		}
		inbound := tx.Bucket(bucketInbound)
		var seen [][]byte
		_ = inbound.ForEach(func(k, v []byte) error {
			if len(v) == 8 && int64(binary.BigEndian.Uint64(v)) < cutoff.Unix() {
				seen = append(seen, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range seen {
			if err := inbound.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// BenchmarkPruneWriterWait: one citizen writing in a loop while Prune
// removes N rows from each of the archive, the outbox and the inbound ids
// — batched (today's) and in one transaction (before), same binary, same
// run, same seed, same concurrency (one writer) — and, as the disk's own
// noise, the writer alone for about as long as the batched prune takes.
// Reported: the writer's worst and median wait during the prune, and the
// prune's own duration.
//
//	go test ./store/boltstore -run '^$' -bench PruneWriterWait -benchtime 1x
func BenchmarkPruneWriterWait(b *testing.B) {
	for _, rows := range []int{10_000, 100_000} {
		for _, mode := range []string{"batched", "one-transaction", "no-prune"} {
			b.Run(fmt.Sprintf("%s/rows=%d", mode, rows), func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					s := mustOpen(b)
					cutoff := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
					seedPrunable(b, s, cutoff, rows, 100, 0)
					stopWriter := writerAlongside(b, s, cutoff)
					b.StartTimer()
					start := time.Now()
					var err error
					switch mode {
					case "batched":
						_, err = s.Prune(cutoff)
					case "one-transaction":
						_, err = s.pruneOneTransaction(cutoff)
					default: // the disk's own noise: the writer alone, as long as a batched prune takes
						time.Sleep(time.Duration(rows/100_000+1) * 2 * time.Second)
					}
					took := time.Since(start)
					b.StopTimer()
					waits := stopWriter()
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(pct(waits, 1).Microseconds())/1000, "worst-wait-ms")
					b.ReportMetric(float64(pct(waits, 0.5).Microseconds())/1000, "median-wait-ms")
					b.ReportMetric(float64(took.Microseconds())/1000, "prune-ms")
					b.ReportMetric(float64(len(waits)), "writes")
					s.Close()
				}
			})
		}
	}
}

// BenchmarkRegistrantsAfterSweep: what one retention sweep's reading costs
// per registrant (pages of 1,000, each its own read transaction).
//
//	go test ./store/boltstore -run '^$' -bench RegistrantsAfterSweep -benchtime 3x
func BenchmarkRegistrantsAfterSweep(b *testing.B) {
	const n = 100_000
	s := mustOpen(b)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	err := s.db.Update(func(tx *bolt.Tx) error {
		regs := tx.Bucket(bucketRegistrants)
		for i := range n {
			key := store.UserKey([]byte("pepper"), "telegram", fmt.Sprint(i))
			st := dialogs.State{Key: key, Channel: "telegram", Address: fmt.Sprint(100000000 + i), Handle: "@someone", Lang: "th",
				Status: dialogs.StatusActive, Profile: dialogs.Profile{Nationality: "MY", Country: "KH", City: "Phnom Penh",
					Name: "Siti Aminah binti Abdullah", Passport: "A12345678", Employer: "Golden Star Trading", TrustedContact: "+60 12 345 6789"},
				RegisteredAt: t0, ConsentAt: t0, LastCheckin: t0, NextDue: t0.Add(24 * time.Hour), Timer: t0.Add(24 * time.Hour),
				Interval: 24 * time.Hour, CheckinTime: "09:00", Keyword: dialogs.Keyword{Hash: bytes.Repeat([]byte{7}, 32), Len: 10},
				Retention: dialogs.RetentionMarks{LastSeen: t0}}
			if err := putJSON(regs, []byte(key), st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	pol := dialogs.Retention{Withdrawn: 90 * 24 * time.Hour, Inactive: 180 * 24 * time.Hour, Notice: 14 * 24 * time.Hour}
	b.ResetTimer()
	for range b.N {
		read, due, after := 0, 0, ""
		for {
			page, next, _, err := s.RegistrantsAfter(after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			for _, st := range page {
				read++
				if pol.Step(st, t0.Add(time.Hour)) != dialogs.RetentionKeep {
					due++
				}
			}
			if next == "" {
				break
			}
			after = next
		}
		if read != n || due != 0 {
			b.Fatalf("read %d, due %d", read, due)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/registrant")
}
