package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// OpenedValue is one stored value that opened with one of the file's keys.
type OpenedValue struct {
	Bucket, Key string
	Plain       []byte
}

// OpenEverything reads the closed data file at path the way someone
// holding it, the data file at keysPath (the same file, or a later one) and
// the master keys in ring would: it unwraps every data key keysPath holds
// (the service key, every registrant's, every erased registrant's one-off
// key) and tries every sealed value of every bucket of path with every one
// of them (and, for events, the inner body too). It returns what opened
// and how many sealed values (or bodies) opened with no key.
func OpenEverything(path, keysPath string, ring *seal.Keyring) (opened []OpenedValue, unopened int, err error) {
	keys, err := fileKeys(keysPath, ring)
	if err != nil {
		return nil, 0, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		try := func(sealed, ad []byte) []byte {
			for _, k := range keys {
				if p, err := k.Open(sealed, ad); err == nil {
					return p
				}
			}
			unopened++
			return nil
		}
		for _, sb := range sealedBuckets {
			b := tx.Bucket(sb.name)
			if b == nil {
				continue
			}
			if err := b.ForEach(func(k, v []byte) error {
				_, sealed, ok := splitValue(sb.name, k, v)
				if !ok && v[0] == classRegistrant {
					sealed, ok = v[1:], true // an owner the key does not name: try anyway
				}
				if !ok {
					return fmt.Errorf("%s: a value that is not sealed", sb.name)
				}
				p := try(sealed, valueAD(sb.name, k, v[0]))
				if p == nil {
					return nil
				}
				opened = append(opened, OpenedValue{string(sb.name), string(k), p})
				if sb.kind == sealEvent {
					n, w := binary.Uvarint(p)
					rest := p[w+int(n):]
					m, w2 := binary.Uvarint(rest)
					if n > 0 {
						if body := try(rest[w2+int(m):], seal.AD(bucketOutbox, k, []byte("body"))); body != nil {
							opened = append(opened, OpenedValue{string(sb.name), string(k), body})
						}
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return opened, unopened, err
}

// ClearShape describes what the data file at path shows without any key:
// per bucket, every key with the given user keys, and any other
// registrant-sized hex or random id, replaced by placeholders, and the
// length of every stored value. Two files that give the same shape
// cannot be told apart by their clear parts.
func ClearShape(path string, buckets []string, userKeys []string) ([]string, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out []string
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range buckets {
			b := tx.Bucket([]byte(name))
			if b == nil {
				out = append(out, name+": none")
				continue
			}
			var rows []string
			ordinal := map[string]int{} // per-user position of a send-queue or purge row
			b.ForEach(func(k, v []byte) error {
				key := string(k)
				if (name == string(bucketSendq) || name == string(bucketPurge)) && len(k) > 9 && k[len(k)-9] == 0 {
					// The bucket's sequence interleaves citizens in the order
					// their acknowledgements committed (timing, not content):
					// keep each row's place among its citizen's rows.
					user := string(k[:len(k)-9])
					key = fmt.Sprintf("%s\x00#%d", user, ordinal[user])
					ordinal[user]++
				}
				for i, u := range userKeys {
					key = strings.ReplaceAll(key, u, fmt.Sprintf("<user%d>", i))
				}
				if i := strings.Index(key, erasedPrefix); i >= 0 {
					key = key[:i] + "<erased>"
				}
				row := fmt.Sprintf("%s: %q → %d bytes", name, key, len(v))
				if name == string(bucketStatCounts) {
					// Counters are clear values: the values themselves are
					// the shape (the scripts run on a fixed clock).
					row += fmt.Sprintf(" %x", v)
				}
				rows = append(rows, row)
				return nil
			})
			sort.Strings(rows)
			out = append(out, rows...)
			out = append(out, fmt.Sprintf("%s: sequence %d", name, b.Sequence()))
		}
		return nil
	})
	return out, err
}

// RawValue returns the stored bytes of one record (nil if none).
func (s *Store) RawValue(bucket string, key []byte) []byte {
	var v []byte
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			v = bytes.Clone(b.Get(key))
		}
		return nil
	})
	return v
}

// PutRaw overwrites one record's stored bytes, as someone editing the
// file would.
func (s *Store) PutRaw(bucket string, key, v []byte) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put(key, v) })
}

// Keys lists the record keys of a bucket.
func (s *Store) Keys(bucket string) [][]byte {
	var out [][]byte
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			b.ForEach(func(k, _ []byte) error { out = append(out, bytes.Clone(k)); return nil })
		}
		return nil
	})
	return out
}

// SetSealBatch makes sealing and rotation batches n records long until
// the returned function restores them.
func SetSealBatch(n int) func() {
	old := sealBatch
	sealBatch = n
	return func() { sealBatch = old }
}

// OpenRecord opens one stored record the way the store's readers do.
func (s *Store) OpenRecord(bucket string, key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucket)).Get(key)
		if v == nil {
			return fmt.Errorf("no record")
		}
		var err error
		if bucket == string(bucketOutbox) {
			out, _, err = eventOf(tx, key, v)
		} else {
			out, err = plainOf(tx, []byte(bucket), key, v)
		}
		out = bytes.Clone(out)
		return err
	})
	return out, err
}

// SealedBuckets names the buckets whose values are sealed.
func SealedBuckets() []string {
	var out []string
	for _, sb := range sealedBuckets {
		out = append(out, string(sb.name))
	}
	return out
}

