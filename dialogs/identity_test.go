package dialogs_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// The verified-identity flow (DESIGN §12, issue 14 item 2): offered only
// where a provider serves the nationality, never in the way of a check-in,
// a link with nothing personal in it, single use per press, cleaned up.

const idBase = "https://checkin.example.gov"

// identityEngine is the transcript engine with one provider for Malaysians
// (the transcript config also serves Indonesians, who get none).
func identityEngine(tb testing.TB) *dialogs.Engine {
	tb.Helper()
	e := newEngine(tb)
	e.Identity = dialogs.IdentityConfig{PublicBaseURL: idBase + "/", Providers: []dialogs.IdentityProvider{{
		ID: "mydid", Names: map[string]string{"en": "MyDigital ID", "ms": "MyDigital ID"}, Nationalities: []string{"MY"},
	}}}
	return e
}

// random is the event randomness the runner would draw.
func random(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e37))
	b := make([]byte, dialogs.IdentityTokenBytes)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func press(data string, seed uint64) dialogs.Input {
	return dialogs.Input{Kind: dialogs.KindButton, Key: "user-1", Channel: "telegram", Address: "1001", Text: data, Random: random(seed)}
}

// registerIn completes a registration through the real dialog in lang for
// nationality, and returns the state and the result of the confirmation.
func registerIn(tb testing.TB, e *dialogs.Engine, lang, nationality string) (dialogs.State, dialogs.Result) {
	tb.Helper()
	st, res := say(e, dialogs.State{}, testNow, "/start", lang, "1", nationality, "KH", "Phnom Penh", "Siti Aminah",
		"skip", "skip", "skip", "24h", "09:00", "blue mango", "blue mango", "1")
	if st.Status != dialogs.StatusActive {
		tb.Fatalf("%s/%s: registration did not complete: %+v", lang, nationality, res.Replies)
	}
	return st, res
}

// offered reports whether a result shows the identity offer (a button
// choosing a provider) or makes a link.
func offered(res dialogs.Result) bool {
	if res.IdentityLink != nil {
		return true
	}
	for _, r := range res.Replies {
		if strings.Contains(r.Text, idBase) {
			return true
		}
		for _, b := range r.Buttons {
			if strings.HasPrefix(b.Data, "idv:") || b.Data == string(dialogs.StepIdentityOffer) {
				return true
			}
		}
	}
	return false
}

// TestIdentityOfferOnlyWhereAProviderServes: in every language, for both
// nationalities, in every step and with every kind of input, the offer (or
// a link) appears only to a citizen whose nationality has a provider — and
// to them right after registering and in the settings menu.
func TestIdentityOfferOnlyWhereAProviderServes(t *testing.T) {
	e := identityEngine(t)
	inputs := []dialogs.Input{textInput("/settings"), textInput("ok"), textInput("/mydata"), textInput("1"),
		textInput("6"), textInput("hello"), press("idv:mydid", 1), press(string(dialogs.StepIdentityOffer), 2),
		{Kind: dialogs.KindTimer, Key: "user-1"}, {Kind: dialogs.KindPromptDelivered, Key: "user-1"}}
	for _, lang := range e.Catalog.Languages() {
		for _, nat := range []string{"MY", "ID"} {
			serves := nat == "MY"
			st, res := registerIn(t, e, lang.Tag, nat)
			if offered(res) != serves {
				t.Errorf("%s/%s: offer after registration = %v, want %v", lang.Tag, nat, offered(res), serves)
			}
			_, res = say(e, st, testNow.Add(time.Minute), "/settings")
			if offered(res) != serves {
				t.Errorf("%s/%s: offer in settings = %v, want %v", lang.Tag, nat, offered(res), serves)
			}
			for _, step := range dialogs.AllSteps {
				s := st
				s.Step = step
				for _, in := range inputs {
					res := e.Handle(s, in, testNow.Add(time.Hour))
					if offered(res) && !serves {
						t.Errorf("%s/%s at %q, input %q: offered without a provider", lang.Tag, nat, step, in.Text)
					}
				}
			}
			// Not yet registered: never offered, whatever is pressed.
			for _, step := range dialogs.AllSteps {
				s := dialogs.State{Key: "user-1", Lang: lang.Tag, Step: step, Profile: dialogs.Profile{Nationality: nat}}
				for _, in := range inputs {
					if res := e.Handle(s, in, testNow); offered(res) {
						t.Errorf("%s/%s unregistered at %q, input %q: offered", lang.Tag, nat, step, in.Text)
					}
				}
			}
		}
	}
	// No public base URL: nothing is ever offered.
	e.Identity.PublicBaseURL = ""
	if _, res := registerIn(t, e, "en", "MY"); offered(res) {
		t.Error("offered without a public base URL")
	}
}

