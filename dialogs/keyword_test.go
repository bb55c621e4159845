package dialogs_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/checkinbot/checkinbot/dialogs"
)

// TestKeywordChangeHasNoOracle: at /settings → secret word, a wrong current
// word leads to exactly what a right one leads to — every reply, button and
// clean-up of the whole exchange, and what the phone sees afterwards. The
// difference is silent, and decided so that nobody is left without a
// working keyword: right → the new word is current and the old one still
// works; wrong → the old one stays current and the new one works too.
func TestKeywordChangeHasNoOracle(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e) // keyword "blue mango"
	later := testNow.Add(5 * time.Hour)
	exchange := func(current string) (string, dialogs.State, []string) {
		st := base
		var b strings.Builder
		var events []string
		for i, text := range []string{"/settings", "5", current, "green river", "green river"} {
			res := e.Handle(st, textInput(text), later.Add(time.Duration(i)*time.Second))
			b.WriteString(phoneView(res))
			events = append(events, eventTypes2(res.Escalations)...)
			st = res.State
		}
		seen, _ := world(e, st, "/mydata", later.Add(time.Minute))
		return b.String() + seen, st, events
	}
	rightSeen, right, rightEvents := exchange("Blue Mango")
	for _, wrong := range []string{"blue mangos", "red mango", "x", "Blue  Mang0", "mango blue"} {
		wrongSeen, st, events := exchange(wrong)
		if wrongSeen != rightSeen {
			t.Errorf("answer %q: the phone sees a difference from the right answer\n%s", wrong, diff(rightSeen, wrongSeen))
		}
		if len(events) != 0 || len(rightEvents) != 0 {
			t.Errorf("answer %q: events %v / %v during one change", wrong, events, rightEvents)
		}
		for _, kw := range []string{"blue mango", "green river"} {
			_, res := say(e, st, later.Add(time.Hour), "ok "+kw)
			if !hasEvent(res, dialogs.EventDuressTriggered) {
				t.Errorf("after a wrong answer %q, keyword %q does not work", wrong, kw)
			}
		}
		if !reflect.DeepEqual(st.Keyword, base.Keyword) {
			t.Errorf("a wrong answer %q replaced the current keyword", wrong)
		}
	}
	if reflect.DeepEqual(right.Keyword, base.Keyword) {
		t.Error("the right answer did not make the new keyword current")
	}
	for _, kw := range []string{"blue mango", "green river"} {
		if _, res := say(e, right, later.Add(time.Hour), "ok "+kw); !hasEvent(res, dialogs.EventDuressTriggered) {
			t.Errorf("after the right answer, keyword %q does not work", kw)
		}
	}
}

// TestKeywordGuessesAreLimitedAndReported: repeated misses tell the embassy
// once (keyword.change_failed, info), and past the daily limit even the
// right word counts as a miss — all invisibly.
func TestKeywordGuessesAreLimitedAndReported(t *testing.T) {
	e := newEngine(t)
	st := registered(t, e)
	now := testNow.Add(time.Hour)
	var reported int
	var views []string
	for i := range 8 {
		answer := fmt.Sprintf("guess number %d", i)
		if i == 6 {
			answer = "blue mango" // right, but past the limit of 5 a day
		}
		for _, text := range []string{"/settings", "5", answer, "tall cedar", "tall cedar"} {
			res := e.Handle(st, textInput(text), now)
			st = res.State
			if text == answer {
				views = append(views, phoneView(res))
			}
			for _, esc := range res.Escalations {
				if esc.Type == dialogs.EventKeywordChangeFailed {
					reported++
					if esc.Severity != dialogs.SeverityInfo || esc.DoNotContact {
						t.Errorf("keyword.change_failed: severity %s do_not_contact %v", esc.Severity, esc.DoNotContact)
					}
				}
			}
		}
		now = now.Add(time.Minute)
	}
	if reported != 1 {
		t.Errorf("keyword.change_failed recorded %d times in a day, want once", reported)
	}
	for i, v := range views {
		if v != views[0] {
			t.Errorf("attempt %d looks different from the first\n%s", i, diff(views[0], v))
		}
	}
	if !reflect.DeepEqual(st.Keyword, registered(t, e).Keyword) {
		t.Error("a right word past the daily limit replaced the current keyword")
	}
}

func hasEvent(res dialogs.Result, typ string) bool {
	for _, esc := range res.Escalations {
		if esc.Type == typ {
			return true
		}
	}
	return false
}

