// The engine core: Handle, which applies one input to one registrant's
// state, the reading of a message (duress detection, then dispatch by the
// everyday grammar), and the helpers every flow uses to reply, audit and
// escalate. It declares no steps: each flow's questions live in that
// flow's file, and steps.go collects them.

package dialogs

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"math"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Engine runs conversations. It holds only configuration; every call to
// Handle is independent, so one Engine serves all users concurrently.
type Engine struct {
	Catalog   Catalog
	Directory Directory
	Policy    Policy
	// Pepper keys the duress keyword HMAC. It comes from the environment
	// (CHECKIN_PEPPER), never from the database.
	Pepper []byte
	// Identity lists the identity providers offered to citizens and where
	// links point (identity.go); empty offers nothing.
	Identity IdentityConfig

	macs sync.Pool // HMAC-SHA256 instances keyed with Pepper

	wordsOnce sync.Once
	words     *wordIndex // built on first use from Catalog
	aliasOnce sync.Once
	aliases   map[string][]string // language tag → words that choose it
}

// mac returns an HMAC keyed with the pepper; put it back in e.macs.
func (e *Engine) mac() hash.Hash {
	if m, ok := e.macs.Get().(hash.Hash); ok {
		return m
	}
	return hmac.New(sha256.New, e.Pepper)
}

// turn is the work of one Handle call.
type turn struct {
	e   *Engine
	st  State
	in  Input
	now time.Time
	res Result
	// covert: a duress keyword was in this message; stop, pause and delete
	// must only pretend.
	covert bool
	// norm caches Normalize(in.Text): duress detection and dispatch read
	// the same form, and a 65,536-character message is normalised once.
	norm    string
	normSet bool
}

// normalized is the message's text as Normalize makes it, computed once.
func (t *turn) normalized() string {
	if !t.normSet {
		t.norm, t.normSet = Normalize(t.in.Text), true
	}
	return t.norm
}

// Handle applies one input to a registrant's state at time now.
func (e *Engine) Handle(st State, in Input, now time.Time) Result {
	if in.Flood != FloodNone && fromCitizen(in.Kind) {
		return e.handleFlooded(st, in, now)
	}
	t := e.newTurn(st, in, now)
	switch in.Kind {
	case KindTimer:
		t.timer()
	case KindRollCall:
		t.rollCall()
	case KindRollCallMissed:
		t.rollCallMissed()
	case KindPromptDelivered:
		t.promptDelivered()
	case KindUnreachable:
		t.promptUndeliverable()
		if t.st.Registered() && !t.st.Unreachable {
			t.st.Unreachable = true
			t.escalate(EventRegistrationUnreachable, SeverityHigh, CaseAppend, map[string]any{"channel": t.st.Channel})
			t.audit("channel.unreachable")
		}
	case KindIdentityVerified:
		t.identityVerified()
	case KindRetention:
		t.retention()
	case KindCaseResolved:
		if in.CaseID != "" && in.CaseID == t.st.OpenCase {
			t.st.OpenCase, t.st.DoNotContact, t.st.Hidden = "", false, nil
			t.audit("case.resolved")
		}
	default:
		t.message()
	}
	return t.finish(st)
}

// finish completes the result of a turn that started from st.
func (t *turn) finish(st State) Result {
	if steps()[st.Step].sensitive && !steps()[t.st.Step].sensitive {
		// Leaving the keyword exchange, however it ended — changed,
		// mistyped, abandoned for another question — removes its messages.
		t.res.PurgeSensitive = true
	}
	t.identityLeft(st)
	t.res.State = t.st
	return t.res
}

// newTurn starts the work of one Handle call on a copy of st.
func (e *Engine) newTurn(st State, in Input, now time.Time) *turn {
	in.Text = cleanText(in.Text)
	if st.Hidden != nil {
		// Copy, so the caller's state (which the store still needs, to find
		// the old due-index entry) is never changed behind its back.
		h := *st.Hidden
		st.Hidden = &h
	}
	if st.Key == "" {
		st.Key = in.Key
	}
	if st.Lang == "" {
		st.Lang = e.SuggestLanguage(in.LangHint)
	}
	return &turn{e: e, st: st, in: in, now: now}
}

