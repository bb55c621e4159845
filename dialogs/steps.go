// The question machinery shared by every flow: stepSpec, how a question is
// asked and answered (ask, answer, chosen), the one place where the flows'
// step tables are collected (steps), the optional profile field helper
// (optionalField) and the parsers of typed answers. The tables themselves
// live in the flows' files: registration.go, checkin.go, sos.go,
// status_update.go, settings.go, language.go, keyword_change.go and
// reductions.go.

package dialogs

import (
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// option is one answer to a choice prompt. It is accepted by its number,
// its label, its data or an alias, case-insensitively (DESIGN §2).
type option struct {
	label   string
	data    string
	aliases []string // already normalised
}

// stepSpec describes one question: its prompt, its choices, and what an
// answer does. A step with free set also takes typed text.
type stepSpec struct {
	prompt string
	data   func(t *turn) map[string]any
	// options lists the choices; nil for a free-text question.
	options func(t *turn) []option
	choose  func(t *turn, o option)
	// free takes typed text; "" means the citizen chose Skip.
	free func(t *turn, text string)
	// skippable adds a Skip choice.
	skippable bool
	// sensitive prompts and answers reveal the duress feature.
	sensitive bool
}

// stepTables lists the question table of every flow. Each flow's file
// declares its own (registrationSteps in registration.go, sosSteps in
// sos.go, …); a Step belongs to exactly one table, which
// TestStepTablesPartitionSteps checks.
func stepTables() []map[Step]stepSpec {
	return []map[Step]stepSpec{
		registrationSteps(), checkinSteps(), sosSteps(), statusUpdateSteps(),
		settingsSteps(), languageSteps(), keywordChangeSteps(), reductionSteps(),
		identitySteps(),
	}
}

var (
	stepsOnce sync.Once
	allSteps  map[Step]stepSpec
)

// steps is every question of every flow, by Step. The tables are merged on
// first use: their answers call ask, which reads steps, so a package-level
// initializer would be an initialization cycle, and merging here rather
// than in an init function leaves nothing to depend on init order.
func steps() map[Step]stepSpec {
	stepsOnce.Do(func() {
		allSteps = map[Step]stepSpec{}
		for _, table := range stepTables() {
			maps.Copy(allSteps, table)
		}
	})
	return allSteps
}

// ask opens a question: it sets the step and sends the prompt with choices.
func (t *turn) ask(step Step) {
	t.st.Step = step
	spec := steps()[step]
	if spec.sensitive && t.st.Registered() {
		t.st.KeywordChange.AskedAt = t.now
	}
	var data map[string]any
	if spec.data != nil {
		data = spec.data(t)
	}
	r := Reply{Text: t.text(spec.prompt, data), Sensitive: spec.sensitive}
	for _, o := range t.options(spec) {
		r.Buttons = append(r.Buttons, Button{Label: o.label, Data: o.data})
	}
	t.res.Replies = append(t.res.Replies, r)
}

// options of a step, with Skip appended where it applies.
func (t *turn) options(spec stepSpec) []option {
	var opts []option
	if spec.options != nil {
		opts = spec.options(t)
	}
	if spec.skippable {
		opts = append(opts, option{label: t.text("ButtonSkip", nil), data: "skip", aliases: t.words().Skip})
	}
	return opts
}

func (t *turn) words() Words { return t.e.Catalog.Words(t.st.Lang) }

// answer tries the message as an answer to the open question. It returns
// false when the message is no answer, so that global words can apply.
// A choice is taken by its number, label, data or alias, alone or followed
// by other words ("yes, blue mango"). For registered citizens a message
// that is exactly a plain command word, or begins with a check-in word,
// wins over free text (outside the SOS and keyword questions); during
// registration free text is taken as typed (a city may be called anything).
func (t *turn) answer(spec stepSpec, norm string) bool {
	opts := t.options(spec)
	if o, ok := t.chosen(opts, norm); ok {
		if o.data == "skip" && spec.skippable {
			spec.free(t, "")
		} else {
			spec.choose(t, o)
		}
		return true
	}
	if spec.free == nil || t.in.Kind != KindText {
		return false
	}
	if t.st.Registered() {
		if t.wordIntent(norm) != intentNone {
			return false
		}
		if !sosStep(t.st.Step) && t.leadingIntent(norm) == intentCheckin {
			return false // the taught form "OK <keyword>" checks in, even here
		}
	}
	if spec.sensitive {
		t.res.DeleteInbound = true
	}
	spec.free(t, t.in.Text)
	return true
}

// chosen finds the option a message picks: a pressed button by its data; a
// typed message that is an option's number, label, data or alias, or
// begins with one followed by other words (the longest such wins).
func (t *turn) chosen(opts []option, norm string) (option, bool) {
	if t.in.Kind == KindButton {
		for _, o := range opts {
			if t.in.Text == o.data {
				return o, true
			}
		}
		return option{}, false
	}
	if t.in.Kind != KindText || norm == "" {
		return option{}, false
	}
	best, bestLen := -1, 0
	for i, o := range opts {
		for _, name := range append([]string{strconv.Itoa(i + 1), Normalize(o.label), Normalize(o.data)}, o.aliases...) {
			if name == norm {
				return o, true
			}
			if len(name) > bestLen && beginsWith(norm, name) {
				best, bestLen = i, len(name)
			}
		}
	}
	if best < 0 {
		return option{}, false
	}
	return opts[best], true
}

// next moves registration on to step, or back to the summary when the
// answer was a correction.
func (t *turn) next(step Step) {
	if t.st.Editing {
		t.st.Editing = false
		t.ask(StepSummary)
		return
	}
	t.ask(step)
}

// freeText validates typed text for a profile field: not empty, at most max
// runes, and containing at least one letter or digit.
func (t *turn) freeText(text string, max int) (string, bool) {
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) > max {
		t.reply("HintTooLong", map[string]any{"Max": max})
		t.reprompt()
		return "", false
	}
	if !strings.ContainsFunc(text, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
		t.reply("HintNeedText", nil)
		t.reprompt()
		return "", false
	}
	return text, true
}

