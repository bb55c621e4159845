// Package providertest runs the independent identity providers tests use —
// GovTech's mockpass and the certified oidc-provider, installed from the
// committed lockfile in identity/testdata/providers — as node processes on
// loopback ports. Only tests import it (the identity package's own and the
// App's end-to-end and browser tests), so both start providers one way.
package providertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/internal/testkit/syncbuf"
)

// StartTimeout is how long a provider may take to answer: node loads
// oidc-provider slowly on a loaded 2-core machine (CI once took over 30 s).
const StartTimeout = 120 * time.Second

// Dir is identity/testdata/providers, wherever the test runs from.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "providers")
}

// Require skips the test (or fails it in CI) when node or the installed
// providers are missing.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	if _, err := exec.LookPath("node"); err != nil {
		why = "node is not installed"
	} else {
		for _, m := range []string{"oidc-provider", filepath.Join("@opengovsg", "mockpass")} {
			if _, err := os.Stat(filepath.Join(Dir(), "node_modules", m)); err != nil {
				why = "run `npm ci` in identity/testdata/providers (scripts/test does)"
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("identity provider tests cannot run in CI: %s", why)
	}
	t.Skipf("identity provider tests skipped: %s", why)
}

// FreePort finds a free loopback port for a node process.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs a node script from Dir until the test ends and waits until
// ready answers 200; the process's output is logged when the test fails.
func Start(t testing.TB, env []string, ready string, args ...string) {
	t.Helper()
	cmd := exec.Command("node", args...)
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(), env...)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node %v: %v", args, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("node %v output:\n%s", args, out.String())
		}
	})
	for deadline := time.Now().Add(StartTimeout); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("node %v exited before %s answered:\n%s", args, ready, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %v not ready at %s after %v:\n%s", args, ready, StartTimeout, out.String())
		}
	}
}

// WriteECKey writes a fresh EC P-256 private key (PKCS#8 PEM) into a
// temporary file and returns its path and the key.
func WriteECKey(t testing.TB, name string) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, k
}
