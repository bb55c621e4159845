package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/internal/testkit/apptest"
	"github.com/checkinbot/checkinbot/ops"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// adminToken is the token the tests' programs are started with.
const adminToken = "ops-test-admin-token-0123456789"

// runWithAdmin runs the whole program with an admin listener on loopback.
// extra channels (a linkedChannel) run beside Telegram.
func runWithAdmin(t *testing.T, extra ...bot.Channel) *apptest.Program {
	t.Helper()
	return apptest.MustRunApp(t, func(o *app.Options) {
		o.AdminListen, o.AdminToken = "127.0.0.1:0", adminToken
		for _, ch := range extra {
			o.Channels = append(o.Channels, func(app.ChannelEnv) (bot.Channel, error) { return ch, nil })
		}
	})
}

// linkedChannel is a channel with a connection state, as WhatsApp's: it
// receives nothing and reports the state the test sets.
type linkedChannel struct {
	mu    sync.Mutex
	state string
}

func (c *linkedChannel) Name() string { return "linked" }
func (c *linkedChannel) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
func (c *linkedChannel) Send(context.Context, string, bot.Response) error { return nil }
func (c *linkedChannel) set(s string)                                     { c.mu.Lock(); c.state = s; c.mu.Unlock() }
func (c *linkedChannel) ConnectionState() string                          { c.mu.Lock(); defer c.mu.Unlock(); return c.state }
func (c *linkedChannel) Ready() (bool, string) {
	s := c.ConnectionState()
	return s == "connected", s
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape fetches /metrics from the admin listener and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, p *apptest.Program) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	code, body := get(t, "http://"+p.AdminAddr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics answered %d: %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v\n%s", err, body)
	}
	return fams, body
}

// value is the value of the series of family name whose labels include
// want (label=value pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f, found := fams[name]
	if !found {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// registration is a citizen's whole registration, keyword "blue mango".
var registration = []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
	"24h", "09:00", "blue mango", "blue mango", "1"}

// allowedLabels are the only label names checkinbot's own metrics may
// carry: each has a small, fixed set of values, none naming a person.
var allowedLabels = []string{"channel", "result", "priority", "type", "outcome", "endpoint", "status", "state", "le", "route", "code"}

