package bot

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// A store that cannot write (a full disk, a failing volume) is an outage,
// not a poison message: the update is not acknowledged to the platform, so
// it comes again; the outage is logged once when it starts and once when
// it ends (never per update); Healthy reports it for /readyz; and each
// citizen who wrote during it is told once, in their language, that the
// message was not saved and to send it again.

// NotSavedMessage is the locale message id of that notice.
const NotSavedMessage = "NotSaved"

// health tracks whether the store accepts writes.
type health struct {
	mu       sync.Mutex
	down     bool
	since    time.Time
	reason   string
	notified map[string]bool // user keys told during this outage
}

func (h *health) fail(log *slog.Logger, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return
	}
	h.down, h.since, h.reason = true, time.Now(), err.Error()
	log.Error("store cannot write: updates are held unacknowledged and retried; citizens who write are asked to send again",
		"err", err)
}

// ok records a write that succeeded. started is when that write began: a
// write already under way when the outage was noticed (an acknowledgement
// batch, another citizen's group commit) proves nothing about the disk now,
// and ending the outage on it would tell citizens "not saved" twice in one
// outage.
func (h *health) ok(log *slog.Logger, started time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down || started.Before(h.since) {
		return
	}
	log.Info("store writes again; held updates are being processed", "outage", time.Since(h.since).Round(time.Second))
	h.down, h.reason, h.notified = false, "", nil
}

// notify reports whether the citizen under key is yet to be told during
// this outage, and marks them told.
func (h *health) notify(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.notified[key] {
		return false
	}
	if h.notified == nil {
		h.notified = map[string]bool{}
	}
	h.notified[key] = true
	return true
}

// Healthy returns nil when the store accepts writes, or why not: what a
// readiness check (/readyz) serves. It turns healthy again with the first
// write that succeeds (a held update coming again is one).
func (r *Runner) Healthy() error {
	r.health.mu.Lock()
	defer r.health.mu.Unlock()
	if r.health.down {
		return fmt.Errorf("store cannot write since %s: %s", r.health.since.UTC().Format(time.RFC3339), r.health.reason)
	}
	return nil
}

// tellNotSaved sends the not-saved notice directly — not through the send
// queue, which cannot be written — at most once per citizen per outage.
// The language is the stored one if the store can still be read, else the
// platform's hint.
func (r *Runner) tellNotSaved(ctx context.Context, key string, in Inbound) {
	if !r.health.notify(key) {
		return
	}
	lang := ""
	if st, found, err := r.Store.Registrant(key); err == nil && found {
		lang = st.Lang
	}
	if lang == "" {
		lang = r.Engine.SuggestLanguage(in.LangHint)
	}
	s, err := r.sender(in.Channel)
	if err != nil {
		return
	}
	text := r.Engine.Catalog.Text(lang, NotSavedMessage, nil)
	if err := s.Send(ctx, in.Address, Response{Priority: PrioritySafety, Replies: []dialogs.Reply{{Text: text}}}); err != nil {
		r.Log.Warn("the not-saved notice could not be queued", "channel", in.Channel)
	}
}