var linkURL = regexp.MustCompile(regexp.QuoteMeta(idBase) + `/id/start/([A-Za-z0-9_-]+)`)

// TestIdentityLinkCarriesNothingPersonal: the link message in every
// language holds the provider's name, the URL and the validity, nothing
// about the citizen; the URL is the base, the path and the token only; the
// effect holds the token's hash, never the token.
func TestIdentityLinkCarriesNothingPersonal(t *testing.T) {
	e := identityEngine(t)
	for _, lang := range e.Catalog.Languages() {
		st, _ := registerIn(t, e, lang.Tag, "MY")
		st.Profile.Passport, st.Profile.Employer, st.Profile.TrustedContact, st.Handle = "A1234567", "Golden Fortune Ltd", "+60 12 345 6789", "@siti"
		res := e.Handle(st, press("idv:mydid", 7), testNow.Add(time.Minute))
		l := res.IdentityLink
		if l == nil || len(res.Replies) != 1 {
			t.Fatalf("%s: no link: %+v", lang.Tag, res.Replies)
		}
		text := res.Replies[0].Text
		m := linkURL.FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("%s: no URL in %q", lang.Tag, text)
		}
		token := m[1]
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(raw) != dialogs.IdentityTokenBytes {
			t.Errorf("%s: token %q is not %d random bytes", lang.Tag, token, dialogs.IdentityTokenBytes)
		}
		sum := sha256.Sum256([]byte(token))
		if l.TokenHash != hex.EncodeToString(sum[:]) || strings.Contains(l.TokenHash, token) {
			t.Errorf("%s: effect holds %q, want the hash of the URL's token", lang.Tag, l.TokenHash)
		}
		if l.Provider != "mydid" || l.Lang != lang.Tag || !l.Expires.Equal(testNow.Add(time.Minute+dialogs.IdentityLinkTTL)) {
			t.Errorf("%s: link %+v", lang.Tag, l)
		}
		if !res.Replies[0].Sensitive {
			t.Errorf("%s: the link message is not cleaned up with the setup messages", lang.Tag)
		}
		for _, personal := range []string{"Siti", "Aminah", "A1234567", "Golden", "345", "@siti", "1001", st.Key, dialogs.Pseudonym(st.Key), "Phnom", "MY", "KH"} {
			if strings.Contains(text, personal) || strings.Contains(m[0], strings.ToLower(personal)) {
				t.Errorf("%s: the link message reveals %q: %q", lang.Tag, personal, text)
			}
		}
		if again := e.Handle(st, press("idv:mydid", 7), testNow.Add(time.Minute)); phoneView(again) != phoneView(res) || *again.IdentityLink != *l {
			t.Errorf("%s: the same event made a different link (the engine must be pure)", lang.Tag)
		}
	}
}

// TestIdentitySecondPressNewLink: each press gives a new link (the store
// replaces the old one); the link messages are purged together once the
// citizen moves on, or when the verification comes back.
func TestIdentitySecondPressNewLink(t *testing.T) {
	e := identityEngine(t)
	st, _ := registerIn(t, e, "en", "MY")
	first := e.Handle(st, press("idv:mydid", 1), testNow.Add(time.Minute))
	st = first.State
	if !st.IdentityLinkOpen || first.PurgeSensitive {
		t.Fatalf("first link: open=%v purge=%v", st.IdentityLinkOpen, first.PurgeSensitive)
	}
	_, menu := say(e, st, testNow.Add(2*time.Minute), "/settings")
	if !menu.PurgeSensitive || menu.State.IdentityLinkOpen {
		t.Error("moving on after the link did not remove the link message")
	}
	st, _ = say(e, st, testNow.Add(2*time.Minute), "/settings", "6") // the settings entry, offered again
	second := e.Handle(st, press("idv:mydid", 2), testNow.Add(3*time.Minute))
	if second.IdentityLink == nil || second.IdentityLink.TokenHash == first.IdentityLink.TokenHash {
		t.Fatal("a second press did not make a new link")
	}
	if second.PurgeSensitive {
		t.Error("a second press would delete its own new link message")
	}
	done := e.Handle(second.State, dialogs.Input{Kind: dialogs.KindIdentityVerified, Key: "user-1",
		Identity: &dialogs.Identity{Provider: "mydid", Subject: "s-1", Name: "SITI AMINAH", VerifiedAt: testNow.Add(4 * time.Minute)}},
		testNow.Add(4*time.Minute))
	if !done.PurgeSensitive || done.State.IdentityLinkOpen {
		t.Error("finishing the verification did not remove the link messages")
	}
}