// TestMetricsEndToEnd drives a registration and a duress check-in through
// the whole program, scrapes /metrics from the admin listener, parses it
// with the Prometheus text parser, and checks each promised series moved
// as the traffic says — and that nothing in it names the citizen.
func TestMetricsEndToEnd(t *testing.T) {
	p := runWithAdmin(t)
	u := fakeapi.User{ID: 7001123, Username: "sitiaminah", Lang: "en"}
	texts := append(slices.Clone(registration), "ok", "All good here. BLUE mango")
	for _, text := range texts {
		p.Say(u, text)
	}
	p.WaitFor("every reply", func() bool { return len(p.API.Sent(u.ID)) >= len(texts) })
	p.WaitFor("the duress webhook", func() bool {
		for _, ev := range p.Receiver.Events() {
			if ev.Type == "duress.triggered" {
				return true
			}
		}
		return false
	})
	var fams map[string]*dto.MetricFamily
	var body string
	p.WaitFor("every delivery and acknowledgement counted", func() bool {
		fams, body = scrape(t, p)
		sent, _ := value(fams, "checkinbot_outbound_total", "channel", "telegram", "result", "sent")
		done, _ := value(fams, "checkinbot_delivery_attempts_total", "outcome", "delivered")
		// The store's counts are cached for StatsEvery: wait until a
		// scrape's counts were read after the deliveries, too.
		depth, _ := value(fams, "checkinbot_outbox_depth", "endpoint", p.Deliverer.Endpoints[0].ID)
		return sent >= float64(len(texts)) && done >= 2 && depth == 0
	})
	for _, c := range []struct {
		name   string
		labels []string
		check  func(float64) bool
		want   string
	}{
		{"checkinbot_inbound_total", []string{"channel", "telegram"}, eq(len(texts)), "one per update"},
		{"checkinbot_outbound_total", []string{"channel", "telegram", "result", "failed"}, eq(0), "none refused"},
		{"checkinbot_replies_queued_total", []string{"priority", "reply"}, atLeast(len(texts)), "every reply queued"},
		{"checkinbot_replies_queued_total", []string{"priority", "safety"}, eq(0), "no SOS flow"},
		{"checkinbot_escalations_total", []string{"type", "registration.created"}, eq(1), "one registration"},
		{"checkinbot_escalations_total", []string{"type", "duress.triggered"}, eq(1), "one duress"},
		{"checkinbot_escalations_total", []string{"type", "sos.raised"}, eq(0), "present at zero"},
		{"checkinbot_delivery_attempts_total", []string{"outcome", "failed"}, eq(0), "receiver healthy"},
		{"checkinbot_registrants", []string{"status", "active"}, eq(1), "Siti registered"},
		{"checkinbot_registrants", []string{"status", "paused"}, eq(0), "present at zero"},
		{"checkinbot_registrants_overdue", nil, eq(0), "nobody overdue"},
		{"checkinbot_last_checkin_timestamp_seconds", nil, atLeast(1), "a check-in happened"},
		{"checkinbot_telegram_rate_limited_total", nil, eq(0), "no 429"},
		{"checkinbot_store_commit_seconds", nil, atLeast(len(texts)), "commits observed"},
		{"checkinbot_store_writable", nil, eq(1), "store fine"},
		{"checkinbot_intake_in_flight", nil, eq(0), "nothing held"},
		{"checkinbot_critical_undelivered_oldest_seconds", nil, eq(0), "all delivered"},
		{"checkinbot_outbox_unrouted", nil, eq(0), "all routed"},
		{"checkinbot_audit_head_seq", nil, atLeast(2), "registration and check-ins audited"},
		{"checkinbot_audit_head_hash_prefix", nil, func(v float64) bool { return v > 0 && v < 1<<53 }, "53 bits of the head hash"},
		{"checkinbot_outbox_depth", []string{"endpoint", p.Deliverer.Endpoints[0].ID}, eq(0), "exported at zero per endpoint"},
		{"checkinbot_outbox_oldest_undelivered_seconds", []string{"endpoint", p.Deliverer.Endpoints[0].ID}, eq(0), "exported per endpoint"},
	} {
		v, ok := value(fams, c.name, c.labels...)
		if !ok || !c.check(v) {
			t.Errorf("%s%v = %v (present %v): want %s", c.name, c.labels, v, ok, c.want)
		}
	}
	// Nothing revealed: no label but the allowed ones, and no trace of
	// the citizen (chat id, username, name, city, keyword) anywhere.
	for name, f := range fams {
		if !strings.HasPrefix(name, "checkinbot_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(allowedLabels, l.GetName()) {
					t.Errorf("%s has label %q: only %v may be used", name, l.GetName(), allowedLabels)
				}
			}
		}
	}
	for _, secret := range []string{"7001123", "sitiaminah", "siti", "aminah", "phnom", "blue mango"} {
		if strings.Contains(strings.ToLower(body), secret) {
			t.Errorf("/metrics carries %q", secret)
		}
	}
}

func eq(n int) func(float64) bool      { return func(v float64) bool { return v == float64(n) } }
func atLeast(n int) func(float64) bool { return func(v float64) bool { return v >= float64(n) } }

// TestPublicListenerServesOnlyHealthz: what the internet can reach says
// "up" and nothing else; readiness and metrics are the admin listener's.
func TestPublicListenerServesOnlyHealthz(t *testing.T) {
	p := runWithAdmin(t)
	if code, body := get(t, "http://"+p.Addr()+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("public /healthz: %d %q", code, body)
	}
	for _, path := range []string{"/readyz", "/metrics", "/admin/backup"} {
		// The Telegram webhook's route answers what is not its own (401).
		if code, body := get(t, "http://"+p.Addr()+path); code == http.StatusOK || strings.Contains(body, "checkinbot_") || strings.Contains(body, "ready") {
			t.Errorf("public listener serves %s: %d %q", path, code, body)
		}
	}
	if code, _ := get(t, "http://"+p.AdminAddr()+"/healthz"); code != http.StatusOK {
		t.Errorf("admin /healthz: %d", code)
	}
}

