package dialogs_test

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/locales"
)

var testNow = time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)

// newEngine builds the engine on the real locales and the transcript config.
func newEngine(tb testing.TB) *dialogs.Engine {
	tb.Helper()
	cat, err := locales.Load()
	if err != nil {
		tb.Fatal(err)
	}
	cat.OnMissing = func(lang, id string, err error) { tb.Errorf("missing message %s in %s: %v", id, lang, err) }
	cfg, err := config.Load("testdata/transcripts/config.toml")
	if err != nil {
		tb.Fatal(err)
	}
	return &dialogs.Engine{Catalog: cat, Directory: cfg.Directory(), Policy: cfg.Policy(), Pepper: transcriptPepper}
}

// say feeds texts to the engine and returns the final state and result.
func say(e *dialogs.Engine, st dialogs.State, now time.Time, texts ...string) (dialogs.State, dialogs.Result) {
	var res dialogs.Result
	for _, text := range texts {
		res = e.Handle(st, dialogs.Input{Kind: dialogs.KindText, Key: "user-1", Channel: "telegram", Address: "1001", Text: text}, now)
		st = res.State
	}
	return st, res
}

// registered drives a real registration with keyword "blue mango".
func registered(tb testing.TB, e *dialogs.Engine) dialogs.State {
	tb.Helper()
	st, res := say(e, dialogs.State{}, testNow, "/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah",
		"skip", "skip", "skip", "24h", "09:00", "blue mango", "blue mango", "1")
	if st.Status != dialogs.StatusActive {
		tb.Fatalf("registration did not complete: %+v", res.Replies)
	}
	return st
}

func textInput(s string) dialogs.Input {
	return dialogs.Input{Kind: dialogs.KindText, Key: "user-1", Channel: "telegram", Address: "1001", Text: s}
}

func eventTypes2(escs []dialogs.Escalation) []string {
	var out []string
	for _, e := range escs {
		out = append(out, e.Type)
	}
	return out
}

// TestDuressInsideReductionOnlyPretends: stop, pause and delete requests
// that carry the keyword show the normal confirmation while monitoring
// continues and the embassy is told.
func TestDuressInsideReductionOnlyPretends(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	cases := []struct {
		name      string
		normal    []string
		duress    []string
		wantShown dialogs.Status
		realEvent string
	}{
		{"stop in request", []string{"/stop", "yes"}, []string{"/stop blue mango", "yes"}, dialogs.StatusStopped, dialogs.EventProtectionReduced},
		{"stop in confirmation", []string{"/stop", "yes"}, []string{"/stop", "yes blue mango"}, dialogs.StatusStopped, dialogs.EventProtectionReduced},
		{"pause", []string{"/pause", "3"}, []string{"pause Blue Mango", "3"}, dialogs.StatusPaused, dialogs.EventProtectionReduced},
		{"delete", []string{"/delete", "1"}, []string{"/delete", "1 blue mango"}, dialogs.StatusDeleted, dialogs.EventRegistrationWithdrawn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, normal := say(e, base, testNow, c.normal...)
			st := base
			var all []string
			var res dialogs.Result
			for _, text := range c.duress {
				res = e.Handle(st, textInput(text), testNow)
				st = res.State
				all = append(all, eventTypes2(res.Escalations)...)
			}
			if !reflect.DeepEqual(normal.Replies, res.Replies) {
				t.Errorf("replies differ\nnormal: %+v\nduress: %+v", normal.Replies, res.Replies)
			}
			if res.Erase {
				t.Error("a covert delete erased the registration")
			}
			if c.wantShown == dialogs.StatusDeleted {
				// The phone sees a fresh start; the registration is hidden and monitored.
				if st.Registered() || st.Hidden == nil || st.Hidden.Timer.IsZero() || st.Hidden.Profile.Name == "" || len(st.Hidden.Keywords) == 0 {
					t.Errorf("covert delete: %+v", st)
				}
			} else if st.Status != dialogs.StatusActive || st.Shown != c.wantShown || st.Timer.IsZero() {
				t.Errorf("monitoring did not continue: status %q shown %q timer %v", st.Status, st.Shown, st.Timer)
			}
			if !reflect.DeepEqual(all, []string{dialogs.EventDuressTriggered, dialogs.EventCaseUpdated}) {
				t.Errorf("events %v, want duress.triggered then case.updated (never %s)", all, c.realEvent)
			}
		})
	}
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

