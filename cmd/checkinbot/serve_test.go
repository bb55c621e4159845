package main

import (
	"context"
	"crypto/rand"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/webhook"
)

// TestServeTelegramEndToEnd runs `serve` against a local fake Bot API and
// a real sink: a citizen registers, checks in, and checks in under duress;
// both replies are identical and the embassy gets a signed duress webhook.
func TestServeTelegramEndToEnd(t *testing.T) {
	api := fakeapi.New("42:serve-test")
	defer api.Close()
	key := make([]byte, 32)
	rand.Read(key)
	var mu sync.Mutex
	var got []webhook.Event
	sink := httptest.NewServer(&webhook.Sink{Secrets: [][]byte{key}, OnEvent: func(ev webhook.Event) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}})
	defer sink.Close()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "checkinbot.toml")
	os.WriteFile(cfg, []byte(exampleConfigFor(t, sink.URL, "SERVE_TEST_SECRET")+"\n[telegram]\nper_chat_interval = \"20ms\"\n"), 0o600)
	t.Setenv("CHECKIN_PEPPER", strings.Repeat("serve-pepper-", 4))
	t.Setenv("CHECKIN_MASTER_KEY", testMasterKey)
	t.Setenv("CHECKIN_TELEGRAM_TOKEN", api.Token)
	t.Setenv("CHECKIN_TELEGRAM_API_URL", api.URL)
	t.Setenv("SERVE_TEST_SECRET", webhook.FormatSecret(key))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"--config", cfg, "--data-dir", dir}, os.Stderr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	u := fakeapi.User{ID: 9001, Lang: "en"}
	for _, text := range []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
		"24h", "09:00", "blue mango", "blue mango", "1", "ok", "All good here. BLUE mango"} {
		api.Text(u, text)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(api.Sent(u.ID)) < 17 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sent := api.Sent(u.ID)
	if len(sent) < 17 {
		t.Fatalf("%d replies", len(sent))
	}
	normal, duress := sent[15].Params["text"], sent[16].Params["text"]
	if !strings.Contains(normal, "Check-in received") || normal != duress {
		t.Errorf("check-in %q, duress %q", normal, duress)
	}
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 4 { // two heartbeats, then the two events
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var types []string
	for _, ev := range got {
		if ev.Type != "endpoint.heartbeat" {
			types = append(types, ev.Type)
		}
	}
	if strings.Join(types, ",") != "registration.created,duress.triggered" && strings.Join(types, ",") != "duress.triggered,registration.created" {
		t.Errorf("embassy received %v", types)
	}
}

// TestSIGTERMDrainsReplies: `checkinbot serve` gets SIGTERM while the
// reply to an SOS is committed but not yet accepted by Telegram (its first
// send failed and waits for a retry). The process stops intake and keeps
// sending until the reply is accepted, within the drain timeout.
func TestSIGTERMDrainsReplies(t *testing.T) {
	api := fakeapi.New("42:sigterm-test")
	defer api.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "checkinbot.toml")
	os.WriteFile(cfg, []byte(exampleConfigFor(t, "", "")+"\n[telegram]\nper_chat_interval = \"20ms\"\n"), 0o600)
	t.Setenv("CHECKIN_PEPPER", strings.Repeat("sigterm-pepper-", 4))
	t.Setenv("CHECKIN_MASTER_KEY", testMasterKey)
	t.Setenv("CHECKIN_TELEGRAM_TOKEN", api.Token)
	t.Setenv("CHECKIN_TELEGRAM_API_URL", api.URL)

	done := make(chan int, 1)
	go func() {
		done <- run([]string{"serve", "--config", cfg, "--data-dir", dir, "--drain-timeout", "20s"}, nil, io.Discard, os.Stderr)
	}()
	u := fakeapi.User{ID: 9101, Lang: "en"}
	steps := []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
		"24h", "09:00", "blue mango", "blue mango", "1"}
	for _, text := range steps {
		api.Text(u, text)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(api.Sent(u.ID)) < len(steps) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(api.Sent(u.ID)) < len(steps) {
		t.Fatalf("registration: %d replies", len(api.Sent(u.ID)))
	}
	api.Fail("sendMessage", fakeapi.Failure{Status: 502})
	api.Text(u, "sos")
	for !slices.ContainsFunc(api.Calls("sendMessage"), func(c fakeapi.Call) bool { return c.Status == 502 }) {
		if time.Now().After(deadline) {
			t.Fatal("the SOS reply was never attempted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Committed, attempted once, waiting for its retry: now the signal.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited with %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
	sent := api.Sent(u.ID)
	if last := sent[len(sent)-1].Params["text"]; !strings.Contains(last, "Your embassy has been alerted") {
		t.Errorf("after SIGTERM the last message to the citizen is %q, want the SOS reply", last)
	}
}
