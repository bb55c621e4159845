package dialogs_test

import (
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// Adversarial review of issue 9 (covert duress). Each test here demonstrates
// one finding; each failed on the code as reviewed and passes since its fix.

// TestReviewStaleKeywordChangeSwallowsDuressAndSOS: a citizen opens
// /settings → secret word, answers the first question and walks away. The
// step "type your new word" (or "type it again") stays open forever: the
// next day's due prompt keeps its place. Under duress the citizen sends the
// taught form "OK blue mango": it is taken as a new keyword (detectDuress
// skips both steps outright), so no duress.triggered, and no check-in
// either. "please help me" at the same step is refused as a keyword: no SOS
// (only a message that is exactly a plain word, "help me", escapes).
func TestReviewStaleKeywordChangeSwallowsDuressAndSOS(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	open := map[string][]string{
		"new word asked":    {"/settings", "5", "blue mango"},
		"repeat word asked": {"/settings", "5", "blue mango", "purple tiger"},
	}
	for name, seq := range open {
		st, _ := say(e, base, testNow, seq...)
		// A day later the due prompt goes out; the open step keeps its place.
		due := st.Timer
		if due.IsZero() {
			t.Fatalf("%s: no timer", name)
		}
		res := e.Handle(st, dialogs.Input{Kind: dialogs.KindTimer, Key: "user-1"}, due)
		if !res.Prompt {
			t.Fatalf("%s: the due prompt did not go out", name)
		}
		st = res.State
		at := due.Add(10 * time.Minute)
		for _, c := range []struct{ text, want string }{
			{"OK blue mango", dialogs.EventDuressTriggered},
			{"ok, Blue Mango!", dialogs.EventDuressTriggered},
			{"please help me", dialogs.EventSOSRaised},
		} {
			res := e.Handle(st, textInput(c.text), at)
			if !hasEvent(res, c.want) {
				t.Errorf("%s (step %s), next day, %q: want %s, got events %v and reply %q",
					name, st.Step, c.text, c.want, eventTypes2(res.Escalations), firstReply(res))
			}
		}
	}
}

func firstReply(res dialogs.Result) string {
	if len(res.Replies) == 0 {
		return ""
	}
	return res.Replies[0].Text
}

// TestReviewKeywordGluedToEmojiThatNFKCMakesLetters: ™️, Ⓜ️ and ℹ️ are
// emoji (fully qualified, with VS16), and ² ① are common symbols, but NFKC
// turns them into letters or digits ("tm", "m", "i", "2", "1"), which then
// glue to the keyword: "blue mango™️" normalises to "blue mangotm" and the
// keyword is missed. Other emoji (☀️ 👍🏽 🇰🇭) end a word, as DESIGN §3 asks.
func TestReviewKeywordGluedToEmojiThatNFKCMakesLetters(t *testing.T) {
	e := newEngine(t)
	for _, text := range []string{
		"OK blue mango™️", "OK Ⓜ️blue mango", "OK blue mangoℹ️", "OK blue mango²", "OK blue mango①",
		"OK ℹ️blue mango", "OK blue mango🄰",
	} {
		if !dialogs.Detects(e, "user-1", "blue mango", text) {
			t.Errorf("%q (normalised %q): keyword not found", text, dialogs.Normalize(text))
		}
	}
}

// TestReviewAcceptedKeywordSpanningTwoCheckinPhrases: character windows
// ignore spaces and punctuation, so a keyword in an unspaced script that is
// the end of one check-in phrase followed by the start of another is found
// in an ordinary check-in made of those two phrases. The refusal rules only
// refuse keywords made entirely of phrases or inside one phrase, so these
// are accepted, and every such ordinary check-in then raises
// duress.triggered with do_not_contact (false alarm by construction).
func TestReviewAcceptedKeywordSpanningTwoCheckinPhrases(t *testing.T) {
	e := newEngine(t)
	cases := []struct{ lang, keyword, ordinary string }{
		{"zh", "很好平安", "我很好，平安"},                   // 我很好 + 平安
		{"th", "ดีปลอดภัย", "สบายดี ปลอดภัย"},      // สบายดี + ปลอดภัย
		{"th", "ดีโอเค", "สบายดี โอเค"},            // สบายดี + โอเค
		{"lo", "ຍດີໂອເຄ", "ສະບາຍດີ ໂອເຄ"},          // ສະບາຍດີ + ໂອເຄ
		{"my", "ပါတယ်အိုကေ", "ဘေးကင်းပါတယ် အိုကေ"}, // ဘေးကင်းပါတယ် + အိုကေ
	}
	for _, c := range cases {
		if p := dialogs.KeywordProblem(e, c.keyword, "Siti Aminah"); p == "" && dialogs.Detects(e, "user-1", c.keyword, c.ordinary) {
			t.Errorf("%s: keyword %q is accepted, and the ordinary check-in %q triggers it", c.lang, c.keyword, c.ordinary)
		}
	}
	// The engine end to end, for the first case, if the keyword could be
	// chosen at all: an ordinary check-in must not raise duress.
	if dialogs.KeywordProblem(e, cases[0].keyword, "Siti Aminah") != "" {
		return
	}
	st := registered(t, e)
	st.Lang, st.Keyword = "zh", dialogs.NewKeyword(transcriptPepper, st.Key, cases[0].keyword)
	if res := e.Handle(st, textInput(cases[0].ordinary), testNow.Add(time.Hour)); hasEvent(res, dialogs.EventDuressTriggered) {
		t.Errorf("an ordinary check-in %q raised %s", cases[0].ordinary, dialogs.EventDuressTriggered)
	}
}