// TestNoFalseAlarmsByConstruction, in all ten languages: every keyword a
// citizen could pick out of the bot's own vocabulary — any phrase, any run
// of words of a phrase, any run of four or more characters of a phrase in
// a script without spaces, any two phrases together — is either refused,
// or is found in no ordinary message made of that vocabulary.
func TestNoFalseAlarmsByConstruction(t *testing.T) {
	e := newEngine(t)
	var phrases, checkins []string
	for _, l := range e.Catalog.Languages() {
		w := e.Catalog.Words(l.Tag)
		checkins = append(checkins, w.Checkin...)
		for _, list := range [][]string{w.Checkin, w.Help, w.Stop, w.Pause, w.Delete, w.Status, w.Settings,
			w.MyData, w.Language, w.Menu, w.Start, w.Yes, w.No, w.Skip} {
			phrases = append(phrases, list...)
		}
	}
	candidates := map[string]bool{}
	for _, p := range phrases {
		words := strings.Fields(p)
		for i := range words {
			for j := i + 1; j <= len(words); j++ {
				candidates[strings.Join(words[i:j], " ")] = true
			}
		}
		if rs := []rune(strings.ReplaceAll(p, " ", "")); len(rs) >= 4 && hasUnspacedRune(p) {
			for i := range rs {
				for j := i + 4; j <= len(rs); j++ {
					candidates[string(rs[i:j])] = true
				}
			}
		}
	}
	for i, a := range checkins {
		b := checkins[(i*7+3)%len(checkins)]
		candidates[a+" "+b] = true
		candidates[a+b] = true
	}
	ordinary := append([]string(nil), phrases...)
	for i, c := range checkins {
		ordinary = append(ordinary, c+", "+checkins[(i*5+1)%len(checkins)], c+" 👍🏽", c+"!")
	}
	accepted := 0
	for c := range candidates {
		if dialogs.KeywordProblem(e, c, "Siti Aminah") != "" {
			continue
		}
		accepted++
		for _, msg := range ordinary {
			if dialogs.Detects(e, "user-1", c, msg) {
				t.Errorf("keyword %q was accepted but an ordinary message %q raises duress", c, msg)
			}
		}
	}
	t.Logf("%d candidates from the vocabulary, %d accepted, none found in %d ordinary messages", len(candidates), accepted, len(ordinary))
}

func hasUnspacedRune(s string) bool {
	for _, r := range s {
		if r >= 0x0E00 && r <= 0x0EFF || r >= 0x1000 && r <= 0x109F || r >= 0x1780 && r <= 0x17FF || r >= 0x4E00 && r <= 0x9FFF {
			return true
		}
	}
	return false
}

// TestKeywordRefusalsEveryLanguage pins the rule of the issue in each
// language: a keyword that is a word of that language's own "I am fine",
// or sits inside it, is refused; one that contains a help word is refused;
// an ordinary two-word keyword in the language's script is accepted; and
// a new keyword may contain the old one.
func TestKeywordRefusalsEveryLanguage(t *testing.T) {
	e := newEngine(t)
	refused := map[string][]string{
		"vi":  {"khỏe", "tôi khỏe", "khoe", "an toàn", "ổn rồi"},
		"th":  {"สบายดี", "ปลอดภัย", "ภัยดี", "บายดีค"},
		"lo":  {"ສະບາຍດີ"},
		"km":  {"សុខសប្បាយ"},
		"zh":  {"平安", "我很好", "安全的", "平安好的"},
		"en":  {"i am fine", "fine am", "help mango", "mango help", "safe safe"},
		"ms":  {"selamat", "tolong saya"},
		"id":  {"aman", "tolong"},
		"fil": {"ligtas"},
		"my":  {"ကျွန်တော်"},
	}
	for lang, words := range refused {
		for _, w := range words {
			if !inVocabularyOrHelp(e, lang, w) && lang != "en" {
				// The example must come from the locale: otherwise the
				// assertion proves nothing about it.
				t.Logf("%s: %q is not in the %s vocabulary; skipped", lang, w, lang)
				continue
			}
			if p := dialogs.KeywordProblem(e, w, "Siti Aminah"); p == "" {
				t.Errorf("%s: keyword %q accepted; an ordinary message would raise duress", lang, w)
			}
		}
	}
	for lang, kw := range blindKeywords {
		if p := dialogs.KeywordProblem(e, kw, "Siti Aminah"); p != "" {
			t.Errorf("%s: ordinary keyword %q refused (%s)", lang, kw, p)
		}
	}
	st := registered(t, e)
	st, _ = say(e, st, testNow, "/settings", "5", "blue mango", "blue mango tree", "blue mango tree")
	if _, res := say(e, st, testNow, "ok blue mango tree"); !hasEvent(res, dialogs.EventDuressTriggered) {
		t.Error("a new keyword containing the old one was not accepted as a change")
	}
}

