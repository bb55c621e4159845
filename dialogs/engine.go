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
	// reduces: this turn started or completed a stop, pause or delete.
	reduces bool
}

// Handle applies one input to a registrant's state at time now.
func (e *Engine) Handle(st State, in Input, now time.Time) Result {
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
	t := &turn{e: e, st: st, in: in, now: now}
	switch in.Kind {
	case KindTimer:
		t.timer()
	case KindRollCall:
		t.rollCall()
	case KindPromptDelivered:
		t.promptDelivered()
	case KindUnreachable:
		t.promptUndeliverable()
		if t.st.Registered() && !t.st.Unreachable {
			t.st.Unreachable = true
			t.escalate(EventRegistrationUnreachable, SeverityHigh, CaseAppend, map[string]any{"channel": t.st.Channel})
			t.audit("channel.unreachable")
		}
	case KindCaseResolved:
		if in.CaseID != "" && in.CaseID == t.st.OpenCase {
			t.st.OpenCase, t.st.DoNotContact, t.st.Hidden = "", false, nil
			t.audit("case.resolved")
		}
	default:
		t.message()
	}
	t.res.State = t.st
	return t.res
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

// message handles anything the citizen sent. The duress keyword is looked
// for first, on every text of anyone who has one (DESIGN §3).
//
// Only a confirmed keyword counts: while registering, the keyword being
// chosen is not yet one. The keyword of a covertly deleted registration
// (State.Hidden) keeps counting.
func (t *turn) message() {
	t.st.Unreachable = false
	if t.in.Kind == KindText && (t.st.Registered() || t.st.Hidden != nil) {
		norm := Normalize(t.in.Text)
		found, rest := false, ""
		mac := t.e.mac()
		if t.st.Registered() {
			found, rest = matchKeyword(mac, t.st.Key, t.st.Keyword, norm)
		}
		if h := t.st.Hidden; h != nil {
			for _, k := range h.Keywords {
				if hf, hr := matchKeyword(mac, t.st.Key, k, norm); hf && !found {
					found, rest = true, hr
				}
			}
		}
		t.e.macs.Put(mac)
		// Typing exactly the keyword while choosing or changing one (to
		// prove the old one, to keep it, or to choose it again after a
		// covert delete) is the answer asked for, not a duress signal.
		changing := t.st.Step == StepSettingsKeywordOld || t.st.Step == StepSettingsKeywordNew ||
			t.st.Step == StepSettingsKeywordRepeat ||
			(!t.st.Registered() && (t.st.Step == StepKeyword || t.st.Step == StepKeywordRepeat))
		verifying := changing && rest == ""
		if found && !verifying {
			t.duress(rest)
			return
		}
	}
	t.dispatch()
}

// duress records duress.triggered and then produces exactly the visible
// outcome of a check-in — unless the rest of the message is a stop, pause
// or delete request, which then appears to succeed.
func (t *turn) duress(rest string) {
	t.st.DoNotContact = true
	t.escalate(EventDuressTriggered, SeverityCritical, CaseOpen, nil)
	duressEsc := t.res.Escalations
	if h := t.st.Hidden; h != nil {
		// A coerced sign of life still resets the hidden schedule.
		h.LastCheckin = t.now
		h.NextDue = nextDue(t.now, h.Interval, h.CheckinTime, t.zoneOf(h.Profile.Country))
		h.Ladder, h.Timer = ladderWaiting, h.NextDue
	}

	probe := &turn{e: t.e, st: t.st, in: t.in, now: t.now, covert: true}
	probe.in.Text = rest
	if rest != "" {
		probe.dispatch()
	}
	if probe.reduces {
		probe.res.Escalations = append(duressEsc, probe.res.Escalations...)
		t.st, t.res, t.reduces = probe.st, probe.res, true
		return
	}
	// For the phone of a covertly deleted registration, which looks new,
	// this is exactly what a check-in command does there.
	t.intent(intentCheckin)
}

// visible is the status the phone is shown.
func (t *turn) visible() Status {
	if t.st.Shown != "" {
		return t.st.Shown
	}
	return t.st.Status
}

// dispatch routes a message that is not (or no longer) a duress check-in.
func (t *turn) dispatch() {
	switch t.in.Kind {
	case KindMedia:
		t.reply("HintMedia", nil)
		t.reprompt()
		return
	case KindLocation:
		t.location()
		return
	}
	text := t.in.Text
	if t.in.Kind == KindButton {
		switch text {
		case "checkin":
			t.intent(intentCheckin)
			return
		case "sos":
			t.intent(intentSOS)
			return
		}
	}
	if t.in.Kind == KindText && strings.HasPrefix(text, "/") {
		in, ok := parseCommand(text)
		switch {
		case ok:
			t.intent(in)
		case in != intentNone:
			t.reply("HintCommandAlone", map[string]any{"Command": commandName(in)})
			t.reprompt()
		default:
			t.hint()
		}
		return
	}
	norm := Normalize(text)
	if spec, ok := steps[t.st.Step]; ok && t.st.Step != StepNone {
		if t.answer(spec, norm) {
			return
		}
	}
	if in := t.wordIntent(norm); in != intentNone {
		t.intent(in)
		return
	}
	if t.st.Step != StepNone {
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

// SuggestLanguage maps a platform hint ("ms-MY", "zh-hans", "tl") to a
// supported language tag, defaulting to English.
func (e *Engine) SuggestLanguage(hint string) string {
	hint = strings.ToLower(strings.ReplaceAll(hint, "_", "-"))
	aliases := map[string]string{"zh-hans": "zh", "zh-cn": "zh", "zh-sg": "zh", "tl": "fil", "in": "id", "zsm": "ms"}
	if a, ok := aliases[hint]; ok {
		hint = a
	}
	base, _, _ := strings.Cut(hint, "-")
	for _, l := range e.Catalog.Languages() {
		if l.Tag == hint || l.Tag == base {
			return l.Tag
		}
	}
	return "en"
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
	return t.e.Catalog.Text(t.st.Lang, id, data)
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
	return State{Key: t.st.Key, Lang: t.st.Lang, Hidden: t.st.Hidden, OpenCase: t.st.OpenCase, DoNotContact: t.st.DoNotContact}
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
