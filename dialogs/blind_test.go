package dialogs_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/checkinbot/checkinbot/dialogs"
)

// Keyword-blind visible behaviour (DESIGN §3): in every state, replacing the
// duress keyword in a message by other words of the same script, or
// removing it, changes nothing the phone shows — replies, buttons, the
// schedule it is shown, clean-up — now or later. These tests compare what
// the phone sees in two worlds that differ only in the words typed; the
// expectation never comes from the code under test.

// blindKeywords is a keyword per language, in its script, that the refusal
// rules accept (TestBlindKeywordsAreAccepted).
var blindKeywords = map[string]string{
	"en": "Blue Mango", "ms": "Mangga Biru", "id": "Kucing Hijau", "fil": "Asul Mangga",
	"vi": "Xoài Xanh Lá", "th": "ช้างเผือกบิน", "lo": "ຊ້າງເຜືອກບິນ", "km": "ដំរីសហោះ",
	"my": "ဆင်ဖြူပျံ", "zh": "蓝色芒果",
}

// scriptLetters are the letters random stand-in words are made of, per
// language: the same script as the keyword.
var scriptLetters = map[string]string{
	"en": "bcdfghjklmpqrstvwxz", "ms": "bcdfghjklmpqrstvwxz", "id": "bcdfghjklmpqrstvwxz",
	"fil": "bcdfghjklmpqrstvwxz", "vi": "bcdfghjklmpqrstvxàáảãạ",
	"th": "กขคฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮ",
	"lo": "ກຂຄງຈສຊຍດຕຖທນບປຜຝພຟມຢຣລວຫອຮ",
	"km": "កខគឃងចឆជឈញដឋឌឍណតថទធនបផពភមយរលវសហឡអ",
	"my": "ကခဂဃငစဆဇဈညဋဌဍဎဏတထဒဓနပဖဗဘမယရလဝသဟဠအ",
	"zh": "山水木火土石田禾竹米糸耳車門雨風雲魚鳥馬牛羊犬貝金",
}

// templates place the keyword (%[1]s) in ordinary messages: alone, after
// a check-in word (%[2]s is one of the language's), glued to punctuation,
// emoji and other scripts, after commands and answers.
var templates = []string{
	"%[1]s", "%[2]s %[1]s", "%[2]s, %[1]s!", "%[1]s %[2]s", "I am fine, really. %[1]s!",
	"%[2]s ☀️ %[1]s", "%[2]s 👍🏽%[1]s", "平安%[1]s", "ปลอดภัย%[1]s", "%[1]s好的",
	"/stop %[1]s", "/delete %[1]s", "/pause %[1]s", "/start %[1]s", "yes %[1]s", "1 %[1]s", "2 %[1]s",
	"%[1]s 1", "pause %[1]s", "stop %[1]s", "%[1]s。", "\u200b%[1]s\u200d", "🇰🇭%[1]s🇰🇭", "1️⃣ %[1]s",
	"%[2]s\n\n%[1]s", "so tired today %[1]s", "%[1]s help", "help %[1]s",
	"snooze %[1]s", "later, %[1]s", "3 %[1]s", "%[1]s later", "Remind me in 30 minutes %[1]s",
}

// gluedTemplate puts the keyword right after a check-in word, with no
// space: used for languages written without spaces, where that is how
// people type.
const gluedTemplate = "%[2]s%[1]s"

// keywordFirst reports whether a template begins with the keyword (after
// invisible characters): removing it then changes how the message begins,
// which changes its meaning for any words there, keyword or not — so only
// replacement is compared for those.
func keywordFirst(tpl string) bool {
	return strings.HasPrefix(strings.TrimLeft(tpl, "\u200b\u200d🇰🇭"), "%[1]s")
}

// substitute maps the stand-in words back to the keyword in everything the
// phone saw, in the forms answers are stored in (as typed, and as a
// passport number: upper case without spaces).
func substitute(seen, other, kw string) string {
	pass := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, " ", "")) }
	return strings.ReplaceAll(strings.ReplaceAll(seen, other, kw), pass(other), pass(kw))
}

