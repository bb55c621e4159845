package app_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/checkinbot/checkinbot/identity/providertest"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
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
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/identity"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/internal/testkit/apptest"
	"github.com/checkinbot/checkinbot/store"
)

// Verified identity through the whole program (issue 14): the App with
// [identity] configured, package identity's real service on its listener,
// real providers (GovTech's mockpass for Singpass, npm oidc-provider for a
// generic OpenID realm) as node processes on loopback ports, and a citizen
// on Telegram through the fake Bot API.

// The engine repeats identity.LinkTTL (it imports only the domain).
func TestIdentityLinkTTLAgrees(t *testing.T) {
	if dialogs.IdentityLinkTTL != identity.LinkTTL {
		t.Errorf("dialogs.IdentityLinkTTL %v, identity.LinkTTL %v", dialogs.IdentityLinkTTL, identity.LinkTTL)
	}
}

// keyFile writes a fresh EC P-256 key and returns its path.
func keyFile(t *testing.T, name string) string {
	t.Helper()
	path, _ := providertest.WriteECKey(t, name)
	return path
}

// freeAddr picks a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomText() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// mockpass starts GovTech's mockpass (Singpass v2 OpenID: ES256 client
// assertions, ID tokens encrypted to our JWKS) and returns the provider's
// settings, offered to Singaporeans.
func mockpass(t *testing.T, base string, _ map[string]string) identity.ProviderSettings {
	t.Helper()
	port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	providertest.Start(t, []string{"MOCKPASS_PORT=" + port, "SP_RP_JWKS_ENDPOINT=" + base + "/.well-known/jwks.json", "SHOW_LOGIN_PAGE=true"},
		"http://127.0.0.1:"+port+"/singpass/v2/.well-known/openid-configuration", "node_modules/@opengovsg/mockpass/index.js")
	return identity.ProviderSettings{ID: "singpass", Kind: identity.KindSingpass, DisplayName: map[string]string{"en": "Singpass"},
		Nationalities: []string{"SG"}, Issuer: "http://127.0.0.1:" + port + "/singpass/v2", ClientID: "checkinbot-test",
		SigningKeyFile: keyFile(t, "sig.pem"), EncryptionKeyFile: keyFile(t, "enc.pem")}
}

