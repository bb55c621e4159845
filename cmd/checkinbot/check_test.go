package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// cleanFile writes a data file through the store: registrants with timers
// and an SOS case.
func cleanFile(t *testing.T, path string) {
	t.Helper()
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := range 40 {
		key := store.UserKey([]byte("pepper"), "telegram", string(rune('a'+i)))
		_, err := s.Process(key, "", now, func(prev dialogs.State, _ bool) dialogs.Result {
			r := dialogs.Result{State: prev}
			r.State.Key, r.State.Status, r.State.Timer = key, dialogs.StatusActive, now.Add(time.Hour)
			r.State.Handle = "+85512345678"
			if i%4 == 0 {
				r.Escalations = []dialogs.Escalation{{Type: dialogs.EventSOSRaised, Severity: dialogs.SeverityCritical,
					EmbassyID: "my-mekong", Case: dialogs.CaseOpen}}
			}
			r.Audit = []string{"checkin"}
			return r
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
}

// rootPage is the page of the file's root bucket, read from the meta page
// with the higher transaction id (bbolt's layout, little-endian).
func rootPage(t *testing.T, b []byte) int64 {
	t.Helper()
	ps := int64(binary.LittleEndian.Uint32(b[16+8:]))
	m := int64(0)
	if binary.LittleEndian.Uint64(b[ps+16+48:]) > binary.LittleEndian.Uint64(b[16+48:]) {
		m = ps
	}
	return int64(binary.LittleEndian.Uint64(b[m+16+16:])) * ps
}

// damaged data files, each made from a clean one.
var damaged = []struct {
	name, want string
	damage     func(t *testing.T, b []byte) []byte
}{
	{"zero-length", "empty (0 bytes)", func(t *testing.T, b []byte) []byte { return nil }},
	{"random bytes", "not a checkinbot data file", func(t *testing.T, b []byte) []byte {
		return bytes.Repeat([]byte{0x5a, 0xc3, 0x11, 0x07}, len(b)/4)
	}},
	{"truncated to half", "truncated", func(t *testing.T, b []byte) []byte { return b[:usedBytes(b)/2] }},
	{"truncated to one page", "truncated", func(t *testing.T, b []byte) []byte { return b[:os.Getpagesize()] }},
	{"both meta pages damaged", "corrupt", func(t *testing.T, b []byte) []byte {
		ps := os.Getpagesize()
		b[16+40] ^= 1
		b[ps+16+40] ^= 1
		return b
	}},
	{"root page damaged", "corrupt", func(t *testing.T, b []byte) []byte {
		b[rootPage(t, b)+8] ^= 1
		return b
	}},
}

// buildBinary builds checkinbot into a temp dir once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "checkinbot")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBinaryRefusesDamagedFiles runs the built program — check, demo and
// serve — on each damaged file: exit status 1, one clear line naming the
// file, no panic or stack trace, and the file left byte-identical.
func TestBinaryRefusesDamagedFiles(t *testing.T) {
	bin := buildBinary(t)
	base := t.TempDir()
	clean := filepath.Join(base, "clean.db")
	cleanFile(t, clean)
	pristine, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range damaged {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "checkinbot.db")
			bad := d.damage(t, bytes.Clone(pristine))
			os.WriteFile(path, bad, 0o600)
			cfg := filepath.Join(t.TempDir(), "checkinbot.toml")
			os.WriteFile(cfg, []byte(exampleConfigFor(t, "", "")), 0o600)
			for _, args := range [][]string{{"check", path}, {"demo", "--data-dir", dir}, {"serve", "--config", cfg, "--data-dir", dir}} {
				cmd := exec.Command(bin, args...)
				cmd.Env = append(os.Environ(), "CHECKIN_PEPPER="+strings.Repeat("p", 40), "CHECKIN_MASTER_KEY="+testMasterKey, "CHECKIN_TELEGRAM_TOKEN=1:x",
					"CHECKIN_TELEGRAM_API_URL=http://127.0.0.1:1")
				cmd.Stdin = strings.NewReader("")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := cmd.ProcessState.ExitCode()
				msg := stderr.String()
				if err == nil || code != 1 {
					t.Errorf("%s: exit %d, want 1\n%s", args[0], code, msg)
				}
				// serve logs its configuration warnings first; then the
				// error is one line.
				var errLines []string
				for _, l := range strings.Split(strings.TrimSpace(msg), "\n") {
					if strings.HasPrefix(l, "checkinbot: ") {
						errLines = append(errLines, l)
					}
				}
				if len(errLines) != 1 || !strings.Contains(errLines[0], path) || !strings.Contains(errLines[0], d.want) {
					t.Errorf("%s: want one error line naming %s and %q, got:\n%s", args[0], path, d.want, msg)
				}
				for _, bad := range []string{"panic", "goroutine", "SIGBUS", "SIGSEGV", "+85512345678"} {
					if strings.Contains(msg+stdout.String(), bad) {
						t.Errorf("%s: output contains %q:\n%s", args[0], bad, msg)
					}
				}
				if got, _ := os.ReadFile(path); !bytes.Equal(got, bad) {
					t.Fatalf("%s changed the damaged file", args[0])
				}
				t.Logf("%s: %s", args[0], strings.TrimSpace(msg))
			}
		})
	}
}

// TestCheckCommand: a clean file is "ok" with exit 0; a file with a
// damaged page lists it with exit 1; a file held by a running store is
// refused.
func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checkinbot.db")
	cleanFile(t, path)
	code, out, errOut := runMain(t, "", "check", path)
	if code != 0 || !strings.Contains(out, path+": ok (") || !strings.Contains(out, "registrants 40") {
		t.Errorf("clean file: exit %d\n%s%s", code, out, errOut)
	}

	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runMain(t, "", "check", path)
	s.Close()
	if code != 1 || !strings.Contains(errOut, "in use by another checkinbot process") {
		t.Errorf("locked file: exit %d %s", code, errOut)
	}

	b, _ := os.ReadFile(path)
	b[rootPage(t, b)+8] ^= 1
	os.WriteFile(path, b, 0o600)
	code, out, errOut = runMain(t, "", "check", path)
	if code != 1 || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(path)+`: page \d+: `).MatchString(out) ||
		!strings.Contains(errOut, "problem(s) found") {
		t.Errorf("damaged page: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := runMain(t, "", "check"); code != 2 {
		t.Errorf("no file: exit %d, want 2", code)
	}
}

// TestServeCreatesDataDir: serve creates a missing data directory, mode
// 0700, as demo does, and its data file in it.
func TestServeCreatesDataDir(t *testing.T) {
	api := fakeapi.New("42:datadir-test")
	defer api.Close()
	dir := filepath.Join(t.TempDir(), "var", "lib", "checkinbot")
	t.Setenv("CHECKIN_PEPPER", strings.Repeat("serve-pepper-", 4))
	t.Setenv("CHECKIN_MASTER_KEY", testMasterKey)
	t.Setenv("CHECKIN_TELEGRAM_TOKEN", api.Token)
	t.Setenv("CHECKIN_TELEGRAM_API_URL", api.URL)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := filepath.Join(t.TempDir(), "checkinbot.toml")
	os.WriteFile(cfg, []byte(exampleConfigFor(t, "", "")), 0o600)
	go func() { done <- serve(ctx, []string{"--config", cfg, "--data-dir", dir}, os.Stderr) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, "checkinbot.db")); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "checkinbot.db")); err != nil {
		t.Error(err)
	}
}
