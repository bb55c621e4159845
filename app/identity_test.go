package app_test

import (
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/identity"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/internal/testkit/apptest"
	"github.com/checkinbot/checkinbot/internal/testkit/idfake"
	"github.com/checkinbot/checkinbot/store"
)

// The engine repeats identity.LinkTTL (it imports only the domain).
func TestIdentityLinkTTLAgrees(t *testing.T) {
	if dialogs.IdentityLinkTTL != identity.LinkTTL {
		t.Errorf("dialogs.IdentityLinkTTL %v, identity.LinkTTL %v", dialogs.IdentityLinkTTL, identity.LinkTTL)
	}
}

// idWorld is the whole program with identity verification on, a local
// OpenID provider, and a Malaysian citizen registered over Telegram.
type idWorld struct {
	*apptest.Program
	provider *idfake.Provider
	user     fakeapi.User
	base     string
}

// freeAddr picks a loopback port for the listener, so the public base URL
// is known before the App opens.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newIDWorld(t *testing.T, lang string) *idWorld {
	t.Helper()
	prov := idfake.NewProvider(idfake.Person{Subject: "mydid-7f0c2e8a", Name: "AMINAH SITI", Nationality: "MY", Assurance: "substantial"})
	t.Cleanup(prov.Close)
	addr := freeAddr(t)
	base := "http://" + addr
	p := apptest.MustRunApp(t, func(o *app.Options) {
		o.Listen = addr
		o.Identity = &app.IdentityOptions{PublicBaseURL: base, Routes: idfake.Routes(prov, "mydid", base), PruneEvery: time.Second,
			Providers: []dialogs.IdentityProvider{{ID: "mydid", Names: map[string]string{"en": "MyDigital ID"}, Nationalities: []string{"MY"}}}}
	})
	w := &idWorld{Program: p, provider: prov, user: fakeapi.User{ID: 7301, Username: "siti", Lang: lang}, base: base}
	for _, text := range append([]string{"/start", lang}, registration[2:]...) {
		p.Say(w.user, text)
	}
	return w
}

// offerMessage waits for the identity offer and returns its message id.
func (w *idWorld) offerMessage(t *testing.T) int {
	t.Helper()
	var id int
	w.WaitFor("the identity offer", func() bool {
		for _, c := range w.API.Sent(w.user.ID) {
			if strings.Contains(c.Params["reply_markup"], `"idv:mydid"`) {
				id = c.Result
				return true
			}
		}
		return false
	})
	return id
}

var linkInChat = regexp.MustCompile(`http://[^\s]+/id/start/[A-Za-z0-9_-]+`)

// askLink presses the offer's button and returns the link message's URL
// and message id.
func (w *idWorld) askLink(t *testing.T) (string, int) {
	t.Helper()
	before := len(w.API.Sent(w.user.ID))
	id := w.API.Press(w.user, w.offerMessage(t), "idv:mydid")
	if code := w.Post(id); code != http.StatusOK {
		t.Fatalf("the press was answered %d", code)
	}
	var link string
	var msg int
	w.WaitFor("the link message", func() bool {
		sent := w.API.Sent(w.user.ID)
		for _, c := range sent[before:] {
			if m := linkInChat.FindString(c.Params["text"]); m != "" {
				link, msg = m, c.Result
				return true
			}
		}
		return false
	})
	return link, msg
}

func (w *idWorld) key() string {
	return store.UserKey(testkit.Pepper, "telegram", strconv.FormatInt(w.user.ID, 10))
}

// identityEvent waits until the embassy's receiver got registration.updated
// with identity, and returns the body as delivered (the outbox row the
// signed delivery carried, found by its id).
func (w *idWorld) identityEvent(t *testing.T) map[string]any {
	t.Helper()
	var body map[string]any
	w.WaitFor("registration.updated with identity at the embassy", func() bool {
		box, _ := w.Store.Outbox()
		for _, e := range box {
			if e.Type != "registration.updated" || e.Details["identity"] == nil {
				continue
			}
			for _, got := range w.Receiver.Events() {
				if got.ID == e.ID {
					raw, _ := json.Marshal(e)
					_ = json.Unmarshal(raw, &body)
					return true
				}
			}
		}
		return false
	})
	return body
}

