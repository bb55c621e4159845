package boltstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
)

// fill writes n registrants (each with a reply, a case and an event) to s.
func fill(t *testing.T, s *boltstore.Store, from, n int) {
	t.Helper()
	if err := fillErr(s, from, n); err != nil {
		t.Fatal(err)
	}
}

func fillErr(s *boltstore.Store, from, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := from; i < from+n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("%064x", i)
			_, err := s.ProcessSend(key, "", now, &store.Envelope{Channel: "telegram", Address: fmt.Sprint(5550000 + i)},
				func(prev dialogs.State, found bool) dialogs.Result {
					st := prev
					st.Key, st.Status, st.NextDue = key, dialogs.StatusActive, now.Add(24*time.Hour)
					st.Profile.Name = fmt.Sprintf("Person %d", i)
					return dialogs.Result{State: st, Replies: []dialogs.Reply{{Text: "ok"}},
						Escalations: []dialogs.Escalation{{Type: "sos.raised", Severity: "critical", Case: dialogs.CaseOpen}}}
				})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func TestWrongOrMissingKeyFailsAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	right, wrong := testKeyring(t, 1), testKeyring(t, 2)
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: right})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 0, 3)
	s.Close()
	for _, tc := range []struct {
		name string
		ring *seal.Keyring
		kind error
		says []string
	}{
		{"wrong key", wrong, store.ErrWrongKey, []string{path, right.Current.ID(), wrong.Current.ID()}},
		{"no key", nil, store.ErrNeedKey, []string{path, right.Current.ID(), "CHECKIN_MASTER_KEY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := boltstore.OpenWith(path, boltstore.Options{Keyring: tc.ring})
			var fe *store.FileError
			if !errors.As(err, &fe) || !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want a FileError of kind %v", err, tc.kind)
			}
			for _, w := range tc.says {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if _, err := boltstore.CheckWith(path, boltstore.Options{Keyring: tc.ring}); tc.ring != nil && !errors.Is(err, tc.kind) {
				t.Errorf("check with the wrong key: %v", err)
			}
		})
	}
	// The right key still opens it, and check opens every record.
	rep, err := boltstore.CheckWith(path, boltstore.Options{Keyring: right})
	if err != nil || len(rep.Problems) > 0 || rep.Counts["registrants"] != 3 {
		t.Fatalf("check with the right key: %v %+v", err, rep)
	}
	// Without the key, check looks at the structure and says what it could not open.
	rep, err = boltstore.Check(path)
	if err != nil || len(rep.Problems) > 0 || rep.Counts["sealed_unopened"] == 0 {
		t.Fatalf("check without a key: %v %+v", err, rep)
	}
}

