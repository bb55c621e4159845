package boltstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// Service gaps (DESIGN §4 service.resumed). The scheduler keeps a
// last-alive mark in the meta bucket; a start long after it, or a wall
// clock that stepped while running, is a gap in which no timer ran as
// scheduled. Each gap is told to every embassy once, as one
// service.resumed event without a registrant, instead of a flood of
// escalations for citizens nobody prompted meanwhile.

var keyAlive = []byte("alive")

// LastAlive returns the last-alive mark: the latest moment the scheduler
// recorded that it was running. found is false on a new data file.
func (s *Store) LastAlive() (at time.Time, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyAlive); len(v) == 8 {
			at, found = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(), true
		}
		return nil
	})
	return at, found, err
}

// MarkAlive records now as the latest moment the service was running. The
// scheduler calls it on a cadence, so a restart can tell how long it was
// down.
func (s *Store) MarkAlive(now time.Time) error {
	err := s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyAlive, u64(uint64(now.UnixNano())))
	})
	if err != nil {
		return fmt.Errorf("store: last-alive mark: %w", err)
	}
	return nil
}

// RecordGap writes one service.resumed event for each embassy (duplicates
// in embassies count once), with no registrant, and moves the last-alive
// mark to g.To, all in one transaction: a gap is reported exactly once,
// even if the process dies right after. It returns the events written.
func (s *Store) RecordGap(g store.Gap, embassies []string, now time.Time) ([]store.Event, error) {
	var events []store.Event
	err := s.update(func(tx *bolt.Tx) error {
		events = events[:0]
		seen := map[string]bool{}
		for _, id := range embassies {
			if seen[id] {
				continue
			}
			seen[id] = true
			ev := store.Event{ID: newEventID(), Type: escalation.TypeServiceResumed, Version: store.EventVersion, CreatedAt: now.UTC(),
				EmbassyID: id, Severity: escalation.SeverityInfo, Details: map[string]any{
					"kind": g.Kind, "from": g.From.UTC(), "to": g.To.UTC(), "seconds": g.Seconds(),
				}}
			if _, err := recordEvent(tx, ev, ""); err != nil {
				return err
			}
			events = append(events, ev)
		}
		if err := s.appendAudit(tx, now, "", store.AuditServiceResumed, "service.resumed "+g.Kind); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyAlive, u64(uint64(g.To.UnixNano())))
	})
	if err != nil {
		return nil, fmt.Errorf("store: record %s gap: %w", g.Kind, err)
	}
	return events, nil
}