// TestReadyzFollowsStoreWrites: /readyz turns 503, naming the store, while
// the store cannot write (even with no citizen writing), and 200 again
// when it can; the same for a channel that loses its connection.
func TestReadyzFollowsStoreWrites(t *testing.T) {
	wa := &linkedChannel{state: "connected"}
	p := runWithAdmin(t, wa)
	readyz := func() (int, ops.Readiness) {
		code, body := get(t, "http://"+p.AdminAddr()+"/readyz")
		var r ops.Readiness
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		return code, r
	}
	// The channels report ready once connected (Telegram: its setWebhook
	// accepted), which takes a moment after Run starts.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, r := readyz()
		if code == http.StatusOK && r.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthy program: /readyz %d %+v", code, r)
		}
	}
	p.Store.SetWriteFault(errors.New("no space left on device"))
	code, r := readyz()
	if code != http.StatusServiceUnavailable || r.Ready || len(r.Reasons) != 1 || !strings.HasPrefix(r.Reasons[0], "store: cannot write") {
		t.Errorf("store cannot write: /readyz %d %+v, want 503 with one store reason", code, r)
	}
	p.Store.SetWriteFault(nil)
	if code, r := readyz(); code != http.StatusOK || !r.Ready {
		t.Errorf("store writes again: /readyz %d %+v, want 200", code, r)
	}
	wa.set("logged-out")
	if code, r := readyz(); code != http.StatusServiceUnavailable || len(r.Reasons) != 1 || r.Reasons[0] != "channel linked: logged-out" {
		t.Errorf("channel logged out: /readyz %d %+v, want 503 naming the channel", code, r)
	}
	fams, _ := scrape(t, p)
	if v, ok := value(fams, "checkinbot_whatsapp_state", "state", "logged-out"); !ok || v != 1 {
		t.Errorf("checkinbot_whatsapp_state{state=logged-out} = %v (present %v), want 1", v, ok)
	}
	if v, ok := value(fams, "checkinbot_channel_ready", "channel", "linked"); !ok || v != 0 {
		t.Errorf("checkinbot_channel_ready{channel=linked} = %v (present %v), want 0", v, ok)
	}
	wa.set("connected")
	if code, r := readyz(); code != http.StatusOK || !r.Ready {
		t.Errorf("channel connected again: /readyz %d %+v, want 200", code, r)
	}
}

// TestAdminListenerRefusesPublicAddresses: the admin listener serves the
// data file; an address other machines can reach is refused at Open.
func TestAdminListenerRefusesPublicAddresses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "example.org:0", "nonsense"} {
		if ln, err := ops.Listen(addr); err == nil {
			ln.Close()
			t.Errorf("admin listener opened on %q", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0", "unix:" + t.TempDir() + "/admin.sock"} {
		ln, err := ops.Listen(addr)
		if err != nil {
			if strings.Contains(addr, "::1") {
				continue // no IPv6 loopback on this machine
			}
			t.Errorf("admin listener refused %q: %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// TestOperationsDocListsEveryMetric: docs/operations.md's metric table and
// alert rules name exactly the metrics a real scrape serves — an alert on
// a misspelt metric would never fire.
func TestOperationsDocListsEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	wa := &linkedChannel{state: "connected"}
	fams, _ := scrape(t, runWithAdmin(t, wa))
	named := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bcheckinbot_[a-z0-9_]+`).FindAllString(string(doc), -1) {
		named[m] = true
	}
	for name := range named {
		if _, ok := fams[name]; !ok {
			t.Errorf("docs/operations.md names %s, which /metrics does not serve", name)
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "checkinbot_") && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("/metrics serves %s, which docs/operations.md's table does not list", name)
		}
	}
}