// TestIdentityVerifiedRecorded: the state keeps what was proved, a name
// mismatch is kept and flagged, registration.updated carries `identity`,
// /mydata shows it, and someone deleted meanwhile is left alone.
func TestIdentityVerifiedRecorded(t *testing.T) {
	e := identityEngine(t)
	yes, no := true, false
	for _, c := range []struct {
		verified string
		matches  *bool // nil: no name was proved, nothing to compare
	}{{"AMINAH SITI", &yes}, {"Siti Aminah binti Ali", &no}, {"", nil}} {
		st, _ := registerIn(t, e, "en", "MY")
		at := testNow.Add(time.Hour)
		v := &dialogs.Identity{Provider: "mydid", Subject: "sub-9", Name: c.verified, Nationality: "MY", Assurance: "high", VerifiedAt: at}
		res := e.Handle(st, dialogs.Input{Kind: dialogs.KindIdentityVerified, Key: "user-1", Identity: v}, at)
		got := res.State.Identity
		if got == nil || got.Subject != "sub-9" || (got.NameMatches == nil) != (c.matches == nil) ||
			(c.matches != nil && *got.NameMatches != *c.matches) || !got.VerifiedAt.Equal(at) {
			t.Fatalf("%q: stored %+v", c.verified, got)
		}
		if len(res.Escalations) != 1 || res.Escalations[0].Type != dialogs.EventRegistrationUpdated {
			t.Fatalf("%q: escalations %v", c.verified, eventTypes2(res.Escalations))
		}
		d := res.Escalations[0].Details
		if id, ok := d["identity"].(dialogs.Identity); !ok || id.Subject != got.Subject || id.NameMatches != got.NameMatches || fmt.Sprint(d["fields"]) != "[identity]" {
			t.Errorf("%q: details %+v", c.verified, d)
		}
		if res.State.Profile.Name != "Siti Aminah" {
			t.Errorf("the typed name was replaced: %q", res.State.Profile.Name)
		}
		_, my := say(e, res.State, at.Add(time.Minute), "/mydata")
		if !strings.Contains(my.Replies[0].Text, "verified with MyDigital ID") {
			t.Errorf("/mydata does not show the verification: %q", my.Replies[0].Text)
		}
	}
	// Deleted really (the store erased the record) or covertly: nothing.
	st, _ := registerIn(t, e, "en", "MY")
	covert, _ := say(e, st, testNow, "/delete blue mango", "1")
	for name, s := range map[string]dialogs.State{"erased": {Key: "user-1"}, "covertly deleted": covert} {
		res := e.Handle(s, dialogs.Input{Kind: dialogs.KindIdentityVerified, Key: "user-1",
			Identity: &dialogs.Identity{Provider: "mydid", Subject: "x"}}, testNow.Add(time.Hour))
		if res.State.Identity != nil || len(res.Escalations) != 0 || len(res.Replies) != 0 {
			t.Errorf("%s: recorded %+v, %v, %d replies", name, res.State.Identity, eventTypes2(res.Escalations), len(res.Replies))
		}
	}
}

