// Verified identity (DESIGN §12, issue 14 item 2): after registration, and
// from the settings menu, a citizen whose nationality has an identity
// provider configured is offered "verify my identity" — optional, one extra
// question, skippable, never needed to check in. Choosing a provider makes a
// single-use link: the token comes from Input.Random (the runner draws fresh
// bytes for every event, so the engine stays pure), only its SHA-256 leaves
// the engine (Result.IdentityLink, written by the store in the transaction
// that queues the reply carrying the URL), and the URL holds nothing
// personal. The browser goes through the provider (package identity); the
// outcome comes back as KindIdentityVerified, handled here like any other
// input: the state change and registration.updated with `identity` are one
// transaction. The link message is a setup message: it is removed (Sensitive,
// PurgeSensitive) when the verification finishes or the citizen moves on.

package dialogs

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// IdentityLinkTTL is how long a link from the chat stays usable; it is
// identity.LinkTTL (DESIGN §12: 10 minutes), repeated here because the
// engine imports nothing but the domain (app's tests check they agree).
const IdentityLinkTTL = 10 * time.Minute

// IdentityTokenBytes is how many bytes of Input.Random make a link's token
// (256 bits: unguessable for the link's ten minutes and long after).
const IdentityTokenBytes = 32

// IdentityStartPath is the path, under the public base URL, where a link
// lands in the browser; the token follows it.
const IdentityStartPath = "/id/start/"

// IdentityProvider is a national digital ID the citizen may be offered, as
// the engine needs it: the app fills it from the identity configuration.
type IdentityProvider struct {
	// ID names the provider in links, state and webhooks ("singpass").
	ID string
	// Names is the display name by language tag; "en", then ID, when the
	// citizen's language has none.
	Names map[string]string
	// Nationalities are the passports (ISO alpha-2) it is offered to.
	Nationalities []string
}

// IdentityConfig is what the engine knows of identity verification. With no
// providers, or no PublicBaseURL, nothing is ever offered.
type IdentityConfig struct {
	// PublicBaseURL is where citizens' browsers reach the App's listener
	// ("https://checkin.example.gov"); links are PublicBaseURL +
	// IdentityStartPath + token.
	PublicBaseURL string
	Providers     []IdentityProvider
}

// Identity is what a provider proved about the citizen, as kept with the
// registration and sent to the embassy in registration.updated (details
// `identity`). A mismatch between the typed and the verified name is kept
// and flagged (NameMatches false), never refused: the embassy decides.
type Identity struct {
	Provider    string `json:"provider"`
	Subject     string `json:"subject,omitempty"`
	Name        string `json:"name,omitempty"`
	Nationality string `json:"nationality,omitempty"`
	// NationalIDHash is a keyed hash of the national id number; NationalID
	// the number itself, only where the configuration says the embassy
	// needs it.
	NationalIDHash string    `json:"national_id_hash,omitempty"`
	NationalID     string    `json:"national_id,omitempty"`
	Assurance      string    `json:"assurance,omitempty"`
	VerifiedAt     time.Time `json:"verified_at"`
	// NameMatches: the verified name has the same words as the name typed
	// at registration (NamesMatch). Set by the engine, not the provider;
	// nil when the provider proved no name (Singpass gives none).
	NameMatches *bool `json:"name_matches,omitempty"`
}

// IdentityLink is the effect of a link request: the store writes it in the
// same transaction as the reply carrying the URL, replacing the
// registrant's previous link (a second press gives a new link and the old
// one stops working). TokenHash is the hex SHA-256 of the token as it
// appears in the URL; the token itself is never stored.
type IdentityLink struct {
	TokenHash string
	Provider  string
	Lang      string
	Expires   time.Time
}

// identitySteps is the offer: one button per provider, and Skip.
func identitySteps() map[Step]stepSpec {
	return map[Step]stepSpec{
		StepIdentityOffer: {
			prompt: "IdentityOffer",
			data: func(t *turn) map[string]any {
				var names []string
				for _, p := range t.identityProviders() {
					names = append(names, t.providerName(p))
				}
				return map[string]any{"Providers": strings.Join(names, ", ")}
			},
			options: func(t *turn) []option {
				var opts []option
				for _, p := range t.identityProviders() {
					opts = append(opts, option{label: t.text("ButtonVerifyWith", map[string]any{"Provider": t.providerName(p)}),
						data: identityChoice + p.ID})
				}
				return append(opts, option{label: t.text("ButtonSkip", nil), data: "skip", aliases: t.words().Skip})
			},
			choose: func(t *turn, o option) {
				t.st.Step = StepNone
				id, ok := strings.CutPrefix(o.data, identityChoice)
				if !ok {
					t.reply("IdentityLater", nil)
					return
				}
				t.identityLink(id)
			},
		},
	}
}

