package boltstore

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// TestCaseIndexesBackfilledAtOpen opens files written before the case
// indexes existed (without the status index; without either) and checks
// that every status-filtered page then lists exactly the cases the cases
// bucket holds in that status, newest first.
func TestCaseIndexesBackfilledAtOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop [][]byte
	}{
		{"status index missing", [][]byte{bucketCaseStatusIndex}},
		{"both indexes missing", [][]byte{bucketCaseIndex, bucketCaseStatusIndex}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "checkinbot.db")
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			seedCases(t, s, 3000)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error {
				for _, b := range tc.drop {
					if err := tx.DeleteBucket(b); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			db.Close()

			s, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// The truth, from the cases bucket alone: ids by embassy and
			// status, newest first.
			want := map[string][]string{}
			if err := s.db.View(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketCases).ForEach(func(k, v []byte) error {
					var c store.Case
					if err := json.Unmarshal(v, &c); err != nil {
						return err
					}
					want[c.EmbassyID+"/"+string(c.Status)] = append(want[c.EmbassyID+"/"+string(c.Status)], c.ID)
					return nil
				})
			}); err != nil {
				t.Fatal(err)
			}
			for _, emb := range []string{"emb-1", "emb-2"} {
				for _, st := range escalation.AllCaseStatuses {
					ids := want[emb+"/"+string(st)]
					slices.Reverse(ids)
					var got []string
					q := store.CaseQuery{Embassy: emb, Status: st, Limit: 200}
					for {
						p, err := s.Cases(q)
						if err != nil {
							t.Fatal(err)
						}
						for _, c := range p.Cases {
							got = append(got, c.ID)
						}
						if p.Next == 0 {
							break
						}
						q.Before = p.Next
					}
					if !slices.Equal(got, ids) {
						t.Errorf("%s %s: %d cases listed, want %d", emb, st, len(got), len(ids))
					}
				}
			}
		})
	}
}
