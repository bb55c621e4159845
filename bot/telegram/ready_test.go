package telegram_test

import (
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot/telegram"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
)

// waitReady waits (generously: the bound is not what is tested) until
// the channel's readiness is want, and returns the reason.
func waitReady(t *testing.T, ch *telegram.Channel, want bool) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := ch.Ready()
		if ok == want {
			return why
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness stayed %v (%q), want %v", ok, why, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadyFollowsGetUpdates: polling, the channel is ready while
// getUpdates succeeds; when Telegram answers errors for longer than
// ReadyWithin it is not, naming the call; it recovers with the next
// successful poll, and a stopped channel is not ready.
func TestReadyFollowsGetUpdates(t *testing.T) {
	// The world long-polls for 1 s: ReadyWithin is raised to 2 s.
	w := newWorld(t, telegram.Options{ReadyWithin: time.Millisecond})
	waitReady(t, w.ch, true)
	// Five failures in a row: 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s of backoff,
	// beyond 2 s without a successful poll.
	f := fakeapi.Failure{Status: 502}
	w.api.Fail("getUpdates", f, f, f, f, f)
	why := waitReady(t, w.ch, false)
	if !strings.Contains(why, "getUpdates") {
		t.Errorf("reason %q does not name getUpdates", why)
	}
	waitReady(t, w.ch, true)
	w.stop()
	if ok, why := w.ch.Ready(); ok || !strings.Contains(why, "not polling") {
		t.Errorf("a stopped channel: ready %v (%q)", ok, why)
	}
}

// TestReadyInWebhookMode: in webhook mode the channel is ready once
// Telegram accepted setWebhook, and not after it stopped.
func TestReadyInWebhookMode(t *testing.T) {
	w := newWorld(t, telegram.Options{Webhook: &telegram.Webhook{URL: "https://bot.example/tg", Secret: "s3cret-token"}})
	waitReady(t, w.ch, true)
	w.stop()
	if ok, why := w.ch.Ready(); ok || !strings.Contains(why, "setWebhook") {
		t.Errorf("a stopped channel: ready %v (%q)", ok, why)
	}
}
