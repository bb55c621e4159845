package boltstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// appendAudit adds one hash-chained entry.
func appendAudit(tx *bolt.Tx, now time.Time, subject, action string) error {
	audit, meta := tx.Bucket(bucketAudit), tx.Bucket(bucketMeta)
	seq, err := audit.NextSequence()
	if err != nil {
		return err
	}
	e := store.AuditEntry{Seq: seq, At: now.UTC(), Subject: subject, Action: action, Prev: string(meta.Get(keyAuditHead))}
	e.Hash = auditHash(e)
	if err := putJSON(audit, u64(seq), e); err != nil {
		return err
	}
	return meta.Put(keyAuditHead, []byte(e.Hash))
}

func auditHash(e store.AuditEntry) string {
	e.Hash = ""
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// VerifyAudit walks the audit chain and reports the first broken link.
func (s *Store) VerifyAudit() (entries int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		prev := ""
		return tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
			var e store.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("audit entry %d is unreadable: %w", binary.BigEndian.Uint64(k), err)
			}
			if e.Prev != prev || auditHash(e) != e.Hash {
				return fmt.Errorf("audit chain broken at entry %d", e.Seq)
			}
			prev = e.Hash
			entries++
			return nil
		})
	})
	return entries, err
}

// Audit returns every audit entry in order.
func (s *Store) Audit() ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			var e store.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}
