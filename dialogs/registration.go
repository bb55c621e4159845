// Registration (DESIGN §2 flow 1): language → consent → nationality →
// country → city → name → passport, employer, trusted contact (each
// skippable) → interval → time → duress keyword twice → summary → confirm.
// Nothing personal is stored before consent; every answer is stored as it
// arrives, so a registration resumes where it stopped. Its steps live here,
// in the order they are asked, beside the summary that can go back to each.

package dialogs

import (
	"crypto/hmac"
	"time"
)

// summaryFields are the answers a citizen can correct from the summary, in
// the order shown; option n+2 changes summaryFields[n] (option 1 confirms).
var summaryFields = []struct {
	label string
	step  Step
}{
	{"FieldLanguage", StepLanguage}, {"FieldNationality", StepNationality},
	{"FieldCountry", StepCountry}, {"FieldCity", StepCity}, {"FieldName", StepName},
	{"FieldPassport", StepPassport}, {"FieldEmployer", StepEmployer},
	{"FieldContact", StepContact}, {"FieldInterval", StepInterval}, {"FieldTime", StepTime},
	{"FieldKeyword", StepKeyword},
}

// registrationSteps are the questions of registration, in the order asked.
func registrationSteps() map[Step]stepSpec {
	return map[Step]stepSpec{
		StepLanguage: {
			prompt:  "AskLanguage",
			options: (*turn).languageOptions,
			choose: func(t *turn, o option) {
				t.st.Lang = o.data
				switch {
				case t.st.Resume != "":
					resume := t.st.Resume
					t.st.Resume = ""
					t.ask(resume)
				case t.st.ConsentAt.IsZero():
					t.ask(StepConsent)
				default:
					t.next(StepNationality)
				}
			},
		},
		StepConsent: {
			prompt: "AskConsent",
			data: func(t *turn) map[string]any {
				operator := t.e.Policy.Operator
				if name, ok := t.e.Policy.OperatorNames[t.st.Lang]; ok {
					operator = name
				}
				return map[string]any{"Operator": operator, "Days": t.e.Policy.RetentionDays,
					"Version": t.e.Policy.NoticeVersion}
			},
			options: func(t *turn) []option {
				w := t.words()
				return []option{
					{label: t.text("ButtonAgree", nil), data: "agree", aliases: w.Yes},
					{label: t.text("ButtonDecline", nil), data: "decline", aliases: w.No},
				}
			},
			choose: func(t *turn, o option) {
				if o.data != "agree" {
					t.st = t.fresh()
					t.audit("consent.declined")
					t.reply("ConsentDeclined", nil)
					return
				}
				t.st.NoticeVersion, t.st.ConsentAt = t.e.Policy.NoticeVersion, t.now
				t.st.Channel, t.st.Address, t.st.Handle = t.in.Channel, t.in.Address, t.in.Handle
				t.audit("consent.given")
				t.ask(StepNationality)
			},
		},
		StepNationality: {
			prompt:  "AskNationality",
			options: func(t *turn) []option { return t.countryOptions(t.e.Directory.nationalities()) },
			choose: func(t *turn, o option) {
				t.st.Profile.Nationality = o.data
				if !contains(t.e.Directory.CountriesFor(o.data), t.st.Profile.Country) {
					t.st.Profile.Country = ""
					t.ask(StepCountry) // a correction too: the old country is not covered
					return
				}
				t.next(StepCountry)
			},
		},
		StepCountry: {
			prompt:  "AskCountry",
			options: func(t *turn) []option { return t.countryOptions(t.e.Directory.CountriesFor(t.st.Profile.Nationality)) },
			choose: func(t *turn, o option) {
				changed := t.st.Profile.Country != o.data
				t.st.Profile.Country = o.data
				if changed && t.st.Editing {
					t.ask(StepCity) // a new country needs a new city; then back to the summary
					return
				}
				t.next(StepCity)
			},
		},
		StepCity: {
			prompt: "AskCity",
			free: func(t *turn, text string) {
				if v, ok := t.freeText(text, 100); ok {
					t.st.Profile.City = v
					t.next(StepName)
				}
			},
		},
		StepName: {
			prompt: "AskName",
			free: func(t *turn, text string) {
				if v, ok := t.freeText(text, 100); ok {
					t.st.Profile.Name = v
					t.next(StepPassport)
				}
			},
		},
		StepPassport: optionalField("AskPassport",
			func(p *Profile) *string { return &p.Passport }, passportAnswer,
			func(t *turn) { t.next(StepEmployer) }),
		StepEmployer: optionalField("AskEmployer",
			func(p *Profile) *string { return &p.Employer }, freeTextUpTo(200),
			func(t *turn) { t.next(StepContact) }),
		StepContact: optionalField("AskContact",
			func(p *Profile) *string { return &p.TrustedContact }, freeTextUpTo(200),
			func(t *turn) { t.next(StepInterval) }),
		StepInterval: {
			prompt:  "AskInterval",
			options: (*turn).intervalOptions,
			choose: func(t *turn, o option) {
				t.st.Interval, _ = time.ParseDuration(o.data)
				t.next(StepTime)
			},
		},
		StepTime: {
			prompt:  "AskTime",
			options: (*turn).timeOptions,
			choose:  func(t *turn, o option) { t.setTime(o.data, StepKeyword) },
			free:    func(t *turn, text string) { t.setTime(text, StepKeyword) },
		},
		StepKeyword: {
			prompt:    "AskKeyword",
			sensitive: true,
			free:      func(t *turn, text string) { t.takeKeyword(text, StepKeywordRepeat) },
		},
		StepKeywordRepeat: {
			prompt:    "AskKeywordRepeat",
			sensitive: true,
			free: func(t *turn, text string) {
				if !t.confirmKeyword(text, StepKeyword) {
					return
				}
				t.st.Editing = false
				t.ask(StepSummary)
			},
		},
		StepSummary: {
			prompt: "Summary",
			// It shows that a secret word is set: removed with the setup prompts.
			sensitive: true,
			data:      (*turn).summaryData,
			options: func(t *turn) []option {
				opts := []option{{label: t.text("ButtonConfirm", nil), data: "confirm", aliases: t.words().Yes}}
				for _, f := range summaryFields {
					opts = append(opts, option{label: t.text("ButtonChange", map[string]any{"Field": t.text(f.label, nil)}), data: string(f.step)})
				}
				return opts
			},
			choose: func(t *turn, o option) {
				if o.data == "confirm" {
					t.completeRegistration()
					return
				}
				t.st.Editing = true
				t.ask(Step(o.data))
			},
		},
	}
}

