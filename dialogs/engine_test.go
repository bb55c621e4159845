package dialogs_test

import (
	"math/rand/v2"
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