// freeTextUpTo accepts free text of at most limit runes (see freeText), as
// the parse of an optionalField.
func freeTextUpTo(limit int) func(t *turn, text string) (string, bool) {
	return func(t *turn, text string) (string, bool) { return t.freeText(text, limit) }
}

// optionalField is the question of a skippable profile field (passport,
// employer, trusted contact), asked by prompt, whether while registering,
// in a status update or in settings. Skip clears the field; an answer that
// parse accepts is stored in it; then done moves on (to the next question,
// or reports the update). An answer parse refuses changes nothing: parse
// has already given the hint and asked again.
func optionalField(prompt string, field func(*Profile) *string,
	parse func(t *turn, text string) (string, bool), done func(t *turn)) stepSpec {
	return stepSpec{
		prompt:    prompt,
		skippable: true,
		free: func(t *turn, text string) {
			v := "" // Skip
			if text != "" {
				var ok bool
				if v, ok = parse(t, text); !ok {
					return
				}
			}
			*field(&t.st.Profile) = v
			done(t)
		},
	}
}

// yesNo is the choice of a yes-or-no question, answered also by the
// language's words for yes and no.
func (t *turn) yesNo() []option {
	w := t.words()
	return []option{
		{label: t.text("ButtonYes", nil), data: "yes", aliases: w.Yes},
		{label: t.text("ButtonNo", nil), data: "no", aliases: w.No},
	}
}

func (t *turn) countryOptions(codes []string) []option {
	var opts []option
	for _, c := range codes {
		opts = append(opts, option{label: t.countryName(c), data: c})
	}
	return opts
}

func (t *turn) intervalOptions() []option {
	var opts []option
	for _, iv := range t.e.Policy.Intervals {
		opts = append(opts, option{label: t.intervalLabel(iv), data: shortDuration(iv)})
	}
	return opts
}

// countryName is the localised name of a country code, or the configured
// English name when the locale has none.
func (t *turn) countryName(code string) string {
	if s, ok := t.e.Catalog.Lookup(t.st.Lang, "Country"+code); ok {
		return s
	}
	if c, ok := t.e.Directory.country(code); ok && c.Name != "" {
		return c.Name
	}
	return code
}

func (t *turn) intervalLabel(iv time.Duration) string {
	if iv == 24*time.Hour {
		return t.text("IntervalDaily", nil) // "every 1 day" reads badly where plurals have one form
	}
	if iv >= 24*time.Hour && iv%(24*time.Hour) == 0 {
		return t.e.Catalog.Count(t.st.Lang, "IntervalDays", int(iv/(24*time.Hour)), nil)
	}
	if iv >= time.Hour && iv%time.Hour == 0 {
		return t.e.Catalog.Count(t.st.Lang, "IntervalHours", int(iv/time.Hour), nil)
	}
	return t.e.Catalog.Count(t.st.Lang, "IntervalSeconds", int(iv/time.Second), nil)
}

// shortDuration prints 24h rather than Go's 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	s = strings.TrimSuffix(s, "0m")
	if s == "" {
		return "0s"
	}
	return s
}

// parseClock reads a local time of day: "9", "09:00", "9.30", "0930",
// "9am", "9 pm". It returns "HH:MM".
func parseClock(s string) (string, bool) {
	s = ASCIIDigits(norm.NFKC.String(s)) // full-width "０９：００", Burmese "၉:၀၀"
	s = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	pm := strings.HasSuffix(s, "pm")
	am := strings.HasSuffix(s, "am")
	s = strings.TrimSuffix(strings.TrimSuffix(s, "pm"), "am")
	var hs, ms string
	switch {
	case strings.ContainsAny(s, ":."):
		hs, ms, _ = strings.Cut(strings.ReplaceAll(s, ".", ":"), ":")
	case len(s) == 4:
		hs, ms = s[:2], s[2:]
	default:
		hs, ms = s, "0"
	}
	h, err1 := strconv.Atoi(hs)
	m, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 || len(ms) > 2 || len(hs) > 2 {
		return "", false
	}
	if (am || pm) && (h < 1 || h > 12) {
		return "", false
	}
	if pm && h != 12 {
		h += 12
	}
	if am && h == 12 {
		h = 0
	}
	return strconv.Itoa(100 + h)[1:] + ":" + strconv.Itoa(100 + m)[1:], true
}

// parsePhone accepts international numbers typed with spaces, dashes or
// brackets and returns "+digits".
func parsePhone(s string) (string, bool) {
	var digits strings.Builder
	for i, r := range strings.TrimSpace(ASCIIDigits(norm.NFKC.String(s))) {
		switch {
		case r >= '0' && r <= '9':
			digits.WriteRune(r)
		case r == '+' && i == 0, r == ' ', r == '-', r == '(', r == ')':
		default:
			return "", false
		}
	}
	d := digits.String()
	if len(d) < 6 || len(d) > 15 {
		return "", false
	}
	return "+" + strings.TrimPrefix(d, "00"), true
}

// parsePassport accepts 5 to 20 letters and digits, spaces ignored.
func parsePassport(s string) (string, bool) {
	s = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if len(s) < 5 || len(s) > 20 {
		return "", false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return "", false
		}
	}
	return s, true
}
