package boltstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/identity"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/storetest"
	bolt "go.etcd.io/bbolt"
)

var _ identity.Links = (*boltstore.Store)(nil)

// TestIdentityConformance runs the identity-link conformance tests
// against bbolt in a temp dir.
func TestIdentityConformance(t *testing.T) {
	storetest.RunIdentity(t, func(t *testing.T) storetest.IdentityStore { return testkit.Store(t) })
}

// TestIdentityConformanceSealed: the same on an encrypted store (links and
// flows — a PKCE verifier, a DPoP key — are sealed under the service key).
func TestIdentityConformanceSealed(t *testing.T) {
	storetest.RunIdentity(t, func(t *testing.T) storetest.IdentityStore { return testkit.SealedStore(t) })
}

// phone accepts every response at once and keeps the texts per address.
type phone struct {
	mu   sync.Mutex
	sent map[string][]dialogs.Reply
}

func (p *phone) Send(_ context.Context, address string, r bot.Response) error {
	p.mu.Lock()
	p.sent[address] = append(p.sent[address], r.Replies...)
	p.mu.Unlock()
	r.Report(bot.Receipt{SentIDs: []string{"m1"}})
	return nil
}

func (p *phone) last(address string) dialogs.Reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := p.sent[address]
	if len(rs) == 0 {
		return dialogs.Reply{}
	}
	return rs[len(rs)-1]
}

const idBase = "https://checkin.example.gov"

var tokenInURL = regexp.MustCompile(regexp.QuoteMeta(idBase) + `/id/start/([A-Za-z0-9_-]+)`)

// identityRunner is the real runner, engine and store, with one provider
// for Malaysians, and a citizen registered through the dialog.
func identityRunner(t *testing.T) (*bot.Runner, *boltstore.Store, *phone, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s := testkit.StoreAt(t, path)
	r := testkit.RunnerOn(t, s)
	r.Engine.Identity = dialogs.IdentityConfig{PublicBaseURL: idBase, Providers: []dialogs.IdentityProvider{{
		ID: "mydid", Names: map[string]string{"en": "MyDigital ID"}, Nationalities: []string{"MY"}}}}
	if err := s.IndexWith(r.Engine.Directory.EmbassyFor, "identity-test"); err != nil {
		t.Fatal(err)
	}
	p := &phone{sent: map[string][]dialogs.Reply{}}
	r.Register("telegram", p)
	for _, text := range []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
		"24h", "09:00", "blue mango", "blue mango", "1"} {
		if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "1001", Kind: dialogs.KindText, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	return r, s, p, store.UserKey(testkit.Pepper, "telegram", "1001")
}

// askLink presses the offer's button and returns the token of the link.
func askLink(t *testing.T, r *bot.Runner, p *phone) string {
	t.Helper()
	if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "1001", Kind: dialogs.KindButton, Text: "idv:mydid"}); err != nil {
		t.Fatal(err)
	}
	m := tokenInURL.FindStringSubmatch(p.last("1001").Text)
	if m == nil {
		t.Fatalf("no link in %q", p.last("1001").Text)
	}
	return m[1]
}

// settled waits until the citizen's send queue is empty (acknowledged).
func settled(t *testing.T, s *boltstore.Store, key string) {
	t.Helper()
	for range 500 {
		if items, err := s.PendingSends(key); err == nil && len(items) == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("replies never acknowledged")
}

// everything returns every key and value of every bucket of a closed data
// file, nested buckets included.
func everything(t *testing.T, path string) [][]byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out [][]byte
	var walk func(b *bolt.Bucket)
	walk = func(b *bolt.Bucket) {
		b.ForEach(func(k, v []byte) error {
			out = append(out, bytes.Clone(k))
			if v == nil {
				walk(b.Bucket(k))
			} else {
				out = append(out, bytes.Clone(v))
			}
			return nil
		})
	}
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			out = append(out, bytes.Clone(name))
			walk(b)
			return nil
		})
	})
	return out
}

func holds(all [][]byte, needle string) bool {
	for _, b := range all {
		if bytes.Contains(b, []byte(needle)) {
			return true
		}
	}
	return false
}

// TestIdentityTokenNeverStored: after the link message was sent and
// acknowledged, no key or value anywhere in the data file holds the token
// (or any part of the URL after the path); the token's hash is there, and
// finds the link. A stolen data file cannot be used to verify as anyone.
func TestIdentityTokenNeverStored(t *testing.T) {
	r, s, p, key := identityRunner(t)
	token := askLink(t, r, p)
	settled(t, s, key)
	path := s.Path()
	s.Close()
	all := everything(t, path)
	sum := sha256.Sum256([]byte(token))
	for _, part := range []string{token, token[:16], token[len(token)-16:], "/id/start/"} {
		if holds(all, part) {
			t.Errorf("the data file holds %q of the link", part)
		}
	}
	if !holds(all, hex.EncodeToString(sum[:])) {
		t.Fatal("the token's hash is not in the file: the scan sees nothing")
	}
	s2 := testkit.StoreAt(t, path)
	l, err := s2.TakeLink(context.Background(), hex.EncodeToString(sum[:]), time.Now())
	if err != nil || l.RegistrantKey != key || l.Provider != "mydid" || l.Lang != "en" {
		t.Errorf("TakeLink after restart = %+v, %v", l, err)
	}
}