// oidcRealm starts oidc-provider as a plain realm (code + PKCE, client
// secret, RS256 ID tokens) whose accounts are "AMINAH SITI", offered to
// Malaysians under the id "mydigitalid".
func oidcRealm(t *testing.T, base string, env map[string]string) identity.ProviderSettings {
	t.Helper()
	port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	issuer := "http://127.0.0.1:" + port
	secret := randomText()
	env["TEST_CLIENT_SECRET"] = secret
	clients, _ := json.Marshal([]any{map[string]any{"client_id": "checkinbot-plain", "client_secret": secret,
		"redirect_uris": []string{base + "/id/callback"}, "grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "client_secret_post", "id_token_signed_response_alg": "RS256"}})
	claims, _ := json.Marshal(map[string]string{"name": "AMINAH SITI", "nationality": "my", "national_id": "900101-14-5678"})
	providertest.Start(t, []string{"PORT=" + port, "OIDC_FAPI2=0", "OIDC_CLIENTS=" + string(clients), "OIDC_CLAIMS=" + string(claims)},
		issuer+"/.well-known/openid-configuration", "oidc.js")
	return identity.ProviderSettings{ID: "mydigitalid", Kind: identity.KindOIDC, DisplayName: map[string]string{"en": "MyDigital ID"},
		Nationalities: []string{"MY"}, Issuer: issuer, ClientID: "checkinbot-plain", ClientAuth: identity.AuthClientSecret,
		ClientSecretEnv: "TEST_CLIENT_SECRET", Scopes: []string{"profile", "nationality", "national_id"},
		NameClaim: "name", NationalityClaim: "nationality", NationalIDClaim: "national_id"}
}

// idWorld is the whole program with identity verification on and a
// citizen registered over Telegram.
type idWorld struct {
	*apptest.Program
	user     fakeapi.User
	base     string
	provider identity.ProviderSettings
}

func newIDWorld(t *testing.T, lang, nationality string, provider func(*testing.T, string, map[string]string) identity.ProviderSettings) *idWorld {
	t.Helper()
	providertest.Require(t)
	addr := freeAddr(t)
	base := "http://" + addr
	env := map[string]string{"TEST_ID_HMAC": randomText()}
	ps := provider(t, base, env)
	p := apptest.MustRunApp(t, func(o *app.Options) {
		o.Listen, o.Getenv = addr, func(k string) string { return env[k] }
		o.Config.Identity = identity.Settings{PublicBaseURL: base, JWKSPath: "/.well-known/jwks.json",
			NationalIDHMACEnv: "TEST_ID_HMAC", Providers: []identity.ProviderSettings{ps}}
		// Singaporeans need an embassy (whose events reach the same receiver).
		o.Config.Embassies = append(o.Config.Embassies, config.Embassy{ID: "sg-mekong", Name: "Embassy of Singapore",
			Nationalities: []string{"SG"}, Countries: []string{"KH", "TH"}})
		ep := o.Secrets.Endpoints[0]
		ep.ID, ep.Embassy = "sg-mekong", "sg-mekong"
		o.Secrets.Endpoints = append(o.Secrets.Endpoints, ep)
	})
	w := &idWorld{Program: p, user: fakeapi.User{ID: 7301, Username: "siti", Lang: lang}, base: base, provider: ps}
	for _, text := range append([]string{"/start", lang, "1", nationality}, registration[4:]...) {
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
			if strings.Contains(c.Params["reply_markup"], `"idv:`+w.provider.ID+`"`) {
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
	id := w.API.Press(w.user, w.offerMessage(t), "idv:"+w.provider.ID)
	if code := w.Post(id); code != http.StatusOK {
		t.Fatalf("the press was answered %d", code)
	}
	var link string
	var msg int
	w.WaitFor("the link message", func() bool {
		for _, c := range w.API.Sent(w.user.ID)[before:] {
			if m := linkInChat.FindString(c.Params["text"]); m != "" {
				link, msg = m, c.Result
				return true
			}
		}
		return false
	})
	if !strings.HasPrefix(link, w.base+"/id/start/") {
		t.Fatalf("link %q is not under the public base URL", link)
	}
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
// registrant verified, the embassy told (want: the identity fields it
// must carry, nil for a field that must be absent) with a body valid under
// the published schema, the chat told, the link message deleted.
func (w *idWorld) checkVerified(t *testing.T, linkMsg int, embassy string, want map[string]any) {
	t.Helper()
	ev := w.identityEvent(t)
	details, _ := ev["details"].(map[string]any)
	id, _ := details["identity"].(map[string]any)
	for k, v := range want {
		if fmt.Sprint(id[k]) != fmt.Sprint(v) && !(v == nil && id[k] == nil) {
			t.Errorf("identity.%s = %v, want %v (all: %v)", k, id[k], v, id)
		}
	}
	if ev["embassy_id"] != embassy || id["provider"] != w.provider.ID || id["verified_at"] == nil {
		t.Errorf("the embassy got %v", ev)
	}
	validateSchema(t, ev)
	st, _, err := w.Store.Registrant(w.key())
	if err != nil || st.Identity == nil || st.Identity.Provider != w.provider.ID {
		t.Errorf("registrant: %+v, %v", st.Identity, err)
	}
	done := w.Engine.Catalog.Text(w.user.Lang, "IdentityVerified", map[string]any{"Provider": w.provider.DisplayName["en"]})
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

// validateSchema checks a delivered body against
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
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the delivered body does not match the schema: %v\n%s", err, out)
	}
}

var (
	formAction = regexp.MustCompile(`(?s)<form[^>]*action="([^"]*)"[^>]*method="post"`)
	formInput  = regexp.MustCompile(`<input[^>]*name="([^"]*)"(?:[^>]*value="([^"]*)")?`)
)

// follow goes through the provider like a browser without JavaScript:
// redirects, cookies, and oidc-provider's login and consent forms, until
// it lands back on our listener. It returns that page, and the callback
// URL it passed through.
func (w *idWorld) follow(t *testing.T, link string) (status int, body, callback string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if r.URL.Path == "/id/callback" {
			callback = r.URL.String()
		}
		if len(via) > 20 {
			return errors.New("too many redirects")
		}
		return nil
	}}
	resp, err := client.Get(link)
	for step := 0; ; step++ {
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.HasPrefix(resp.Request.URL.String(), w.base) || step > 10 {
			return resp.StatusCode, string(b), callback
		}
		m := formAction.FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("provider page %s (%d) has no form:\n%s", resp.Request.URL, resp.StatusCode, b)
		}
		form := url.Values{}
		for _, in := range formInput.FindAllStringSubmatch(string(b), -1) {
			form.Set(in[1], html.UnescapeString(in[2]))
		}
		if form.Has("login") {
			form.Set("login", "citizen-7301")
			form.Set("password", "any")
		}
		action, _ := resp.Request.URL.Parse(html.UnescapeString(m[1]))
		resp, err = client.PostForm(action.String(), form)
	}
}

// TestIdentityEndToEnd: a Malaysian registers over Telegram, asks for a
// link, and follows it through a generic OpenID realm (oidc-provider) to
// the done page; the embassy gets the verified name, a matching name,
// the national id only as a keyed hash. Then the same link, a replayed
// callback and a guessed link all end on the failure page and record
// nothing more.
func TestIdentityEndToEnd(t *testing.T) {
	w := newIDWorld(t, "en", "MY", oidcRealm)
	link, msg := w.askLink(t)
	status, page, callback := w.follow(t, link)
	if status != http.StatusOK || !strings.Contains(page, html.EscapeString(w.Engine.Catalog.Text("en", "IdentityPageDone", nil))) {
		t.Fatalf("the done page: %d %s", status, page)
	}
	w.checkVerified(t, msg, "my-mekong", map[string]any{"subject": "citizen-7301", "name": "AMINAH SITI", "nationality": "MY",
		"name_matches": true, "national_id": nil})
	st, _, _ := w.Store.Registrant(w.key())
	if st.Identity.NationalIDHash == "" || strings.Contains(st.Identity.NationalIDHash, "900101") {
		t.Errorf("national id kept as %q, want only a keyed hash", st.Identity.NationalIDHash)
	}

	failed := html.EscapeString(w.Engine.Catalog.Text("en", "IdentityPageError", nil))
	events := len(w.Receiver.Events())
	for name, u := range map[string]string{"the same link again": link, "a replayed callback": callback,
		"a guessed link": w.base + "/id/start/" + strings.Repeat("A", 43)} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), failed) {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(w.Receiver.Events()); n != events {
		t.Errorf("refused attempts sent %d more events", n-events)
	}
}
