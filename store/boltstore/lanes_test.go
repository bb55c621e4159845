package boltstore

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The commit goroutine's two lanes (store.go, commitLoop): writes someone
// waits on — a citizen's message above all, a duress check-in among them —
// must not share a commit with a queue of timers' writes, and the timers
// must still get through while citizens keep writing.

// laneLog records, for every write that committed, its label and the
// transaction it committed in (a bbolt write transaction's id is unique per
// commit), so a test can read the groups back.
type laneLog struct {
	mu   sync.Mutex
	txOf map[string]int
	ran  map[string]int // last transaction each write ran in (a write may run again)
}

func newLaneLog() *laneLog { return &laneLog{txOf: map[string]int{}, ran: map[string]int{}} }

func (l *laneLog) write(label string, inside func()) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		if inside != nil {
			inside()
		}
		l.mu.Lock()
		l.ran[label] = tx.ID()
		l.mu.Unlock()
		return tx.Bucket(bucketMeta).Put([]byte("lane_test:"+label), []byte{1})
	}
}

// committed notes that label's write returned nil: its last run committed.
func (l *laneLog) committed(label string) {
	l.mu.Lock()
	l.txOf[label] = l.ran[label]
	l.mu.Unlock()
}

func openLanes(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "checkinbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestUrgentWritesDoNotCommitWithQueuedBulk: while a commit is in
// progress, 200 bulk writes and then a handful of urgent ones queue up. The
// urgent ones must commit no later than any bulk one, and — when the commit
// in progress was bulk — in a group of their own. With one lane (or the
// bulk lane drained first) they would share the bulk writes' commit.
func TestUrgentWritesDoNotCommitWithQueuedBulk(t *testing.T) {
	for _, blockerLane := range []string{"urgent", "bulk"} {
		t.Run("in progress: "+blockerLane, func(t *testing.T) {
			s := openLanes(t)
			log := newLaneLog()
			release, entered := make(chan struct{}), make(chan struct{})
			var once, released sync.Once
			releaseBlocker := func() { released.Do(func() { close(release) }) }
			t.Cleanup(releaseBlocker) // before the store's Close, even when the test fails early
			blocker := log.write("blocker", func() {
				once.Do(func() { close(entered); <-release })
			})
			enqueue := s.update
			if blockerLane == "bulk" {
				enqueue = s.updateBulk
			}
			var wg sync.WaitGroup
			errs := make(chan error, 1000)
			submit := func(label string, enqueue func(func(*bolt.Tx) error) error) {
				wg.Go(func() {
					if err := enqueue(log.write(label, nil)); err != nil {
						errs <- fmt.Errorf("%s: %w", label, err)
						return
					}
					log.committed(label)
				})
			}
			wg.Go(func() {
				if err := enqueue(blocker); err != nil {
					errs <- err
				}
			})
			<-entered
			const bulk, urgent = 200, 5
			for i := range bulk {
				submit(fmt.Sprintf("bulk%d", i), s.updateBulk)
			}
			waitQueued(t, s.bulk, bulk)
			for i := range urgent {
				submit(fmt.Sprintf("urgent%d", i), s.update)
			}
			waitQueued(t, s.reqs, urgent)
			releaseBlocker()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			urgentTx := log.txOf["urgent0"]
			for i := range urgent {
				if tx := log.txOf[fmt.Sprintf("urgent%d", i)]; tx != urgentTx {
					t.Fatalf("urgent writes queued together committed in transactions %d and %d", urgentTx, tx)
				}
			}
			for i := range bulk {
				tx := log.txOf[fmt.Sprintf("bulk%d", i)]
				if tx < urgentTx {
					t.Fatalf("bulk%d committed (tx %d) before the urgent writes (tx %d), which were waiting too", i, tx, urgentTx)
				}
				// Behind a bulk commit the urgent writes go alone; behind
				// an urgent-only one the waiting bulk is owed a place.
				if blockerLane == "bulk" && tx == urgentTx {
					t.Fatalf("bulk%d committed in transaction %d with the urgent writes, behind a bulk commit: a citizen's write waited for a second group of timers", i, tx)
				}
			}
		})
	}
}

// waitQueued waits until lane holds n writes.
func waitQueued(t *testing.T, lane chan *writeRequest, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(lane) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d writes queued", len(lane), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBulkWritesAreNotStarved: urgent writes that never stop coming — a
// feeder keeps the urgent lane from ever being empty when a group is
// formed — must not keep bulk work out: every bulk write commits while
// they go on. With a loop that drains the bulk lane only when the urgent
// one is empty, this test times out.
func TestBulkWritesAreNotStarved(t *testing.T) {
	s := openLanes(t)
	log := newLaneLog()
	stop := make(chan struct{})
	var urgentDone atomic.Int64
	var writers sync.WaitGroup
	inFlight := make(chan struct{}, 3*maxGroup) // more than a group takes: some always wait
	writers.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case inFlight <- struct{}{}:
			}
			writers.Go(func() {
				defer func() { <-inFlight }()
				// A little work inside the transaction: the feeder refills
				// the lane faster than a group commits.
				slow := func() { time.Sleep(20 * time.Microsecond) }
				if err := s.update(log.write(fmt.Sprint("u", i), slow)); err != nil {
					t.Error(err)
					return
				}
				urgentDone.Add(1)
			})
		}
	})
	defer func() { close(stop); writers.Wait() }()
	for urgentDone.Load() < 1000 { // the urgent lane is busy
		time.Sleep(time.Millisecond)
	}
	var bulk sync.WaitGroup
	for i := range 100 {
		bulk.Go(func() {
			if err := s.updateBulk(log.write(fmt.Sprintf("b%d", i), nil)); err != nil {
				t.Error(err)
			}
		})
	}
	done := make(chan struct{})
	go func() { bulk.Wait(); close(done) }()
	before := urgentDone.Load()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("100 bulk writes did not commit in 20 s while urgent writes kept coming (%d urgent commits meanwhile)", urgentDone.Load()-before)
	}
	if urgentDone.Load() == before {
		t.Fatal("no urgent write committed while the bulk ones did: the test did not keep the urgent lane busy")
	}
}

// TestCloseAnswersBothLanes: writes queued in either lane when Close is
// called are committed, and later ones get ErrClosed.
func TestCloseAnswersBothLanes(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "checkinbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := newLaneLog()
	release, entered := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	releaseBlocker := func() { released.Do(func() { close(release) }) }
	defer releaseBlocker()
	go s.update(log.write("blocker", func() { once.Do(func() { close(entered); <-release }) }))
	<-entered
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 20 {
		enqueue := s.update
		if i%2 == 0 {
			enqueue = s.updateBulk
		}
		wg.Go(func() {
			if err := enqueue(log.write(fmt.Sprint(i), nil)); err != nil {
				failed.Add(1)
			}
		})
	}
	waitQueued(t, s.reqs, 10)
	waitQueued(t, s.bulk, 10)
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	time.Sleep(10 * time.Millisecond) // Close waits for the queued writes
	releaseBlocker()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d queued writes failed at Close", n)
	}
	if err := s.update(func(*bolt.Tx) error { return nil }); err != store.ErrClosed {
		t.Fatalf("write after Close: %v, want ErrClosed", err)
	}
	if err := s.updateBulk(func(*bolt.Tx) error { return nil }); err != store.ErrClosed {
		t.Fatalf("bulk write after Close: %v, want ErrClosed", err)
	}
}
