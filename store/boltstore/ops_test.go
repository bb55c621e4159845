package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// usedSize is how much of the data file at path its last commit uses
// (bbolt preallocates the file beyond it).
func usedSize(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// TestWriteBackupIsAStoreThatChecks: the copy is exactly the used part of
// the file, announced before the first byte, and a data file that Check
// accepts and Open serves with the same records.
func TestWriteBackupIsAStoreThatChecks(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "checkinbot.db")
	seedFile(t, live, 50)
	s, err := Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var buf bytes.Buffer
	var announced int64 = -1
	n, err := s.WriteBackup(&buf, func(size int64) {
		if buf.Len() != 0 {
			t.Error("size announced after the first byte")
		}
		announced = size
	})
	if err != nil || n != int64(buf.Len()) || announced != n {
		t.Fatalf("WriteBackup: n %d, err %v, announced %d, wrote %d", n, err, announced, buf.Len())
	}
	copyPath := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(copyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(copyPath)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("Check(copy): %v %v", err, rep)
	}
	want, _ := s.Stats()
	c, err := Open(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, _ := c.Stats()
	if rep.Counts["registrants"] != 50 || len(got.Registrants) != len(want.Registrants) {
		t.Errorf("copy holds %v registrants, live %v", got.Registrants, want.Registrants)
	}
	for k, v := range want.Registrants {
		if got.Registrants[k] != v {
			t.Errorf("status %s: copy %d, live %d", k, got.Registrants[k], v)
		}
	}
}

// TestProbeFollowsWriteFault: Probe fails exactly while writes fail.
func TestProbeFollowsWriteFault(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "checkinbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Probe(); err != nil {
		t.Fatalf("healthy store: %v", err)
	}
	fault := errors.New("no space left on device")
	s.SetWriteFault(fault)
	if err := s.Probe(); !errors.Is(err, fault) {
		t.Errorf("under a write fault Probe says %v", err)
	}
	s.SetWriteFault(nil)
	if err := s.Probe(); err != nil {
		t.Errorf("after the fault: %v", err)
	}
	var commits int
	s.SetCommitObserver(func(time.Duration, int) { commits++ })
	s.Probe()
	if commits != 1 {
		t.Errorf("commit observer saw %d commits of one probe", commits)
	}
}

// BenchmarkMmapSize: writes that grow the file (a new registrant each),
// 64 writers, with bbolt's default mapping and with mmapSize, each alone
// and while backups run back to back to io.Discard. Same binary, same
// run, same concurrency.
func BenchmarkMmapSize(b *testing.B) {
	for _, c := range []struct {
		name   string
		mmap   int
		backup bool
	}{
		{"default", 0, false}, {"1GiB", 1 << 30, false},
		{"default+backups", 0, true}, {"1GiB+backups", 1 << 30, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			saved := mmapSize
			mmapSize = c.mmap
			defer func() { mmapSize = saved }()
			s, err := Open(filepath.Join(b.TempDir(), "checkinbot.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			stop := make(chan struct{})
			var backups sync.WaitGroup
			if c.backup {
				backups.Add(1)
				go func() {
					defer backups.Done()
					for {
						select {
						case <-stop:
							return
						default:
							s.WriteBackup(io.Discard, nil)
						}
					}
				}()
			}
			var next atomic.Int64
			b.SetParallelism(64 / max(runtime.GOMAXPROCS(0), 1))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("user-%d", next.Add(1))
					s.ProcessSend(key, "", t0, &store.Envelope{Channel: "telegram", Address: key}, func(prev dialogs.State, _ bool) dialogs.Result {
						prev.Status, prev.Timer = dialogs.StatusActive, t0.Add(time.Hour)
						return dialogs.Result{State: prev, Audit: []string{"registered"},
							Replies: []dialogs.Reply{{Text: "Registered. Your next check-in is at 09:00, 03/03."}}}
					})
				}
			})
			b.StopTimer()
			close(stop)
			backups.Wait()
		})
	}
}
