package bot_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkFair is the headline benchmark (issue 15 item 1, docs/benchmarks.md):
// the runner against the raw bbolt Batch ceiling at the same concurrency,
// in one binary, in one run, on one disk, with the sides interleaved so
// the disk's drift hits them alike. Four sides, each processing b.N
// check-ins per sub-benchmark (so ns/op is the time of one check-in on
// every side together, not a figure to quote):
//
//   - raw: one bbolt DB.Batch per check-in on a fresh file (NoSync false,
//     bbolt's default, as the store's), writing the least a check-in
//     must: the registrant record (the state a full registration left,
//     serialised as JSON and sealed and padded as the store seals it), the
//     due-time index entry moved, and the inbound update id.
//   - runner: the real bot.Runner over the real boltstore, encrypted with a
//     keyring and an audit key as `serve` has; each user sends "ok" with a
//     Telegram update id, as the Telegram channel submits it, and the
//     platform accepts every reply (the acknowledgement commit is part of
//     the cost: each round ends when every reply is acknowledged).
//   - old: the runner on a second encrypted store, registered alike, with
//     writes prepared outside the commit turned off
//     (boltstore.Store.SetPrepare(false)): every event wholly inside the
//     commit goroutine, as before issue 15 item 2, so what preparing buys
//     is a ratio of the same run.
//   - insecure: the same runner over a store without a keyring (`serve
//     --insecure-no-encryption`), so encryption's cost is a ratio too.
//
// Users are registered beforehand (untimed) with every optional field
// filled. The reply floor is off: it is a per-message wait, not work, and
// would hold one user to 20 messages a second.
//
// With CHECKIN_FAIR_CPUPROFILE=path it writes a CPU profile of the timed
// rounds of each concurrency to path.users=N: every side's goroutines are
// labelled side=<name> and each store's commit goroutine store=<file>, so
// `go tool pprof -tagfocus` splits the time between them.
//
//	go test ./bot -run '^$' -bench Fair -benchtime 10s -count 3
func BenchmarkFair(b *testing.B) {
	for _, users := range []int{1, 64, 1024} {
		f := newFairFixture(b, users)
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			sides := []fairSide{
				{name: "raw", run: f.raw},
				{name: "runner", run: func(b *testing.B, n int) { f.runner(b, f.sealed, n) }},
				{name: "old", run: func(b *testing.B, n int) { f.runner(b, f.old, n) }},
				{name: "insecure", run: func(b *testing.B, n int) { f.runner(b, f.clear, n) }},
			}
			if path := os.Getenv("CHECKIN_FAIR_CPUPROFILE"); path != "" {
				// The timed rounds only, without the fixture's registrations.
				stop := fairProfile(b, fmt.Sprintf("%s.users=%d", path, users))
				defer stop()
			}
			elapsed := make([]time.Duration, len(sides))
			rounds := min(fairRounds, b.N)
			b.ResetTimer()
			for round := range rounds {
				n := b.N / rounds
				if round < b.N%rounds {
					n++
				}
				// Rotate the order each round, so no side always runs
				// first (on a disk just synced by the side before it).
				for i := range sides {
					s := (round + i) % len(sides)
					start := time.Now()
					// Labelled, so a CPU profile tells the sides apart
					// (every goroutine a side starts inherits the label;
					// the stores' commit goroutines do not).
					pprof.Do(context.Background(), pprof.Labels("side", sides[s].name), func(context.Context) { sides[s].run(b, n) })
					elapsed[s] += time.Since(start)
				}
			}
			b.StopTimer()
			rate := make([]float64, len(sides))
			for i, s := range sides {
				rate[i] = float64(b.N) / elapsed[i].Seconds()
				b.ReportMetric(rate[i], s.name+"-msgs/s")
			}
			b.ReportMetric(rate[1]/rate[0], "runner/raw")
			b.ReportMetric(rate[2]/rate[0], "old/raw")
			b.ReportMetric(rate[1]/rate[2], "runner/old")
			b.ReportMetric(rate[3]/rate[0], "insecure/raw")
			b.ReportMetric(rate[1]/rate[3], "runner/insecure")
			b.ReportMetric(float64(f.recordSize), "record-B")
		})
	}
}

// fairProfile starts a CPU profile into path and returns what stops it.
func fairProfile(b *testing.B, path string) func() {
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		b.Fatalf("%v (CHECKIN_FAIR_CPUPROFILE and -cpuprofile do not go together)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := out.Close(); err != nil {
			b.Error(err)
		}
	}
}

// fairRounds is how many times each side takes its turn per sub-benchmark.
const fairRounds = 4

// fairSide is one side of BenchmarkFair: run processes n check-ins spread
// over the fixture's users.
type fairSide struct {
	name string
	run  func(b *testing.B, n int)
}