// TestBadInputGetsHintAndKeepsState: odd messages get a hint, never a panic,
// and change nothing stored.
func TestBadInputGetsHintAndKeepsState(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	inputs := map[string]dialogs.Input{
		"empty":          textInput(""),
		"whitespace":     textInput(" \t\n "),
		"10k chars":      textInput(strings.Repeat("x", 10000)),
		"10k words":      textInput(strings.Repeat("blue ", 2000)),
		"invalid utf-8":  textInput("\xff\xfe\xfd"),
		"emoji only":     textInput("😀🙏🏽👍"),
		"right-to-left":  textInput("\u202eمرحبا بك"),
		"unknown cmd":    textInput("/foo"),
		"command+junk":   textInput("/foo please now"),
		"sticker":        {Kind: dialogs.KindMedia, Key: "user-1"},
		"zero-width":     textInput("\u200b\u200b"),
		"control chars":  textInput("\x00\x01\x02"),
		"only slash":     textInput("/"),
		"combining only": textInput("\u0301\u0301"),
	}
	for name, in := range inputs {
		for _, step := range []dialogs.Step{dialogs.StepNone, dialogs.StepSOSCall, dialogs.StepPauseLength, dialogs.StepStopConfirm} {
			st := base
			st.Step = step
			res := e.Handle(st, in, testNow)
			if len(res.Replies) == 0 {
				t.Errorf("%s at %q: no reply", name, step)
			}
			if len(res.Escalations) != 0 || res.Erase {
				t.Errorf("%s at %q: escalated %v", name, step, eventTypes2(res.Escalations))
			}
			after := res.State
			if after.Step != step || after.Profile != base.Profile || after.NextDue != base.NextDue || after.Status != base.Status || after.Keyword.Len != base.Keyword.Len {
				t.Errorf("%s at %q: state changed", name, step)
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Blue Mango", "blue mango"},
		{"  BLUE   mango!! ", "blue mango"},
		{"blüe mangó", "blue mango"},
		{"Ｂｌｕｅ", "blue"}, // full-width (NFKC)
		{"I'm safe", "i m safe"},
		{"Đà Nẵng", "da nang"},
		{"STRASSE", "strasse"},
		{"สบายดี", "สบายดี"}, // Thai vowel signs are kept
		{"ខ្ញុំ", "ខ្ញុំ"},   // Khmer coeng and signs are kept
		{"😀 ok 😀", "ok"},
		{"\xff ok", "ok"},
		{"", ""},
	} {
		if got := dialogs.Normalize(c.in); got != c.want {
			t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestNormalizeASCIIFastPath: the ASCII shortcut gives exactly what the
// general Unicode path gives.
func TestNormalizeASCIIFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		b := make([]byte, rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.IntN(128))
		}
		s := string(b)
		if got, want := dialogs.Normalize(s), dialogs.NormalizeUnicode(s); got != want {
			t.Fatalf("Normalize(%q) = %q, general path %q", s, got, want)
		}
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

func TestNextDueAndLadder(t *testing.T) {
	e := newEngine(t)
	st := registered(t, e) // registered 09:00 Phnom Penh (02:00Z), daily at 09:00
	if want := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC); !st.NextDue.Equal(want) {
		t.Fatalf("next due %v, want %v", st.NextDue, want)
	}
	// An early check-in at 08:55 the next day is due again the day after.
	st2, _ := say(e, st, time.Date(2026, 3, 3, 1, 55, 0, 0, time.UTC), "ok")
	if want := time.Date(2026, 3, 4, 2, 0, 0, 0, time.UTC); !st2.NextDue.Equal(want) {
		t.Errorf("early check-in: next due %v, want %v", st2.NextDue, want)
	}
	// Three days of downtime: the citizen was never prompted, so the late
	// timer sends the prompt and no escalation (schedule.go).
	res := e.Handle(st, dialogs.Input{Kind: dialogs.KindTimer, Key: st.Key}, st.NextDue.Add(72*time.Hour))
	if len(res.Replies) != 1 || len(res.Escalations) != 0 || !res.Prompt {
		t.Errorf("catch-up: %d replies, escalations %v, prompt %v", len(res.Replies), eventTypes2(res.Escalations), res.Prompt)
	}
	if !res.State.Timer.After(st.NextDue.Add(72 * time.Hour)) {
		t.Errorf("catch-up: timer %v not in the future", res.State.Timer)
	}
}

func TestNormalizeScripts(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"၁", "1"}, {"១២", "12"}, {"๓", "3"}, {"໔", "4"},
		{"အိုကေ", dialogs.Normalize("အုိကေ")}, // Burmese vowel signs in either order
		{"ញុំ", dialogs.Normalize("ញំុ")},     // Khmer likewise
	} {
		if got := dialogs.Normalize(c.in); got != c.want {
			t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := dialogs.ASCIIDigits("၉:၀၀"); got != "9:00" {
		t.Errorf("ASCIIDigits = %q", got)
	}
}

func TestSuggestLanguage(t *testing.T) {
	e := newEngine(t)
	for hint, want := range map[string]string{
		"zh-hans": "zh", "zh-CN": "zh", "zh_Hans": "zh", "zh": "zh", "fil": "fil", "tl": "fil", "ms-MY": "ms",
		"id": "id", "in": "id", "th": "th", "vi": "vi", "my": "my", "km": "km", "lo": "lo", "en-US": "en",
		"de": "en", "": "en",
	} {
		if got := e.SuggestLanguage(hint); got != want {
			t.Errorf("SuggestLanguage(%q) = %q, want %q", hint, got, want)
		}
	}
}
