package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/internal/testkit/apptest"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

const backupTestToken = "backup-test-admin-token-0123456789"

// TestBackupUnderWriteLoad takes `checkinbot backup` from a running
// program while citizens keep writing, then restores it as the operator
// guide says (stop, replace the data file, start): the copy passes
// `checkinbot check`, and every citizen whose message was acknowledged
// before the backup began is in the restored program.
func TestBackupUnderWriteLoad(t *testing.T) {
	t.Setenv("CHECKIN_ADMIN_TOKEN", backupTestToken)
	p := apptest.MustRunApp(t, func(o *app.Options) {
		o.AdminListen, o.AdminToken = "unix:"+filepath.Join(t.TempDir(), "admin.sock"), backupTestToken
	})
	var (
		mu      sync.Mutex
		acked   []int64 // in acknowledgement order
		nextID  atomic.Int64
		stop    = make(chan struct{})
		writers sync.WaitGroup
		failure atomic.Value
	)
	nextID.Store(900000)
	for range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := nextID.Add(1)
				upd, _ := p.API.Text(fakeapi.User{ID: id, Lang: "en"}, "/start")
				if code := p.Post(upd); code != http.StatusOK {
					failure.Store("webhook answered " + strconv.Itoa(code))
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	p.WaitFor("some registrants", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 40 })
	mu.Lock()
	before := append([]int64(nil), acked...)
	mu.Unlock()

	file := filepath.Join(t.TempDir(), "copy.db")
	var out, errOut bytes.Buffer
	code := run([]string{"backup", "--admin", p.AdminAddr(), file}, nil, &out, &errOut)
	mu.Lock()
	during := len(acked)
	mu.Unlock()

	// The same copy held open on purpose: its read transaction stays open
	// until 20 more citizens' writes were acknowledged. Writers are not
	// blocked by a backup, and the copy is the state when it began.
	gated := filepath.Join(t.TempDir(), "gated.db")
	f, err := os.OpenFile(gated, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	atStart := len(acked)
	mu.Unlock()
	var atEnd int
	gate := &gateWriter{w: f, wait: func() {
		p.WaitFor("writes while a backup is open", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= atStart+20 })
		mu.Lock()
		atEnd = len(acked)
		mu.Unlock()
	}}
	gateStart := time.Now()
	if _, err := p.Store.WriteBackup(gate, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("a copy held open %s while %d→%d writes were acknowledged", time.Since(gateStart).Round(time.Millisecond), atStart, atEnd)
	f.Close()
	close(stop)
	writers.Wait()
	if f := failure.Load(); f != nil {
		t.Fatal(f)
	}
	if code != 0 {
		t.Fatalf("backup exit %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "checked ok") {
		t.Errorf("backup said %q", out.String())
	}
	out.Reset()
	if code := run([]string{"check", file}, nil, &out, &errOut); code != 0 {
		t.Fatalf("check of the copy: exit %d: %s%s", code, out.String(), errOut.String())
	}
	rep, err := boltstore.Check(gated)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("the copy taken under load does not check: %v %v", err, rep)
	}
	if n := rep.Counts["registrants"]; n < atStart || n > atStart+4 || atEnd < atStart+20 {
		t.Errorf("copy held open while %d→%d writes were acknowledged has %d registrants: want the state when it began (%d, +4 in flight)",
			atStart, atEnd, n, atStart)
	}

	// Restore: stop, replace the data file, start.
	live := p.Store.Path()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(live, data, 0o600); err != nil {
		t.Fatal(err)
	}
	restored := apptest.MustRunApp(t, func(o *app.Options) { o.DataDir = filepath.Dir(live) })
	for _, id := range before {
		key := store.UserKey(testkit.Pepper, "telegram", strconv.FormatInt(id, 10))
		if _, found, err := restored.Store.Registrant(key); err != nil || !found {
			t.Errorf("citizen %d, acknowledged before the backup, is missing from the restored copy (err %v)", id, err)
		}
	}
	st, err := restored.Store.Stats()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range st.Registrants {
		total += n
	}
	// The copy is one committed state: at least everyone before it, at
	// most everyone acknowledged by the time it finished (plus the four
	// writers' updates in flight).
	if total < len(before) || total > during+4 {
		t.Errorf("restored copy has %d registrants; want between %d and %d", total, len(before), during+4)
	}
	t.Logf("backup under load: %d registrants before, %d acknowledged when the backup returned, %d in the copy", len(before), during, total)
}

// TestBackupRefusals: a backup without the token, with a wrong one, to an
// existing file or with no serve running fails with a reason, and leaves
// no file behind.
func TestBackupRefusals(t *testing.T) {
	p := apptest.MustRunApp(t, func(o *app.Options) { o.AdminListen, o.AdminToken = "127.0.0.1:0", backupTestToken })
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.db")
	os.WriteFile(existing, []byte("keep me"), 0o600)
	for _, c := range []struct {
		name, token, addr, file, want string
	}{
		{"no token", "", p.AdminAddr(), "a.db", "CHECKIN_ADMIN_TOKEN is not set"},
		{"wrong token", "wrong-token-wrong-token-wrong", p.AdminAddr(), "b.db", "401"},
		{"existing file", backupTestToken, p.AdminAddr(), "existing.db", "exists"},
		{"nothing listening", backupTestToken, "127.0.0.1:1", "c.db", "cannot reach"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CHECKIN_ADMIN_TOKEN", c.token)
			var out, errOut bytes.Buffer
			code := run([]string{"backup", "--admin", c.addr, filepath.Join(dir, c.file)}, nil, &out, &errOut)
			if code != 1 || !strings.Contains(errOut.String(), c.want) {
				t.Errorf("exit %d, stderr %q: want 1 and %q", code, errOut.String(), c.want)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("refused backups left files: %v", entries)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("an existing file was overwritten")
	}
}

// gateWriter calls wait before its first write, holding the backup's read
// transaction open.
type gateWriter struct {
	w    io.Writer
	wait func()
	once sync.Once
}

func (g *gateWriter) Write(b []byte) (int, error) {
	g.once.Do(g.wait)
	return g.w.Write(b)
}

// usedBytes is how much of a data file its commits use, from the larger
// high-water mark of its two meta pages (bbolt preallocates the file
// beyond it, so half the file may cut nothing).
func usedBytes(b []byte) int {
	ps := int(binary.LittleEndian.Uint32(b[16+8:]))
	hwm := max(binary.LittleEndian.Uint64(b[16+40:]), binary.LittleEndian.Uint64(b[ps+16+40:]))
	return min(int(hwm)*ps, len(b))
}