// standIn makes random words in place of the keyword: rune for rune of the
// same kind (ASCII letter, accented Latin letter, letter of the language's
// script, same case), so length and character checks treat both alike; and
// containing no word or phrase the bot reacts to.
func standIn(rng *rand.Rand, e *dialogs.Engine, lang, keyword string) string {
	ascii := []rune("bcdfghjklmpqrstvwxz")
	accented := []rune("àáảãạèéẻẽẹòóỏõọ")
	letters := []rune(scriptLetters[lang])
	pick := func(rs []rune) rune { return rs[rng.IntN(len(rs))] }
	for {
		var b strings.Builder
		for _, r := range keyword {
			var c rune
			switch {
			case r == ' ':
				c = ' '
			case r < 0x80:
				c = pick(ascii)
			case unicode.Is(unicode.Latin, r):
				c = pick(accented)
			default:
				c = pick(letters)
			}
			if unicode.IsUpper(r) {
				c = unicode.ToUpper(c)
			}
			b.WriteRune(c)
		}
		if s := b.String(); !containsVocabulary(e, s) {
			return s
		}
	}
}

// containsVocabulary reports whether s holds any word or phrase of any
// language (for unspaced scripts: as a substring).
func containsVocabulary(e *dialogs.Engine, s string) bool {
	n := dialogs.Normalize(s)
	joined := strings.ReplaceAll(n, " ", "")
	for _, l := range e.Catalog.Languages() {
		w := e.Catalog.Words(l.Tag)
		for _, list := range [][]string{w.Checkin, w.Help, w.Stop, w.Pause, w.Delete, w.Status, w.Settings,
			w.MyData, w.Language, w.Menu, w.Start, w.Yes, w.No, w.Skip, w.Snooze} {
			for _, p := range list {
				if strings.Contains(" "+n+" ", " "+p+" ") || strings.Contains(joined, strings.ReplaceAll(p, " ", "")) && utf8.RuneCountInString(p) > 1 {
					return true
				}
			}
		}
	}
	return false
}

// phoneView renders everything the phone is shown for one result.
func phoneView(res dialogs.Result) string {
	var b strings.Builder
	for _, r := range res.Replies {
		fmt.Fprintf(&b, "reply %q sensitive=%v\n", r.Text, r.Sensitive)
		for _, btn := range r.Buttons {
			fmt.Fprintf(&b, "  [%s|%s]\n", btn.Label, btn.Data)
		}
	}
	fmt.Fprintf(&b, "delete-inbound=%v purge=%v urgent=%v prompt=%v\n", res.DeleteInbound, res.PurgeSensitive, res.Urgent, res.Prompt)
	return b.String()
}

// probe is what a phone can do later to see the consequences of a
// message: look at its data, wait through reminders and pause ends, press
// "Remind me in 30 minutes", check in, ask for the menu.
var probe = []struct {
	after time.Duration
	in    dialogs.Input
}{
	{time.Minute, textInput("/mydata")},
	{90 * time.Minute, dialogs.Input{Kind: dialogs.KindTimer, Key: "user-1"}},
	{26 * time.Hour, dialogs.Input{Kind: dialogs.KindTimer, Key: "user-1"}},
	{27 * time.Hour, dialogs.Input{Kind: dialogs.KindPromptDelivered, Key: "user-1"}},
	{27*time.Hour + 10*time.Minute, dialogs.Input{Kind: dialogs.KindButton, Key: "user-1", Text: "snooze"}},
	{30 * time.Hour, dialogs.Input{Kind: dialogs.KindTimer, Key: "user-1"}},
	{4 * 24 * time.Hour, dialogs.Input{Kind: dialogs.KindTimer, Key: "user-1"}},
	{4*24*time.Hour + time.Minute, textInput("/mydata")},
	{4*24*time.Hour + 2*time.Minute, textInput("ok")},
}