// TestIdentityNeverBlocksCheckins: with the offer open, with a link out, or
// verified, every way of checking in and asking for help works exactly as
// for a citizen who was never offered anything.
func TestIdentityNeverBlocksCheckins(t *testing.T) {
	plain := newEngine(t)
	e := identityEngine(t)
	base, _ := registerIn(t, plain, "en", "MY")
	withLink := e.Handle(base, press("idv:mydid", 3), testNow).State
	situations := map[string]dialogs.State{"offer open": func() dialogs.State { s := base; s.Step = dialogs.StepIdentityOffer; return s }(),
		"link out": withLink,
		"verified": func() dialogs.State {
			s := base
			s.Identity = &dialogs.Identity{Provider: "mydid", Subject: "s", VerifiedAt: testNow}
			return s
		}()}
	ins := []dialogs.Input{textInput("ok"), textInput("/checkin"), textInput("OK blue mango"), {Kind: dialogs.KindButton, Key: "user-1", Text: "checkin"},
		textInput("help"), textInput("/sos"), {Kind: dialogs.KindTimer, Key: "user-1"}}
	at := testNow.Add(25 * time.Hour)
	for name, st := range situations {
		for _, in := range ins {
			want := plain.Handle(base, in, at)
			got := e.Handle(st, in, at)
			if got.State.LastCheckin != want.State.LastCheckin || got.State.NextDue != want.State.NextDue ||
				fmt.Sprint(eventTypes2(got.Escalations)) != fmt.Sprint(eventTypes2(want.Escalations)) ||
				replyTexts(got) != replyTexts(want) {
				t.Errorf("%s, %q: check-in differs from a citizen never offered anything:\n got %s\nwant %s", name, in.Text, replyTexts(got), replyTexts(want))
			}
		}
	}
}

func replyTexts(res dialogs.Result) string {
	var b strings.Builder
	for _, r := range res.Replies {
		b.WriteString(r.Text + "|")
	}
	return b.String()
}

// TestIdentityOfferKeywordBlind: at the offer, a message holding the duress
// keyword shows the phone exactly what the same message with other words
// shows (DESIGN §3), now and through the probe.
func TestIdentityOfferKeywordBlind(t *testing.T) {
	e := identityEngine(t)
	for _, lang := range e.Catalog.Languages() {
		st, _ := registerIn(t, e, lang.Tag, "MY")
		st.Step = dialogs.StepIdentityOffer
		for _, tpl := range []string{"%s", "1 %s", "2 %s", "ok %s", "skip %s", "/settings %s"} {
			kw, _ := world(e, st, fmt.Sprintf(tpl, "blue mango"), testNow.Add(time.Hour))
			other, _ := world(e, st, fmt.Sprintf(tpl, "green apple"), testNow.Add(time.Hour))
			if kw != other {
				t.Errorf("%s, %q: the keyword changes what the phone sees:\n%s", lang.Tag, tpl, diff(kw, other))
			}
		}
	}
}

// TestIdentityNeutralWording: with neutral wording the offer does not name
// the embassy, in any language.
func TestIdentityNeutralWording(t *testing.T) {
	e := identityEngine(t)
	e.Policy.NeutralWording = true
	for _, lang := range e.Catalog.Languages() {
		_, res := registerIn(t, e, lang.Tag, "MY")
		offer := res.Replies[len(res.Replies)-1].Text
		want := e.Catalog.Text(lang.Tag, "IdentityOfferNeutral", map[string]any{"Providers": "MyDigital ID"})
		embassy := e.Catalog.Text(lang.Tag, "IdentityOffer", map[string]any{"Providers": "MyDigital ID"})
		if offer != want || offer == embassy {
			t.Errorf("%s: neutral offer is %q", lang.Tag, offer)
		}
	}
}

// TestIdentityNoRandomNoLink: a caller that supplies no randomness gets no
// link (never a guessable one).
func TestIdentityNoRandomNoLink(t *testing.T) {
	e := identityEngine(t)
	st, _ := registerIn(t, e, "en", "MY")
	in := press("idv:mydid", 1)
	in.Random = in.Random[:8]
	if res := e.Handle(st, in, testNow); res.IdentityLink != nil || strings.Contains(replyTexts(res), idBase) {
		t.Error("a link was made from 8 random bytes")
	}
}

func TestNamesMatch(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"Siti Aminah", "SITI AMINAH", true}, {"Siti Aminah", "Aminah, Siti", true}, {"Nguyễn Văn An", "NGUYEN VAN AN", true},
		{"Siti Aminah", "Siti Aminah binti Ali", false}, {"Siti", "Sita", false}, {"", "", false}, {"Tan Ah Kow", "", false},
		{"Ｔａｎ Ah Kow", "tan ah kow", true}, {"Tan Tan", "Tan", false},
	} {
		if got := dialogs.NamesMatch(c.a, c.b); got != c.want {
			t.Errorf("NamesMatch(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