// checkVerified is what every successful verification must leave: the
// registrant verified (name mismatch flagged), the embassy told with a
// body valid under the published schema, the chat told, the link message
// deleted.
func (w *idWorld) checkVerified(t *testing.T, linkMsg int) {
	t.Helper()
	ev := w.identityEvent(t)
	details, _ := ev["details"].(map[string]any)
	id, _ := details["identity"].(map[string]any)
	if id["provider"] != "mydid" || id["subject"] != "mydid-7f0c2e8a" || id["name"] != "AMINAH SITI" || id["name_matches"] != true ||
		id["assurance"] != "substantial" || ev["embassy_id"] != "my-mekong" {
		t.Errorf("the embassy got %+v", ev)
	}
	validateSchema(t, ev)
	st, _, err := w.Store.Registrant(w.key())
	if err != nil || st.Identity == nil || st.Identity.Subject != "mydid-7f0c2e8a" {
		t.Errorf("registrant: %+v, %v", st.Identity, err)
	}
	done := w.Engine.Catalog.Text(w.user.Lang, "IdentityVerified", map[string]any{"Provider": "MyDigital ID"})
	w.WaitFor("the chat's confirmation", func() bool {
		for _, c := range w.API.Sent(w.user.ID) {
			if c.Params["text"] == done {
				return true
			}
		}
		return false
	})
	w.WaitFor("the link message deleted", func() bool {
		for _, c := range w.API.Calls("deleteMessage") {
			if c.Params["message_id"] == strconv.Itoa(linkMsg) {
				return true
			}
		}
		return false
	})
}

// validateSchema checks a received body against
// docs/webhook-event.schema.json with ajv (webhook/testdata/interop).
func validateSchema(t *testing.T, ev map[string]any) {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("..", "webhook", "testdata", "interop"))
	node, err := exec.LookPath("node")
	if _, modErr := os.Stat(filepath.Join(dir, "node_modules", "ajv")); err != nil || modErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node or ajv missing (run: npm ci --prefix webhook/testdata/interop)")
		}
		t.Log("node or ajv missing: the body is not validated against the schema")
		return
	}
	body, _ := json.Marshal(ev)
	cmd := exec.Command(node, filepath.Join(dir, "validate-schema.js"), filepath.Join("..", "docs", "webhook-event.schema.json"))
	cmd.Stdin = strings.NewReader(string(body))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the received body does not match the schema: %v\n%s", err, out)
	}
}

var hidden = regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`)

// TestIdentityEndToEnd: a citizen registers over Telegram, asks for a link,
// and an HTTP client follows it through the provider's login to the done
// page; then the same link, a guessed one, a replayed callback and a
// second link after an erase all end on the failure page and record
// nothing more.
func TestIdentityEndToEnd(t *testing.T) {
	w := newIDWorld(t, "en")
	link, msg := w.askLink(t)
	if !strings.HasPrefix(link, w.base+"/id/start/") {
		t.Fatalf("link %q is not under the public base URL", link)
	}
	var callback string
	client := &http.Client{CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == "/id/callback" {
			callback = r.URL.String()
		}
		return nil
	}}
	resp, err := client.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	login, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(login), "Log in") {
		t.Fatalf("the link led to %d %s", resp.StatusCode, login)
	}
	form := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(string(login), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	resp, err = client.PostForm(w.provider.URL+"/approve", form)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Done. You can go back to the chat.") {
		t.Fatalf("the done page: %d %s", resp.StatusCode, page)
	}
	if h := resp.Header.Get("Cache-Control"); h != "no-store" {
		t.Errorf("the done page may be cached: %q", h)
	}
	w.checkVerified(t, msg)

	failed := w.Engine.Catalog.Text("en", "IdentityPageError", nil)
	events := len(w.Receiver.Events())
	for name, u := range map[string]string{"the same link again": link, "a replayed callback": callback,
		"a guessed link": w.base + "/id/start/" + strings.Repeat("A", 43)} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), html.EscapeString(failed)) {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(w.Receiver.Events()); n != events {
		t.Errorf("refused attempts sent %d more events", n-events)
	}
}