// RollCallStoreForTest records a small roll call over the first two
// registrants, so its buckets have records.
func (s *Store) RollCallStoreForTest() error {
	var keys []string
	s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRegistrants).Cursor()
		for k, _ := c.First(); k != nil && len(keys) < 2; k, _ = c.Next() {
			keys = append(keys, string(k))
		}
		return nil
	})
	for i := range 2 {
		if err := s.CreateRollCall(store.RollCall{ID: fmt.Sprintf("rc_%d", i), Members: keys, Deadline: time.Now().Add(time.Hour)}); err != nil {
			return err
		}
	}
	return nil
}

// fileKeys unwraps every data key of the data file at path.
func fileKeys(path string, ring *seal.Keyring) ([]*seal.Key, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var keys []*seal.Key
	err = db.View(func(tx *bolt.Tx) error {
		if w := tx.Bucket(bucketMeta).Get(keyServiceKey); w != nil {
			k, err := ring.Unwrap(w, serviceOwner)
			if err != nil {
				return fmt.Errorf("service key: %w", err)
			}
			keys = append(keys, k)
		}
		return tx.Bucket(bucketKeys).ForEach(func(owner, w []byte) error {
			k, err := ring.Unwrap(w, registrantOwner(string(owner)))
			if err != nil {
				return fmt.Errorf("data key %.8s: %w", owner, err)
			}
			keys = append(keys, k)
			return nil
		})
	})
	return keys, err
}

// SeedRegistrants writes states as real registrant records, as Process
// would have left them — each sealed under its own data key (made here),
// with its due entry, registrant index row and counters — in one write
// transaction, in key order: how benchmarks seed a million registrants
// without a million commits. The index needs IndexWith first.
func SeedRegistrants(s *Store, states []dialogs.State, now time.Time) error {
	sort.Slice(states, func(i, j int) bool { return states[i].Key < states[j].Key })
	return s.db.Update(func(tx *bolt.Tx) error {
		due := appendBucket(tx, bucketDue)
		for _, st := range states {
			if err := putSealed(tx, bucketRegistrants, []byte(st.Key), st); err != nil {
				return err
			}
			if at := st.DueAt(); !at.IsZero() {
				if err := due.Put(dueKey(at, st.Key), nil); err != nil {
					return err
				}
			}
			if err := s.indexRegistrant(tx, st.Key, dialogs.State{}, dialogs.Result{State: st}, nil, now, nil); err != nil {
				return err
			}
			if err := countRegistrant(tx, dialogs.State{}, false, st, false); err != nil {
				return err
			}
		}
		return nil
	})
}

// NthDue returns the due time of the n-th armed timer (1 the earliest),
// and false if fewer are armed.
func NthDue(s *Store, n int) (time.Time, bool) {
	var at time.Time
	found := false
	s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		i := 0
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if i++; i == n {
				at, found = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC(), true
				return nil
			}
		}
		return nil
	})
	return at, found
}

// Depth is the B-tree depth of bucket name (1: a single leaf).
func Depth(s *Store, name string) int {
	d := 0
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(name)); b != nil {
			d = b.Stats().Depth
		}
		return nil
	})
	return d
}

// Disarm removes the due entries of keys (at their records' due times),
// so a benchmark's next tick fires the next timers of its spread, not
// the ones its last tick re-armed.
func Disarm(s *Store, keys []string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, key := range keys {
			raw := tx.Bucket(bucketRegistrants).Get([]byte(key))
			if raw == nil {
				continue
			}
			var st dialogs.State
			if err := getSealed(tx, bucketRegistrants, []byte(key), raw, &st); err != nil {
				return err
			}
			if at := st.DueAt(); !at.IsZero() {
				if err := tx.Bucket(bucketDue).Delete(dueKey(at, key)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// PageAllocBytes is how many bytes of pages the file's write transactions
// have allocated since it was opened: what commits copied and wrote.
func PageAllocBytes(s *Store) int64 { st := s.db.Stats(); return st.TxStats.GetPageAlloc() }

// PrepareCounts is how many writes were applied prepared and how many
// fell back to running inside the commit (prepare.go).
func (s *Store) PrepareCounts() (prepared, fellBack int64) {
	return s.prep.prepared.Load(), s.prep.fellBack.Load()
}

// SetAfterPrepare runs f between a write's prepare and its commit (nil:
// nothing). f may write to the store itself; it runs in the writer's
// goroutine, before the write is queued.
func (s *Store) SetAfterPrepare(f func(key string)) { s.afterPrepare = f }

// Warm reads every page of every bucket once, as a server's memory map is
// after its first day of traffic (a fresh start pays a page fault for each
// page first touched).
func Warm(s *Store) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			b.Stats() // walks every page of the bucket
			return nil
		})
	})
}

// IndexEntryRaw is the registrant's index entry as stored: its key in
// regindex_user and the (sealed) row under it; nil when not listed.
func (s *Store) IndexEntryRaw(key string) (k, v []byte) {
	s.db.View(func(tx *bolt.Tx) error {
		users, idx := tx.Bucket(bucketRegIndexUser), tx.Bucket(bucketRegIndex)
		if users == nil || idx == nil {
			return nil
		}
		if k = bytes.Clone(users.Get([]byte(key))); k != nil {
			v = bytes.Clone(idx.Get(k))
		}
		return nil
	})
	return k, v
}