// identityChoice prefixes a provider's id in the offer's button data.
const identityChoice = "idv:"

// identityProviders are the providers offered to this citizen: those
// configured for their nationality, and none without a public base URL.
func (t *turn) identityProviders() []IdentityProvider {
	cfg := t.e.Identity
	if cfg.PublicBaseURL == "" || !t.st.Registered() || t.st.Profile.Nationality == "" {
		return nil
	}
	var out []IdentityProvider
	for _, p := range cfg.Providers {
		if p.ID != "" && slices.Contains(p.Nationalities, t.st.Profile.Nationality) {
			out = append(out, p)
		}
	}
	return out
}

// providerName is a provider's display name in the citizen's language.
func (t *turn) providerName(p IdentityProvider) string {
	if n := p.Names[t.st.Lang]; n != "" {
		return n
	}
	if n := p.Names["en"]; n != "" {
		return n
	}
	return p.ID
}

// offerIdentity asks the offer when a provider matches the nationality.
func (t *turn) offerIdentity() {
	if len(t.identityProviders()) > 0 {
		t.ask(StepIdentityOffer)
	}
}

// identityLink makes the single-use link for provider id and sends it.
func (t *turn) identityLink(id string) {
	var p IdentityProvider
	for _, c := range t.identityProviders() {
		if c.ID == id {
			p = c
		}
	}
	if p.ID == "" || len(t.in.Random) < IdentityTokenBytes {
		// A provider removed from the config since the offer, or a caller
		// that supplied no randomness: no link rather than a guessable one.
		t.reply("IdentityUnavailable", nil)
		return
	}
	token := base64.RawURLEncoding.EncodeToString(t.in.Random[:IdentityTokenBytes])
	sum := sha256.Sum256([]byte(token))
	t.res.IdentityLink = &IdentityLink{TokenHash: hex.EncodeToString(sum[:]), Provider: p.ID, Lang: t.st.Lang,
		Expires: t.now.Add(IdentityLinkTTL)}
	t.st.IdentityLinkOpen = true
	url := strings.TrimRight(t.e.Identity.PublicBaseURL, "/") + IdentityStartPath + token
	t.res.Replies = append(t.res.Replies, Reply{Sensitive: true, Text: t.text("IdentityLink", map[string]any{
		"Provider": t.providerName(p), "Minutes": int(IdentityLinkTTL / time.Minute), "URL": url})})
	t.audit("identity.link")
}

// identityVerified records what a provider proved (KindIdentityVerified).
// Someone no longer registered (deleted meanwhile, really or covertly) is
// left as they are: the phone must see the same in both cases.
func (t *turn) identityVerified() {
	if t.in.Identity == nil || !t.st.Registered() {
		return
	}
	v := *t.in.Identity
	v.NameMatches = nil
	if v.Name != "" {
		m := NamesMatch(t.st.Profile.Name, v.Name)
		v.NameMatches = &m
	}
	v.VerifiedAt = v.VerifiedAt.UTC()
	t.st.Identity = &v
	t.escalate(EventRegistrationUpdated, SeverityInfo, CaseNone, map[string]any{"fields": []string{"identity"}, "identity": v})
	t.audit("identity.verified")
	name := v.Provider
	for _, p := range t.e.Identity.Providers {
		if p.ID == v.Provider {
			name = t.providerName(p)
		}
	}
	t.reply("IdentityVerified", map[string]any{"Provider": name})
}

// identityLeft removes the link message once the citizen has moved on: the
// verification finished, or anything else was sent after the link (a new
// link is the exception: both go together later). It runs after every input.
func (t *turn) identityLeft(before State) {
	if !before.IdentityLinkOpen || t.res.IdentityLink != nil {
		return
	}
	if fromCitizen(t.in.Kind) || t.in.Kind == KindIdentityVerified {
		t.st.IdentityLinkOpen = false
		t.res.PurgeSensitive = true
	}
}

// identityLine is the /mydata line about a verified identity ("" when none).
func (t *turn) identityLine() string {
	v := t.st.Identity
	if v == nil {
		return ""
	}
	name := v.Provider
	for _, p := range t.e.Identity.Providers {
		if p.ID == v.Provider {
			name = t.providerName(p)
		}
	}
	return t.text("MyDataIdentity", map[string]any{"Provider": name, "When": t.when(v.VerifiedAt)})
}

// NamesMatch reports whether two spellings of a name have the same words,
// in any order, after Normalize (case, accents, width and punctuation
// ignored): "Siti Aminah" matches "AMINAH, SITI" but not "Siti Aminah
// binti Ali". Anything finer is the embassy's judgement.
func NamesMatch(typed, verified string) bool {
	a, b := strings.Fields(Normalize(typed)), strings.Fields(Normalize(verified))
	if len(a) == 0 || len(a) != len(b) {
		return false
	}
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