// world runs one message and the probe, the way the store would keep the
// state between them (a real erase leaves nothing), and returns all the
// phone saw and whether duress.triggered was recorded.
func world(e *dialogs.Engine, st dialogs.State, text string, now time.Time) (string, bool) {
	return worldOf(e, st, []string{text}, now)
}

// worldOf is world for a sequence of messages.
func worldOf(e *dialogs.Engine, st dialogs.State, texts []string, now time.Time) (string, bool) {
	var b strings.Builder
	duress := false
	step := func(in dialogs.Input, at time.Time) {
		res := e.Handle(st, in, at)
		b.WriteString(phoneView(res))
		for _, esc := range res.Escalations {
			duress = duress || esc.Type == dialogs.EventDuressTriggered
		}
		st = res.State
		if res.Erase {
			st = dialogs.State{}
		}
	}
	for i, text := range texts {
		step(textInput(text), now.Add(time.Duration(i)*time.Second))
	}
	for _, p := range probe {
		step(p.in, now.Add(p.after))
	}
	return b.String(), duress
}

// blindStatuses are the registration situations a message can meet.
func blindStatuses(t testing.TB, e *dialogs.Engine, base dialogs.State, later time.Time) map[string]dialogs.State {
	covertlyDeleted, _ := say(e, base, testNow, "/delete blue mango", "1")
	if covertlyDeleted.Hidden == nil || covertlyDeleted.Registered() {
		t.Fatal("covert delete did not hide the registration")
	}
	set := func(f func(*dialogs.State)) dialogs.State { s := base; f(&s); return s }
	return map[string]dialogs.State{
		"covert-deleted": covertlyDeleted,
		"active":         base,
		"paused": set(func(s *dialogs.State) {
			s.Status, s.PausedUntil, s.Timer = dialogs.StatusPaused, later.Add(72*time.Hour), later.Add(72*time.Hour)
		}),
		"stopped": set(func(s *dialogs.State) {
			// Stopped ten days ago: the next check-in /mydata shows is old.
			s.Status, s.Timer, s.NextDue, s.LastCheckin = dialogs.StatusStopped, time.Time{}, testNow.Add(-240*time.Hour), testNow.Add(-250*time.Hour)
		}),
		"covert-stopped": set(func(s *dialogs.State) { s.Shown, s.ShownNextDue = dialogs.StatusStopped, s.NextDue }),
		"covert-paused":  set(func(s *dialogs.State) { s.Shown, s.PausedUntil = dialogs.StatusPaused, later.Add(time.Hour) }),
		"overdue":        set(func(s *dialogs.State) { s.Ladder, s.Overdue = 5, true }),
		// Asked "are you safe?" ten minutes ago: a snooze is possible.
		"due": set(func(s *dialogs.State) {
			s.Ladder, s.PromptedAt, s.Timer = 1, later.Add(-10*time.Minute), later.Add(50*time.Minute)
		}),
		// Snoozed, the question coming back in twenty minutes.
		"snoozed": set(func(s *dialogs.State) {
			s.PromptedAt, s.SnoozedUntil, s.Timer = later.Add(-40*time.Minute), later.Add(20*time.Minute), later.Add(20*time.Minute)
		}),
		// Reminded, past the snooze cap.
		"due-capped": set(func(s *dialogs.State) {
			s.Ladder, s.PromptedAt, s.Timer = 2, later.Add(-70*time.Minute), later.Add(50*time.Minute)
		}),
		"covert-flow": set(func(s *dialogs.State) { s.CovertFlow = true }),
	}
}