// A file written without encryption (schema 2, or --insecure-no-encryption)
// is sealed, record by record, in batches, the first time it is opened
// with a master key, and reads the same afterwards.
func TestClearFileIsSealedWhenOpenedWithAKey(t *testing.T) {
	defer boltstore.SetSealBatch(7)()
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 0, 40)
	before, _ := s.Outbox()
	s.Close()
	ring := testKeyring(t, 4)
	s, err = boltstore.OpenWith(path, boltstore.Options{Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Outbox()
	if err != nil || len(after) != len(before) || after[0].ID != before[0].ID {
		t.Fatalf("outbox after sealing: %v, %d events, want %d", err, len(after), len(before))
	}
	st, found, err := s.Registrant(fmt.Sprintf("%064x", 7))
	if err != nil || !found || st.Profile.Name != "Person 7" {
		t.Fatalf("registrant after sealing: %v %v %q", err, found, st.Profile.Name)
	}
	s.Close()
	opened, unopened, err := boltstore.OpenEverything(path, path, ring)
	if err != nil || unopened != 0 || len(opened) == 0 {
		t.Fatalf("after sealing: %v, %d values did not open, %d did", err, unopened, len(opened))
	}
	if _, err := boltstore.Open(path); !errors.Is(err, store.ErrNeedKey) {
		t.Fatalf("the sealed file opened without a key: %v", err)
	}
}

// Every sealed value is bound to its key: one flipped byte, or a value
// copied to another record of its bucket or to the same key of another
// bucket, is refused, never returned.
func TestTamperedValuesAreRefused(t *testing.T) {
	s := openSealed(t)
	fill(t, s, 0, 3)
	if err := s.RollCallStoreForTest(); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, bucket := range boltstore.SealedBuckets() {
		keys := s.Keys(bucket)
		if len(keys) < 2 {
			continue
		}
		checked++
		k1, k2 := keys[0], keys[1]
		orig, orig2 := s.RawValue(bucket, k1), s.RawValue(bucket, k2)
		if _, err := s.OpenRecord(bucket, k1); err != nil {
			t.Fatalf("%s: untouched value does not open: %v", bucket, err)
		}
		for i := 0; i < len(orig); i += 1 + len(orig)/40 {
			bad := bytes.Clone(orig)
			bad[i] ^= 0x20
			s.PutRaw(bucket, k1, bad)
			if p, err := s.OpenRecord(bucket, k1); err == nil {
				t.Errorf("%s: byte %d flipped, value returned (%d bytes)", bucket, i, len(p))
			}
		}
		s.PutRaw(bucket, k1, orig2) // another record's value
		if _, err := s.OpenRecord(bucket, k1); err == nil {
			t.Errorf("%s: a value moved to another key opened", bucket)
		}
		s.PutRaw(bucket, k1, orig)
		for _, other := range boltstore.SealedBuckets() {
			if other == bucket || s.RawValue(other, k1) == nil {
				continue
			}
			saved := s.RawValue(other, k1)
			s.PutRaw(other, k1, orig)
			if _, err := s.OpenRecord(other, k1); err == nil {
				t.Errorf("a %s value moved to %s opened", bucket, other)
			}
			s.PutRaw(other, k1, saved)
		}
	}
	if checked < 5 {
		t.Fatalf("only %d buckets had records to tamper with", checked)
	}
	// Through the API: a flipped registrant record is an error, not a registrant.
	key := fmt.Sprintf("%064x", 0)
	v := s.RawValue("registrants", []byte(key))
	v[len(v)-1] ^= 1
	s.PutRaw("registrants", []byte(key), v)
	if _, _, err := s.Registrant(key); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("Registrant of a tampered record: %v", err)
	}
	_, err := s.Process(key, "", time.Now(), func(prev dialogs.State, _ bool) dialogs.Result { return dialogs.Result{State: prev} })
	if !errors.Is(err, store.ErrBadEvent) {
		t.Fatalf("Process on a tampered record: %v, want ErrBadEvent", err)
	}
}

// Rotation under concurrent writes loses nothing: while new registrants
// and events are written, every data key is re-wrapped under the new
// master key; afterwards the new key alone opens every record, and the
// old one alone opens nothing.
func TestRotateUnderConcurrentWrites(t *testing.T) {
	defer boltstore.SetSealBatch(25)()
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	old, next := testKeyring(t, 5), testKeyring(t, 6)
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: old})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 0, 300)
	s.Close()
	both := &seal.Keyring{Current: next.Current, Old: []*seal.MasterKey{old.Current}}
	s, err = boltstore.OpenWith(path, boltstore.Options{Keyring: both})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- fillErr(s, 300, 300) }()
	n, err := s.RotateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n < 300 {
		t.Fatalf("re-wrapped %d keys, want at least the 300 old ones and the service key", n)
	}
	ids, err := s.MasterKeyIDs()
	if err != nil || len(ids) != 1 || ids[next.Current.ID()] != 601 {
		t.Fatalf("keys by master key after rotation: %v (%v)", ids, err)
	}
	s.Close()
	opened, unopened, err := boltstore.OpenEverything(path, path, next)
	if err != nil || unopened != 0 {
		t.Fatalf("with the new key alone: %v, %d values do not open", err, unopened)
	}
	regs := 0
	for _, ov := range opened {
		if ov.Bucket == "registrants" {
			regs++
		}
	}
	if regs != 600 {
		t.Fatalf("%d registrants open with the new key, want 600", regs)
	}
	if _, err := boltstore.OpenWith(path, boltstore.Options{Keyring: old}); !errors.Is(err, store.ErrWrongKey) {
		t.Fatalf("the old key still opens the file: %v", err)
	}
}