// TestIdentitySecondPressKillsFirstLink: through the real runner, a second
// press gives a new link; the old one no longer works, the new one once.
func TestIdentitySecondPressKillsFirstLink(t *testing.T) {
	r, s, p, key := identityRunner(t)
	first := askLink(t, r, p)
	for _, text := range []string{"/settings", "6"} {
		if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "1001", Kind: dialogs.KindText, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	second := askLink(t, r, p)
	if first == second {
		t.Fatal("the same token twice")
	}
	hash := func(tok string) string { sum := sha256.Sum256([]byte(tok)); return hex.EncodeToString(sum[:]) }
	if _, err := s.TakeLink(context.Background(), hash(first), time.Now()); !errors.Is(err, identity.ErrLinkInvalid) {
		t.Errorf("the first link still works: %v", err)
	}
	if l, err := s.TakeLink(context.Background(), hash(second), time.Now()); err != nil || l.RegistrantKey != key {
		t.Errorf("the second link: %+v, %v", l, err)
	}
	if _, err := s.TakeLink(context.Background(), hash(second), time.Now()); !errors.Is(err, identity.ErrLinkInvalid) {
		t.Errorf("the second link works twice: %v", err)
	}
}

// TestRecordIdentity: a verified identity goes through the engine in one
// transaction — the state, registration.updated with `identity` (a name
// mismatch kept and flagged), the registrant list's row, the chat's
// confirmation.
func TestRecordIdentity(t *testing.T) {
	r, s, p, key := identityRunner(t)
	askLink(t, r, p)
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	v := dialogs.Identity{Provider: "mydid", Subject: "sub-1", Name: "SITI AMINAH BINTI ALI", Nationality: "MY", Assurance: "high", VerifiedAt: at}
	if err := r.RecordIdentity(context.Background(), key, v); err != nil {
		t.Fatal(err)
	}
	st, _, _ := s.Registrant(key)
	if st.Identity == nil || st.Identity.Subject != "sub-1" || st.Identity.NameMatches == nil || *st.Identity.NameMatches || st.Profile.Name != "Siti Aminah" {
		t.Fatalf("stored %+v (typed name %q)", st.Identity, st.Profile.Name)
	}
	events, _ := s.Outbox()
	last := events[len(events)-1]
	id, ok := last.Details["identity"].(map[string]any)
	if last.Type != dialogs.EventRegistrationUpdated || !ok || id["provider"] != "mydid" || id["name_matches"] != false ||
		id["verified_at"] != "2026-11-29T08:00:00Z" || id["name"] != "SITI AMINAH BINTI ALI" {
		t.Fatalf("last event %s %+v", last.Type, last.Details)
	}
	page, err := s.Registrants("my-mekong", store.StatusActive, "", 10)
	if err != nil || len(page.Rows) != 1 {
		t.Fatalf("registrants: %+v, %v", page, err)
	}
	row := page.Rows[0]
	if row.IdentityProvider != "mydid" || row.IdentityVerifiedAt == nil || !row.IdentityVerifiedAt.Equal(at) ||
		row.IdentityNameMatches == nil || *row.IdentityNameMatches {
		t.Errorf("registrant row %+v", row)
	}
	if got := p.last("1001").Text; got != r.Engine.Catalog.Text("en", "IdentityVerified", map[string]any{"Provider": "MyDigital ID"}) {
		t.Errorf("the chat was told %q", got)
	}
	// An erased registrant: nothing recorded, no error.
	if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "1001", Kind: dialogs.KindText, Text: "/delete"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "1001", Kind: dialogs.KindText, Text: "1"}); err != nil {
		t.Fatal(err)
	}
	n := len(events)
	if err := r.RecordIdentity(context.Background(), key, v); err != nil {
		t.Errorf("recording for an erased registrant: %v", err)
	}
	if _, found, _ := s.Registrant(key); found {
		t.Error("recording brought an erased registrant back")
	}
	if events, _ = s.Outbox(); len(events) != n+1 { // registration.withdrawn only
		t.Errorf("%d events after the erase, want %d", len(events), n+1)
	}
}

// TestIdentityDeleteKillsLink: a real /delete and a covert one (the duress
// keyword inside it) both end the link and any flow it started, so a link
// opened afterwards ends on the same failure page whichever it was.
func TestIdentityDeleteKillsLink(t *testing.T) {
	for _, del := range []string{"/delete", "/delete blue mango"} {
		r, s, p, key := identityRunner(t)
		token := askLink(t, r, p)
		sum := sha256.Sum256([]byte(token))
		flow := identity.Flow{StateHash: strings.Repeat("ab", 32), RegistrantKey: key, Provider: "mydid", Expires: time.Now().Add(time.Minute)}
		if err := s.PutFlow(context.Background(), flow); err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{del, "1"} {
			if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "1001", Kind: dialogs.KindText, Text: text}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.TakeLink(context.Background(), hex.EncodeToString(sum[:]), time.Now()); !errors.Is(err, identity.ErrLinkInvalid) {
			t.Errorf("%q: the link still works: %v", del, err)
		}
		if _, err := s.TakeFlow(context.Background(), flow.StateHash, time.Now()); !errors.Is(err, identity.ErrFlowInvalid) {
			t.Errorf("%q: the flow still works: %v", del, err)
		}
	}
}