// passportAnswer reads a passport number for the optional passport field;
// anything else gets a hint and the question again.
func passportAnswer(t *turn, text string) (string, bool) {
	v, ok := parsePassport(text)
	if !ok {
		t.reply("HintPassport", nil)
		t.reprompt()
	}
	return v, ok
}

// setTime stores the local check-in time, then asks next.
func (t *turn) setTime(text string, next Step) bool {
	hhmm, ok := parseClock(text)
	if !ok {
		t.reply("HintTime", nil)
		t.reprompt()
		return false
	}
	t.st.CheckinTime = hhmm
	if t.st.Registered() || next == StepNone {
		return true // the caller confirms, then warns (settings.go)
	}
	t.warnCrowded(hhmm) // crowding.go
	t.next(next)
	return true
}

// takeKeyword checks a new keyword against the refusal rules and keeps its
// hash until the repeat arrives.
func (t *turn) takeKeyword(text string, repeat Step) {
	t.res.DeleteInbound = true
	if problem := t.e.keywordProblem(text, t.st.Profile.Name); problem != "" {
		t.replySensitive(problem)
		t.ask(t.st.Step)
		return
	}
	t.st.PendingKeyword = NewKeyword(t.e.Pepper, t.st.Key, text)
	t.ask(repeat)
}

// confirmKeyword compares the repeat with the pending keyword; on a
// mismatch it starts over at again.
func (t *turn) confirmKeyword(text string, again Step) bool {
	t.res.DeleteInbound = true
	typed := NewKeyword(t.e.Pepper, t.st.Key, text)
	if !hmac.Equal(typed.Hash, t.st.PendingKeyword.Hash) {
		t.st.PendingKeyword = Keyword{}
		t.replySensitive("KeywordMismatch")
		t.ask(again)
		return false
	}
	t.st.Keyword, t.st.PendingKeyword = t.st.PendingKeyword, Keyword{}
	return true
}

func (t *turn) summaryData() map[string]any {
	p := t.st.Profile
	none := t.text("ValueNone", nil)
	or := func(s string) string {
		if s == "" {
			return none
		}
		return s
	}
	lang := t.st.Lang
	for _, l := range t.e.Catalog.Languages() {
		if l.Tag == t.st.Lang {
			lang = l.Name
		}
	}
	keyword := none
	if t.st.Keyword.Set() {
		keyword = t.text("ValueKeywordSet", nil)
	}
	return map[string]any{
		"Language": lang, "Nationality": t.countryName(p.Nationality), "Country": t.countryName(p.Country),
		"City": or(p.City), "Name": or(p.Name), "Passport": or(p.Passport), "Employer": or(p.Employer),
		"Contact": or(p.TrustedContact), "Interval": t.intervalLabel(t.interval()), "Time": or(t.st.CheckinTime),
		"Keyword": keyword,
	}
}

// completeRegistration confirms the summary: monitoring starts now, and the
// registration itself counts as the first proof of life.
func (t *turn) completeRegistration() {
	if !t.st.Keyword.Set() || t.st.Profile.Name == "" || t.st.Profile.Country == "" || t.st.CheckinTime == "" {
		// Only reachable through a corrupted or hand-edited state: ask for
		// what is missing rather than registering half a person.
		t.st.Editing = true
		switch {
		case t.st.Profile.Country == "":
			t.ask(StepCountry)
		case t.st.Profile.Name == "":
			t.ask(StepName)
		case t.st.CheckinTime == "":
			t.ask(StepTime)
		default:
			t.ask(StepKeyword)
		}
		return
	}
	t.st.Status, t.st.Step, t.st.Editing = StatusActive, StepNone, false
	t.st.RegisteredAt, t.st.LastCheckin = t.now, t.now
	t.schedule()
	t.escalate(EventRegistrationCreated, SeverityInfo, CaseNone, map[string]any{
		"notice_version": t.st.NoticeVersion, "consent_at": t.st.ConsentAt,
		"interval": shortDuration(t.interval()), "checkin_time": t.st.CheckinTime,
	})
	t.audit("registration.created")
	t.res.PurgeSensitive = true
	t.reply("Registered", map[string]any{"When": t.when(t.st.NextDue)})
	if t.st.Channel == "whatsapp" {
		// WhatsApp lets only the citizen make the chat forget itself: offer
		// it, never impose it (it would post a visible notice).
		t.reply("TipDisappearing", nil)
	}
	t.offerIdentity() // optional, skippable: identity.go
}
