package ops_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/ops"
	"github.com/checkinbot/checkinbot/store"
)

// fakeStore and fakeRunner stand for the store and the runner so each
// readiness condition can be set alone (the end-to-end tests use the real
// ones).
type fakeStore struct {
	probe error
	stats store.Stats
	err   error
}

func (f *fakeStore) Probe() error                { return f.probe }
func (f *fakeStore) Stats() (store.Stats, error) { return f.stats, f.err }
func (f *fakeStore) WriteBackup(w io.Writer, size func(int64)) (int64, error) {
	size(4)
	n, err := io.WriteString(w, "data")
	return int64(n), err
}

type fakeRunner struct {
	healthy error
	stats   bot.Stats
}

func (f *fakeRunner) Healthy() error   { return f.healthy }
func (f *fakeRunner) Stats() bot.Stats { return f.stats }

type fakeChannel struct {
	ok  bool
	why string
}

func (fakeChannel) Name() string            { return "whatsapp" }
func (f fakeChannel) Ready() (bool, string) { return f.ok, f.why }
func (fakeChannel) ConnectionState() string { return "logged-out" }

// TestReadyReasons: each condition /readyz promises fails it alone, with
// a reason naming the part; just under each limit it passes.
func TestReadyReasons(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		edit   func(*fakeStore, *fakeRunner, *fakeChannel)
		reason string // "" = ready
	}{
		{"all fine", func(*fakeStore, *fakeRunner, *fakeChannel) {}, ""},
		{"store cannot write", func(s *fakeStore, _ *fakeRunner, _ *fakeChannel) { s.probe = errors.New("disk full") }, "store: cannot write"},
		{"runner saw a failed write", func(_ *fakeStore, r *fakeRunner, _ *fakeChannel) { r.healthy = errors.New("since 12:00") }, "store: since"},
		{"store cannot read", func(s *fakeStore, _ *fakeRunner, _ *fakeChannel) { s.err = errors.New("bad page") }, "store: cannot read"},
		{"channel logged out", func(_ *fakeStore, _ *fakeRunner, ch *fakeChannel) { ch.ok, ch.why = false, "logged out" }, "channel whatsapp: logged out"},
		{"critical event too old", func(s *fakeStore, _ *fakeRunner, _ *fakeChannel) {
			s.stats.OldestCritical = now.Add(-ops.DefaultCriticalAge - time.Second)
		}, "delivery: a critical event has waited"},
		{"critical event young enough", func(s *fakeStore, _ *fakeRunner, _ *fakeChannel) {
			s.stats.OldestCritical = now.Add(-ops.DefaultCriticalAge + time.Second)
		}, ""},
		{"update stuck at intake", func(_ *fakeStore, r *fakeRunner, _ *fakeChannel) {
			r.stats.OldestInFlight = now.Add(-ops.DefaultIntakeAge - time.Second)
		}, "intake: an update has waited"},
		{"update in flight, young", func(_ *fakeStore, r *fakeRunner, _ *fakeChannel) {
			r.stats.OldestInFlight = now.Add(-time.Second)
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, rn, ch := &fakeStore{}, &fakeRunner{}, &fakeChannel{ok: true}
			c.edit(st, rn, ch)
			srv := ops.New(ops.Options{Store: st, Runner: rn, Channels: []ops.Channel{*ch}, Now: func() time.Time { return now }})
			r := srv.Ready()
			if c.reason == "" {
				if !r.Ready || len(r.Reasons) != 0 {
					t.Errorf("want ready, got %+v", r)
				}
				return
			}
			if r.Ready || len(r.Reasons) != 1 || !strings.HasPrefix(r.Reasons[0], c.reason) {
				t.Errorf("want not ready for exactly %q, got %+v", c.reason, r)
			}
			w := httptest.NewRecorder()
			srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), c.reason) {
				t.Errorf("/readyz: %d %s", w.Code, w.Body)
			}
		})
	}
}

// TestBackupToken: the backup is served only to the configured token;
// with no token configured, to nobody.
func TestBackupToken(t *testing.T) {
	for _, c := range []struct {
		configured, header string
		want               int
	}{
		{"", "", http.StatusForbidden},
		{"", "Bearer ", http.StatusForbidden},
		{adminToken, "", http.StatusUnauthorized},
		{adminToken, "Bearer wrong", http.StatusUnauthorized},
		{adminToken, "Bearer " + adminToken + "x", http.StatusUnauthorized},
		{adminToken, "Basic " + adminToken, http.StatusUnauthorized},
		{adminToken, adminToken, http.StatusUnauthorized},
		{adminToken, "Bearer " + adminToken, http.StatusOK},
	} {
		srv := ops.New(ops.Options{Store: &fakeStore{}, Runner: &fakeRunner{}, BackupToken: c.configured})
		req := httptest.NewRequest(http.MethodGet, "/admin/backup", nil)
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, req)
		if w.Code != c.want || (w.Code == http.StatusOK) != (w.Body.String() == "data") {
			t.Errorf("token %q, header %q: %d %q, want %d", c.configured, c.header, w.Code, w.Body, c.want)
		}
	}
}