// fairFixture holds what the sides of BenchmarkFair run against for one
// concurrency: every user registered on each runner's store, and the raw
// file holding each user's sealed record and due entry.
type fairFixture struct {
	users              int
	sealed, old, clear *bot.Runner
	db                 *bolt.DB
	raws               []*rawUser
	recordSize         int
	update             atomic.Int64 // Telegram update ids, shared by every side
}

// rawUser is one user as the raw side holds them: their state, data key
// and current due-index key, touched only by the user's goroutine.
type rawUser struct {
	key   string
	st    dialogs.State
	dkey  *seal.Key
	dueAt time.Time
}

var (
	rawRegistrants = []byte("registrants")
	rawDue         = []byte("due")
	rawInbound     = []byte("inbound")
)

// fullRegistration is a registration answering every optional question
// (passport, employer, trusted contact), then a phone number through the
// status update; a shared location follows (fairRegister).
var fullRegistration = []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah binti Abdullah",
	"A12345678", "Golden Star Garments Co., Ltd.", "Aunty Mei +60 12 345 6789", "24h", "09:00", "blue mango",
	"blue mango", "1", "/status", "3", "+855 12 345 678"}

func newFairFixture(b *testing.B, users int) *fairFixture {
	b.Helper()
	f := &fairFixture{users: users}
	dir := b.TempDir()
	// As `serve` opens them: the audit key derived from the master key.
	sealedOpt := boltstore.Options{Keyring: testkit.MasterKey, AuditKey: testkit.MasterKey.Current.Derive("audit")}
	open := func(name string, opt boltstore.Options) *bot.Runner {
		var s *boltstore.Store
		var err error
		// The store's commit goroutine, started here, keeps the label.
		pprof.Do(context.Background(), pprof.Labels("store", name), func(context.Context) {
			s, err = boltstore.OpenWith(filepath.Join(dir, name), opt)
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		s.SetPrepare(name != "old.db")
		r := testkit.RunnerOn(b, s)
		r.Register("telegram", acceptor{})
		return r
	}
	f.sealed = open("sealed.db", sealedOpt)
	f.old = open("old.db", sealedOpt)
	f.clear = open("clear.db", boltstore.Options{})
	var wg sync.WaitGroup
	for _, r := range []*bot.Runner{f.sealed, f.old, f.clear} {
		for u := range users {
			wg.Go(func() { f.register(b, r, u) })
		}
	}
	wg.Wait()
	drain(b, f.sealed)
	drain(b, f.old)
	drain(b, f.clear)
	// The size of a record the store wrote, read from its closed file, to
	// check the raw side writes records of the same size (below).
	f.sealed.Store.(*boltstore.Store).Close()
	stored := storedRecordSize(b, filepath.Join(dir, "sealed.db"), store.UserKey(testkit.Pepper, "telegram", fairAddress(0)))
	f.sealed = open("sealed.db", sealedOpt)

	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	f.db = db
	ss := f.sealed.Store.(*boltstore.Store)
	err = db.Update(func(tx *bolt.Tx) error {
		regs, err := tx.CreateBucket(rawRegistrants)
		if err != nil {
			return err
		}
		due, err := tx.CreateBucket(rawDue)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(rawInbound); err != nil {
			return err
		}
		for u := range users {
			key := store.UserKey(testkit.Pepper, "telegram", fairAddress(u))
			st, found, err := ss.Registrant(key)
			if err != nil || !found {
				return fmt.Errorf("user %d not registered: %v", u, err)
			}
			if err := fullProfile(st); err != nil {
				return fmt.Errorf("user %d: %w", u, err)
			}
			dkey, err := seal.NewKey(seal.NewDataKey())
			if err != nil {
				return err
			}
			ru := &rawUser{key: key, st: st, dkey: dkey, dueAt: st.DueAt()}
			v, err := ru.record()
			if err != nil {
				return err
			}
			f.recordSize = len(v)
			if err := regs.Put([]byte(key), v); err != nil {
				return err
			}
			if err := due.Put(rawDueKey(ru.dueAt, key), nil); err != nil {
				return err
			}
			f.raws = append(f.raws, ru)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if f.recordSize != stored {
		b.Fatalf("the raw side's record is %d bytes, the store's %d: the raw side does not write what a check-in writes", f.recordSize, stored)
	}
	return f
}

// storedRecordSize is the length of key's value in the registrants bucket
// of the bbolt file at path (closed).
func storedRecordSize(b *testing.B, path, key string) int {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	n := 0
	db.View(func(tx *bolt.Tx) error {
		n = len(tx.Bucket(rawRegistrants).Get([]byte(key)))
		return nil
	})
	return n
}

func fairAddress(u int) string { return strconv.Itoa(7_700_000_000 + u) }

// register walks user u through fullRegistration and shares a location.
func (f *fairFixture) register(b *testing.B, r *bot.Runner, u int) {
	inputs := make([]bot.Inbound, 0, len(fullRegistration)+1)
	for _, text := range fullRegistration {
		inputs = append(inputs, bot.Inbound{Kind: dialogs.KindText, Text: text})
	}
	inputs = append(inputs, bot.Inbound{Kind: dialogs.KindLocation, Lat: 11.5564, Lon: 104.9282})
	for _, in := range inputs {
		in.Channel, in.Address, in.Handle, in.LangHint = "telegram", fairAddress(u), "@siti_aminah", "en"
		in.MessageID, in.DeleteID = f.nextUpdate()
		if err := r.Handle(context.Background(), in); err != nil {
			b.Error(err)
			return
		}
	}
}

// nextUpdate is a fresh Telegram update id and message id, as the Telegram
// channel gives every update (bot/telegram mapUpdate).
func (f *fairFixture) nextUpdate() (messageID, deleteID string) {
	n := f.update.Add(1)
	return "u" + strconv.FormatInt(n, 10), strconv.FormatInt(n, 10)
}

// fullProfile checks that the registration filled every optional field,
// so the records measured are as large as a real full registration's.
func fullProfile(st dialogs.State) error {
	p := st.Profile
	for name, v := range map[string]string{"passport": p.Passport, "employer": p.Employer, "trusted contact": p.TrustedContact,
		"phone": p.Phone, "handle": st.Handle, "name": p.Name, "city": p.City} {
		if v == "" {
			return fmt.Errorf("registration left %s empty", name)
		}
	}
	if p.LastLocation == nil || !st.Keyword.Set() || st.Status != dialogs.StatusActive || st.DueAt().IsZero() {
		return fmt.Errorf("registration incomplete: location %v, keyword %v, status %q, due %v",
			p.LastLocation != nil, st.Keyword.Set(), st.Status, st.DueAt())
	}
	return nil
}

// record is the user's registrant record as boltstore stores it with
// encryption: the state's JSON, sealed under the user's data key with
// additional data naming bucket, key and class, padded as if it held the
// duress fields (160 bytes reserved), after the class byte 'R'.
func (u *rawUser) record() ([]byte, error) {
	enc, err := json.Marshal(&u.st)
	if err != nil {
		return nil, err
	}
	ad := seal.AD(rawRegistrants, []byte(u.key), []byte{'R'})
	return append([]byte{'R'}, u.dkey.SealAtLeast(enc, ad, len(enc)+160)...), nil
}

// rawDueKey is the store's due-index key: the due time (Unix ns) ‖ user key.
func rawDueKey(at time.Time, key string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())), key...)
}

// raw processes n check-ins the minimal way: per check-in the user's
// goroutine updates the state, serialises and seals it (outside the
// transaction, in parallel), then one Batch writes the record, moves the
// due entry and records the update id.
func (f *fairFixture) raw(b *testing.B, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, u := range f.raws {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				now := time.Now()
				u.st.LastCheckin, u.st.NextDue, u.st.Timer = now, now.Add(u.st.Interval), now.Add(u.st.Interval)
				u.st.Retention.LastSeen = now
				v, err := u.record()
				if err != nil {
					b.Error(err)
					return
				}
				oldDue, newDue := rawDueKey(u.dueAt, u.key), rawDueKey(u.st.DueAt(), u.key)
				id, _ := f.nextUpdate()
				err = f.db.Batch(func(tx *bolt.Tx) error {
					if err := tx.Bucket(rawRegistrants).Put([]byte(u.key), v); err != nil {
						return err
					}
					due := tx.Bucket(rawDue)
					if err := due.Delete(oldDue); err != nil {
						return err
					}
					if err := due.Put(newDue, nil); err != nil {
						return err
					}
					return tx.Bucket(rawInbound).Put([]byte("telegram:"+id), binary.BigEndian.AppendUint64(nil, uint64(now.Unix())))
				})
				if err != nil {
					b.Error(err)
					return
				}
				u.dueAt = u.st.DueAt()
			}
		})
	}
	wg.Wait()
}

// runner processes n check-ins through r, each user sending "ok" with a
// fresh update id, and waits until every reply is acknowledged.
func (f *fairFixture) runner(b *testing.B, r *bot.Runner, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for u := range f.users {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				in := bot.Inbound{Channel: "telegram", Address: fairAddress(u), Handle: "@siti_aminah", LangHint: "en",
					Kind: dialogs.KindText, Text: "ok"}
				in.MessageID, in.DeleteID = f.nextUpdate()
				if err := r.Handle(context.Background(), in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	drain(b, r) // every acknowledgement committed: part of the cost
}