// fromCitizen reports whether an input is something the citizen sent (the
// only kind a flood mark applies to).
func fromCitizen(k InputKind) bool {
	return k == KindText || k == KindButton || k == KindLocation || k == KindMedia
}

// cleanText makes any input safe to process and to echo: valid UTF-8, no
// control characters, trimmed.
func cleanText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return ' '
		}
		if unicode.IsControl(r) || r == '\u202e' || r == '\u202d' {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// message handles anything the citizen sent, in two independent parts
// (DESIGN §3). What the phone sees comes from dispatch, which never looks at
// the duress keyword: the keyword is read like any other words, so
// replacing or removing it changes nothing visible. The silent part comes
// first: if the message carries a keyword, duress.triggered is recorded and
// any stop, pause or delete the message asks for will only pretend.
func (t *turn) message() {
	t.silent()
	t.dispatch()
}

// silent is the part of reading a message that the phone never sees; a
// flooded message gets only this (flood.go).
func (t *turn) silent() {
	t.st.Unreachable = false
	t.st.Retention = RetentionMarks{LastSeen: t.now} // any message keeps the registration (retention.go)
	t.closeStaleKeywordChange()
	if t.in.Kind == KindText {
		t.detectDuress()
	}
}

// detectDuress looks for the keyword on every text of anyone who has one.
// Only a confirmed keyword counts: while registering, the keyword being
// chosen is not yet one. Every keyword the registrant ever had in force
// counts (State.Keywords), as do those of a covertly deleted registration
// (State.Hidden).
func (t *turn) detectDuress() {
	var keys []Keyword
	if t.st.Registered() {
		keys = t.st.Keywords()
	}
	if h := t.st.Hidden; h != nil {
		keys = append(keys, h.Keywords...)
	}
	if len(keys) == 0 {
		return
	}
	norm := t.normalized()
	found, rest := false, ""
	mac := t.e.mac()
	for _, k := range keys {
		// Every keyword is tried, even after a match: the work does not
		// depend on whether, or which, keyword is in the message.
		if f, r := matchKeyword(mac, t.st.Key, k, norm); f && !found {
			found, rest = true, r
		}
	}
	t.e.macs.Put(mac)
	if !found {
		return
	}
	if t.answersKeywordQuestion() {
		return // a new keyword may contain the old one: it is the answer asked for
	}
	switch t.st.Step {
	case StepSettingsKeywordOld:
		if rest == "" {
			return // the current keyword, typed when asked for it, is the answer
		}
	case StepKeyword, StepKeywordRepeat:
		if !t.st.Registered() && rest == "" {
			return // choosing the keyword of a covertly deleted registration again
		}
	}
	t.covert = true
	t.st.DoNotContact = true
	details := map[string]any{}
	if rest != "" {
		details["message"] = rest
	}
	t.escalate(EventDuressTriggered, SeverityCritical, CaseOpen, details)
	if h := t.st.Hidden; h != nil && !t.st.Registered() {
		// A coerced sign of life still resets the hidden schedule, which
		// the phone never sees.
		h.LastCheckin = t.now
		h.NextDue = nextDue(t.now, h.Interval, h.CheckinTime, t.zoneOf(h.Profile.Country))
		h.Ladder, h.Timer, h.Missed = ladderWaiting, h.NextDue, false
	}
}

// visible is the status the phone is shown.
func (t *turn) visible() Status {
	if t.st.Shown != "" {
		return t.st.Shown
	}
	return t.st.Status
}

// shownNextDue is the next check-in the phone is shown: after a covert
// stop, pause or delete the monitoring schedule may move, the shown one
// does not (it stays what the real request would have left).
func (t *turn) shownNextDue() time.Time {
	if t.st.Shown != "" && !t.st.ShownNextDue.IsZero() {
		return t.st.ShownNextDue
	}
	return t.st.NextDue
}

// dispatch routes a message by the everyday grammar (docs/conversations.md,
// "How a message is read"), without ever consulting the duress keyword:
//
//  1. a command is that command, whatever words follow it;
//  2. inside the SOS questions, the answer is taken as given;
//  3. help words anywhere raise an SOS — except where a question asks for
//     free text, which is taken as typed;
//  4. an answer to the open question: a choice by its number, label or
//     alias, alone or followed by other words; free text as typed, unless
//     the message is exactly a plain command word or begins with a check-in
//     word (the taught form "OK <keyword>" checks in everywhere);
//  5. a message that begins with a plain word or phrase is that flow;
//  6. anything else gets a hint and the open question again.
func (t *turn) dispatch() {
	switch t.in.Kind {
	case KindMedia:
		t.reply("HintMedia", nil)
		t.reprompt()
		return
	case KindLocation:
		t.location()
		return
	case KindButton:
		switch t.in.Text {
		case "checkin":
			t.intent(intentCheckin)
			return
		case "sos":
			t.intent(intentSOS)
			return
		case "snooze":
			t.intent(intentSnooze)
			return
		}
		if strings.HasPrefix(t.in.Text, crowdButton) {
			t.retime(t.in.Text) // the free time a crowded choice offered (crowding.go)
			return
		}
	}
	text := t.in.Text
	if t.in.Kind == KindText && strings.HasPrefix(text, "/") {
		if in := parseCommand(text); in != intentNone {
			t.intent(in)
		} else {
			t.hint()
		}
		return
	}
	norm := t.normalized()
	spec, open := steps()[t.st.Step]
	open = open && t.st.Step != StepNone
	freeText := open && spec.free != nil
	if open && sosStep(t.st.Step) && t.answer(spec, norm) {
		return
	}
	if t.in.Kind == KindText && t.st.Registered() && (!freeText || spec.sensitive) && t.asksForHelp(norm) {
		t.intent(intentSOS)
		return
	}
	if open && t.answer(spec, norm) {
		return
	}
	if t.in.Kind == KindText {
		if in := t.leadingIntent(norm); in != intentNone {
			t.intent(in)
			return
		}
	}
	if open {
		t.reply("HintChoose", nil)
		t.reprompt()
		return
	}
	if !t.st.Registered() {
		t.askFirstContact()
		return
	}
	t.hint()
}

// hint answers anything unrecognised with what can be said.
func (t *turn) hint() {
	switch {
	case !t.st.Registered():
		t.askFirstContact()
	case t.visible() == StatusStopped:
		t.reply("HintStopped", nil)
	default:
		t.reply("HintUnknown", nil)
	}
}

// reprompt repeats the open question, if any.
func (t *turn) reprompt() {
	if t.st.Step == StepNone {
		if !t.st.Registered() && t.in.Kind != KindMedia {
			t.askFirstContact()
		}
		return
	}
	t.ask(t.st.Step)
}

// askFirstContact greets someone unknown and offers the languages.
func (t *turn) askFirstContact() {
	t.reply("Welcome", nil)
	t.ask(StepLanguage)
}

// reply appends a localised message.
func (t *turn) reply(id string, data map[string]any) {
	t.res.Replies = append(t.res.Replies, Reply{Text: t.text(id, data)})
}

// replySensitive appends a message that reveals the duress feature; channels
// delete it with the setup prompts.
func (t *turn) replySensitive(id string) {
	t.res.Replies = append(t.res.Replies, Reply{Text: t.text(id, nil), Sensitive: true})
}

func (t *turn) text(id string, data map[string]any) string {
	if t.e.Policy.NeutralWording && neutralMessages[id] {
		id += "Neutral"
	}
	return t.e.Catalog.Text(t.st.Lang, id, data)
}

// neutralMessages name the duress feature; with Policy.NeutralWording each
// is replaced by its "…Neutral" form, which does not (no "secret", "alert"
// or "embassy"), in every language.
var neutralMessages = map[string]bool{
	"Menu": true, "FieldKeyword": true, "AskKeyword": true, "AskKeywordRepeat": true,
	"AskKeywordOld": true, "KeywordChanged": true, "Summary": true, "IdentityOffer": true,
}

func (t *turn) audit(action string) { t.res.Audit = append(t.res.Audit, action) }

// escalate records an event for the embassy about this registrant.
func (t *turn) escalate(typ string, sev Severity, mode CaseMode, details map[string]any) {
	v := t.view()
	t.res.Escalations = append(t.res.Escalations, Escalation{
		Type:         typ,
		Severity:     sev,
		DoNotContact: t.st.DoNotContact,
		EmbassyID:    t.e.Directory.EmbassyFor(v.Nationality, v.Country),
		Case:         mode,
		Registrant:   v,
		Details:      details,
	})
}

// view is the registrant as the embassy sees them: the hidden registration
// while the phone shows a covertly deleted one and nothing new is confirmed.
func (t *turn) view() RegistrantView {
	if h := t.st.Hidden; h != nil && !t.st.Registered() {
		return makeView(t.st.Key, h.Profile, h.Channel, h.Address, h.Handle, h.Lang, h.LastCheckin)
	}
	return makeView(t.st.Key, t.st.Profile, t.st.Channel, t.st.Address, t.st.Handle, t.st.Lang, t.st.LastCheckin)
}

func makeView(key string, p Profile, channel, address, handle, lang string, last time.Time) RegistrantView {
	v := RegistrantView{
		ID: Pseudonym(key), Channel: channel, Address: address, Handle: handle,
		Name: p.Name, Passport: p.Passport, Nationality: p.Nationality, Country: p.Country,
		City: p.City, Employer: p.Employer, TrustedContact: p.TrustedContact, Phone: p.Phone,
		Language: lang, LastLocation: p.LastLocation,
	}
	if !last.IsZero() {
		v.LastCheckin = &last
	}
	return v
}

// fresh is the state after a real delete or a declined consent: nothing but
// the key — and, if there is one, the covertly deleted registration, which
// must survive anything done from the phone.
func (t *turn) fresh() State {
	if t.st.Hidden == nil {
		t.res.Erase = true
		return State{Key: t.st.Key, Lang: t.st.Lang}
	}
	// No Lang: the store forgets it with a real erase, and the phone must
	// see exactly that.
	return State{Key: t.st.Key, Hidden: t.st.Hidden, OpenCase: t.st.OpenCase, DoNotContact: t.st.DoNotContact}
}

// Pseudonym is the registrant id shown to embassies: a prefix of the user
// key, stable per channel identity and meaningless without the pepper.
func Pseudonym(key string) string {
	if len(key) > 20 {
		key = key[:20]
	}
	return "reg_" + key
}

// location handles a shared pin.
func (t *turn) location() {
	if math.IsNaN(t.in.Lat) || math.IsNaN(t.in.Lon) || t.in.Lat < -90 || t.in.Lat > 90 || t.in.Lon < -180 || t.in.Lon > 180 {
		t.reply("HintLocation", nil)
		t.reprompt()
		return
	}
	loc := &Location{Lat: t.in.Lat, Lon: t.in.Lon, At: t.now}
	switch t.st.Step {
	case StepSOSLocation:
		t.sosLocation(loc)
	case StepUpdateLocation, StepNone:
		if !t.st.Registered() {
			t.askFirstContact()
			return
		}
		t.st.Profile.LastLocation = loc
		t.st.Step = StepNone
		t.escalate(EventRegistrationUpdated, SeverityInfo, CaseNone, map[string]any{"fields": []string{"last_location"}})
		t.audit("registration.updated")
		t.reply("LocationSaved", nil)
	default:
		t.reply("HintChoose", nil)
		t.reprompt()
	}
}