// inVocabularyOrHelp reports whether w (normalised) is part of a phrase
// of lang.
func inVocabularyOrHelp(e *dialogs.Engine, lang, w string) bool {
	n := strings.ReplaceAll(dialogs.Normalize(w), " ", "")
	ws := e.Catalog.Words(lang)
	for _, list := range [][]string{ws.Checkin, ws.Help, ws.Stop, ws.Pause, ws.Yes, ws.No} {
		for _, p := range list {
			if strings.Contains(strings.ReplaceAll(p, " ", ""), n) && utf8.RuneCountInString(n) > 0 {
				return true
			}
		}
	}
	return false
}

// TestKeywordVerificationIsNotDuress: typing exactly the current keyword
// when asked for it (to change it) verifies it instead of raising an alarm.
func TestKeywordVerificationIsNotDuress(t *testing.T) {
	e := newEngine(t)
	st := registered(t, e)
	st, res := say(e, st, testNow, "/settings", "5", "Blue Mango")
	if len(res.Escalations) != 0 || st.Step != dialogs.StepSettingsKeywordNew {
		t.Fatalf("verification: step %q escalations %v", st.Step, eventTypes2(res.Escalations))
	}
	st, _ = say(e, st, testNow, "green apple", "green apple")
	if _, res = say(e, st, testNow, "so tired green apple"); len(res.Escalations) == 0 {
		t.Error("the new keyword does not trigger")
	}
	if _, res = say(e, st, testNow, "so tired blue mango"); len(res.Escalations) == 0 {
		t.Error("the former keyword stopped working (DESIGN §3: a change never leaves the citizen without one)")
	}
}

func TestKeywordRefusals(t *testing.T) {
	e := newEngine(t)
	st, _ := say(e, dialogs.State{}, testNow, "/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah",
		"skip", "skip", "skip", "24h", "09:00")
	if st.Step != dialogs.StepKeyword {
		t.Fatalf("not at the keyword step: %q", st.Step)
	}
	for _, c := range []struct{ word, want string }{
		{"abc", "too short"},
		{"a b c", "too short"},
		{"okay", "too close"},
		{"helpp", "too close"},
		{"SAFE", "too close"},
		{"soss!", "too close"},
		{"tolong", "too close"},   // Malay help word
		{"berhenti", "too close"}, // Malay stop word
		{"checkinn", "too close"},
		{"siti", "your name"},
		{"Siti Aminah", "your name"},
		{strings.Repeat("long ", 20), "too long"},
	} {
		_, res := say(e, st, testNow, c.word)
		if got := res.Replies[0].Text; !strings.Contains(got, c.want) {
			t.Errorf("keyword %q: got %q, want it refused as %q", c.word, got, c.want)
		}
		if res.State.PendingKeyword.Set() {
			t.Errorf("keyword %q was accepted", c.word)
		}
	}
	if st2, _ := say(e, st, testNow, "blue mango"); st2.Step != dialogs.StepKeywordRepeat {
		t.Errorf("a good keyword was refused")
	}
}

// TestKeywordMatching exercises word n-grams and character windows.
func TestKeywordMatching(t *testing.T) {
	e := newEngine(t)
	cases := []struct {
		keyword string
		text    string
		want    bool
	}{
		{"blue mango", "I'm fine blue mango", true},
		{"blue mango", "BLUE-MANGO", true},
		{"blue mango", "blue mangoes", false},
		{"blue mango", "blues mango", false},
		{"blue mango", "blue", false},
		{"blue mango", "mango blue", false},
		{"blue mango", "blue\nmango", true},
		{"kucing hitam", "saya baik, Kucing  Hitam.", true},
		{"กล้วยหอม", "สบายดีกล้วยหอมนะ", true},
		{"กล้วยหอม", "สบายดีกล้วยนะหอม", false},
		{"กล้วยหอม", "ok กล้วย หอม", true},
		{"香蕉苹果", "我很好香蕉苹果谢谢", true},
		{"香蕉苹果", "我很好香蕉", false},
	}
	for _, c := range cases {
		st := registered(t, e)
		st.Keyword = dialogs.NewKeyword(transcriptPepper, st.Key, c.keyword)
		res := e.Handle(st, textInput(c.text), testNow)
		got := len(res.Escalations) > 0 && res.Escalations[0].Type == dialogs.EventDuressTriggered
		if got != c.want {
			t.Errorf("keyword %q in %q: triggered=%v, want %v", c.keyword, c.text, got, c.want)
		}
	}
}
