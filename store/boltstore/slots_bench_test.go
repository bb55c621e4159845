package boltstore

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkCountSlots: what the slot counters add to one registrant write,
// beside the status counters the write already kept, in one binary and
// run. "daily check-in": the next due moves a day, the slot stays (no
// write); "time change": the slot moves (two counter writes). Each op
// runs in an open write transaction (no commit, no fsync): a commit costs
// milliseconds, so the ratio to "status counters" is an upper bound of
// the share.
func BenchmarkCountSlots(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	due := time.Date(2026, 3, 3, 1, 0, 0, 0, time.UTC)
	prev := dialogs.State{Key: "k", Channel: "telegram", Status: dialogs.StatusActive, Interval: 24 * time.Hour, NextDue: due, LastCheckin: due.Add(-24 * time.Hour)}
	daily := prev
	daily.NextDue, daily.LastCheckin = due.Add(24*time.Hour), due
	moved := prev
	moved.NextDue = due.Add(-15 * time.Minute)
	for _, bc := range []struct {
		name string
		run  func(tx *bolt.Tx) error
	}{
		{"status counters, daily check-in", func(tx *bolt.Tx) error { return countStatusOnly(tx, prev, daily) }},
		{"slots, daily check-in", func(tx *bolt.Tx) error {
			return countSlots(tx.Bucket(bucketStatCounts), prev, true, daily, false)
		}},
		{"slots, time change", func(tx *bolt.Tx) error {
			return countSlots(tx.Bucket(bucketStatCounts), prev, true, moved, false)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tx, err := s.db.Begin(true)
			if err != nil {
				b.Fatal(err)
			}
			defer tx.Rollback()
			for b.Loop() {
				if err := bc.run(tx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countStatusOnly is countRegistrant without the slot counters: the
// baseline of BenchmarkCountSlots.
func countStatusOnly(tx *bolt.Tx, prev, next dialogs.State) error {
	b := tx.Bucket(bucketStatCounts)
	from, to := statOf(prev), statOf(next)
	if from.status == to.status && from.overdue == to.overdue && !to.last.After(from.last) {
		return nil
	}
	if err := addCount(b, []byte(statStatus+from.status), -1); err != nil {
		return err
	}
	if err := addCount(b, []byte(statStatus+to.status), 1); err != nil {
		return err
	}
	return raiseLastCheckin(b, to.last)
}

// BenchmarkSlotLoads: the runner's read of the slot counters, at most once
// a minute: three channels with every slot counted.
func BenchmarkSlotLoads(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	err = s.db.Update(func(tx *bolt.Tx) error {
		for _, ch := range []string{"telegram", "whatsapp", "terminal"} {
			for slot := range dialogs.SlotsPerDay {
				if err := addCount(tx.Bucket(bucketStatCounts), []byte(slotKey(ch, slot)), int64(slot+1)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.SlotLoads(); err != nil {
			b.Fatal(err)
		}
	}
}