// TestKeywordBlindEveryStateEveryLanguage: for every language, every
// registration situation, every dialog step and messages from the
// templates (two per combination, seeded), the phone sees exactly the same
// — now and after the probe — whether the message holds the keyword or
// random words of the same script in its place, or (where no free text is
// asked for) nothing in its place; and the keyword is always detected.
func TestKeywordBlindEveryStateEveryLanguage(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	later := testNow.Add(5 * time.Hour)
	rng := rand.New(rand.NewPCG(9, 3))
	perCombination := 2
	if testing.Short() {
		perCombination = 1
	}
	checked := 0
	for _, lang := range e.Catalog.Languages() {
		kw := blindKeywords[lang.Tag]
		checkinWords := e.Catalog.Words(lang.Tag).Checkin
		for name, st0 := range blindStatuses(t, e, base, later) {
			for _, step := range dialogs.AllSteps {
				st := st0
				st.Lang, st.Step = lang.Tag, step
				if st.Registered() {
					st.Keyword = dialogs.NewKeyword(transcriptPepper, st.Key, kw)
				} else {
					st.Hidden.Keywords = []dialogs.Keyword{dialogs.NewKeyword(transcriptPepper, st.Key, kw)}
				}
				if step == dialogs.StepKeywordRepeat || step == dialogs.StepSettingsKeywordRepeat {
					st.PendingKeyword = dialogs.NewKeyword(transcriptPepper, st.Key, "green apple tree")
				}
				for range perCombination {
					tpl := templates[rng.IntN(len(templates))]
					if rng.IntN(4) == 0 && unspacedLanguage(lang.Tag) {
						tpl = gluedTemplate
					}
					ci := checkinWords[rng.IntN(len(checkinWords))]
					other := standIn(rng, e, lang.Tag, kw)
					withKeyword := fmt.Sprintf(tpl, kw, ci)
					withOther := fmt.Sprintf(tpl, other, ci)
					where := fmt.Sprintf("%s/%s/%s %q", lang.Tag, name, step, withKeyword)

					seenK, duressK := world(e, st, withKeyword, later)
					seenW, duressW := world(e, st, withOther, later)
					if got := substitute(seenW, other, kw); got != seenK {
						t.Errorf("%s: the phone sees a difference when the keyword is replaced by %q\n%s", where, other, diff(seenK, got))
					}
					if duressW {
						t.Errorf("%s: duress raised by stand-in words %q", where, other)
					}
					answering := step == dialogs.StepSettingsKeywordOld || step == dialogs.StepSettingsKeywordNew ||
						step == dialogs.StepSettingsKeywordRepeat || (!st.Registered() && (step == dialogs.StepKeyword || step == dialogs.StepKeywordRepeat))
					if !duressK && !answering {
						t.Errorf("%s: keyword not detected", where)
					}
					removed := strings.TrimSpace(fmt.Sprintf(tpl, "", ci))
					if removed != "" && !keywordFirst(tpl) && !freeTextStep(step) && dialogs.Normalize(removed) != "" {
						if seenR, _ := world(e, st, removed, later); seenR != seenK {
							t.Errorf("%s: the phone sees a difference when the keyword is removed (%q)\n%s", where, removed, diff(seenK, seenR))
						}
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d messages compared in three worlds", checked)
}

func unspacedLanguage(tag string) bool {
	return tag == "th" || tag == "lo" || tag == "km" || tag == "my" || tag == "zh"
}

// freeTextStep: questions that take typed text, where removing words
// changes the answer itself (and so what /mydata later shows).
func freeTextStep(s dialogs.Step) bool {
	switch s {
	case dialogs.StepLanguage, dialogs.StepConsent, dialogs.StepNationality, dialogs.StepCountry, dialogs.StepInterval,
		dialogs.StepSummary, dialogs.StepNone, dialogs.StepDue, dialogs.StepSOSCall, dialogs.StepUpdateMenu,
		dialogs.StepUpdateCountry, dialogs.StepSettingsMenu, dialogs.StepSettingsLanguage, dialogs.StepSettingsInterval,
		dialogs.StepPauseLength, dialogs.StepStopConfirm, dialogs.StepDeleteConfirm:
		return false
	}
	return true
}

// diff shows the first differing line of two phone views.
func diff(want, got string) string {
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("line %d\n  keyword: %s\n  other:   %s", i+1, x, y)
		}
	}
	return ""
}

// TestBlindKeywordsAreAccepted: the keywords the property uses pass the
// refusal rules, so the property is about keywords a citizen can have.
func TestBlindKeywordsAreAccepted(t *testing.T) {
	e := newEngine(t)
	for lang, kw := range blindKeywords {
		if p := dialogs.KeywordProblem(e, kw, "Siti Aminah"); p != "" {
			t.Errorf("%s keyword %q refused: %s", lang, kw, p)
		}
	}
}

// FuzzKeywordBlind checks the property on generated text: the keyword
// placed at a generated position of generated text, in a generated state
// and step, is seen by the phone exactly as random words in its place.
func FuzzKeywordBlind(f *testing.F) {
	e := newEngine(f)
	base := registered(f, e)
	later := testNow.Add(5 * time.Hour)
	f.Add("ok  ", uint8(0), uint8(2), uint8(0), uint64(1))
	f.Add("I am fine ☀️ ", uint8(0), uint8(12), uint8(1), uint64(2))
	f.Add("ปลอดภัย", uint8(3), uint8(7), uint8(5), uint64(3))
	f.Add("/stop please", uint8(0), uint8(6), uint8(0), uint64(4))
	f.Add("yes  ", uint8(33), uint8(10), uint8(2), uint64(5))
	f.Fuzz(func(t *testing.T, text string, stepIdx, at, statusIdx uint8, seed uint64) {
		if !utf8.ValidString(text) || len(text) > 2000 {
			return
		}
		rng := rand.New(rand.NewPCG(seed, 7))
		langs := e.Catalog.Languages()
		lang := langs[int(seed%uint64(len(langs)))].Tag
		kw := blindKeywords[lang]
		statuses := blindStatuses(t, e, base, later)
		names := []string{"active", "paused", "stopped", "covert-stopped", "covert-paused", "overdue", "covert-flow", "covert-deleted",
			"due", "snoozed", "due-capped"}
		st := statuses[names[int(statusIdx)%len(names)]]
		st.Lang, st.Step = lang, dialogs.AllSteps[int(stepIdx)%len(dialogs.AllSteps)]
		if st.Registered() {
			st.Keyword = dialogs.NewKeyword(transcriptPepper, st.Key, kw)
		} else {
			st.Hidden.Keywords = []dialogs.Keyword{dialogs.NewKeyword(transcriptPepper, st.Key, kw)}
		}
		other := standIn(rng, e, lang, kw)
		if strings.Contains(text, other) || strings.Contains(text, kw) {
			return
		}
		rs := []rune(text)
		pos := int(at) % (len(rs) + 1)
		head, tail := string(rs[:pos]), string(rs[pos:])
		seenK, _ := world(e, st, head+kw+tail, later)
		seenW, _ := world(e, st, head+other+tail, later)
		if got := substitute(seenW, other, kw); got != seenK {
			t.Errorf("%s/%s %q: the phone sees a difference\n%s", lang, st.Step, head+kw+tail, diff(seenK, got))
		}
	})
}

// TestKeywordBlindReductions: a stop, pause or delete asked for with the
// keyword — in the request or in its confirmation — shows the phone
// exactly what the same request with other words shows, in every
// situation, now and later (the shown schedule never moves), while the
// keyword is detected.
func TestKeywordBlindReductions(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	later := testNow.Add(5 * time.Hour)
	rng := rand.New(rand.NewPCG(4, 4))
	sequences := [][]string{
		{"/stop %s", "yes"}, {"/stop", "yes %s"}, {"stop %s", "1"}, {"/pause %s", "3"}, {"/pause", "2 %s"},
		{"pause %s", "1"}, {"/delete %s", "1"}, {"/delete", "yes %s"}, {"/stop %s", "no"}, {"/delete %s", "no"},
		{"/delete %s", "1", "/delete %s", "1"}, {"/stop %s", "yes", "/pause %s", "1"}, {"/pause %s", "1", "/stop %s", "yes"},
	}
	for _, lang := range []string{"en", "vi", "th", "zh"} {
		kw := blindKeywords[lang]
		for name, st0 := range blindStatuses(t, e, base, later) {
			st := st0
			st.Lang = lang
			if st.Registered() {
				st.Keyword = dialogs.NewKeyword(transcriptPepper, st.Key, kw)
			} else {
				st.Hidden.Keywords = []dialogs.Keyword{dialogs.NewKeyword(transcriptPepper, st.Key, kw)}
			}
			for _, seq := range sequences {
				other := standIn(rng, e, lang, kw)
				fill := func(w string) []string {
					var out []string
					for _, s := range seq {
						out = append(out, strings.ReplaceAll(s, "%s", w))
					}
					return out
				}
				seenK, duressK := worldOf(e, st, fill(kw), later)
				seenW, _ := worldOf(e, st, fill(other), later)
				if got := substitute(seenW, other, kw); got != seenK {
					t.Errorf("%s/%s %q: the phone sees a difference\n%s", lang, name, fill(kw), diff(seenK, got))
				}
				if !duressK {
					t.Errorf("%s/%s %q: keyword not detected", lang, name, fill(kw))
				}
			}
		}
	}
}

// TestKeywordBlindSnooze: a snooze asked for with the keyword — after the
// language's snooze words, the button's number or label, alone or before
// a second snooze or a check-in — shows the phone exactly what the same
// messages with other words show, in every language and situation, now
// and later (the time it is asked again included), while the keyword is
// detected; and where a snooze is possible it does happen.
func TestKeywordBlindSnooze(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	later := testNow.Add(5 * time.Hour)
	rng := rand.New(rand.NewPCG(8, 1))
	sequences := [][]string{
		{"%[1]s %[2]s"}, {"%[1]s, %[2]s!"}, {"3 %[2]s"}, {"%[2]s", "%[1]s"}, {"%[1]s %[2]s", "%[1]s %[2]s"},
		{"%[1]s %[2]s", "ok %[2]s"}, {"%[3]s %[2]s"},
	}
	snoozed := 0
	for _, l := range e.Catalog.Languages() {
		lang, kw := l.Tag, blindKeywords[l.Tag]
		words := e.Catalog.Words(lang).Snooze
		label := e.Catalog.Count(lang, "ButtonSnooze", 30, nil)
		done, _, _ := strings.Cut(e.Catalog.Text(lang, "Snoozed", map[string]any{"When": "\x00"}), "\x00")
		for name, st0 := range blindStatuses(t, e, base, later) {
			for _, step := range []dialogs.Step{dialogs.StepDue, dialogs.StepNone, dialogs.StepSettingsMenu} {
				st := st0
				st.Lang, st.Step = lang, step
				if st.Registered() {
					st.Keyword = dialogs.NewKeyword(transcriptPepper, st.Key, kw)
				} else {
					st.Hidden.Keywords = []dialogs.Keyword{dialogs.NewKeyword(transcriptPepper, st.Key, kw)}
				}
				for _, seq := range sequences {
					word := words[rng.IntN(len(words))]
					other := standIn(rng, e, lang, kw)
					fill := func(w string) []string {
						var out []string
						for _, s := range seq {
							out = append(out, fmt.Sprintf(s, word, w, label))
						}
						return out
					}
					seenK, duressK := worldOf(e, st, fill(kw), later)
					seenW, _ := worldOf(e, st, fill(other), later)
					if got := substitute(seenW, other, kw); got != seenK {
						t.Errorf("%s/%s/%s %q: the phone sees a difference\n%s", lang, name, step, fill(kw), diff(seenK, got))
					}
					if !duressK {
						t.Errorf("%s/%s/%s %q: keyword not detected", lang, name, step, fill(kw))
					}
					if strings.Contains(seenK, done) {
						snoozed++
					} else if (name == "due" || name == "snoozed") && step == dialogs.StepDue && seq[0] != "%[2]s" {
						t.Errorf("%s/%s/%s %q: no snooze where one is possible\n%s", lang, name, step, fill(kw), seenK)
					}
				}
			}
		}
	}
	t.Logf("%d worlds showed a snooze", snoozed)
}
