package dialogs

// Normalisation rules of DESIGN §3, each as a property over a whole class
// of characters rather than one example.

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// TestNormalizeExamples pins the examples of issue 9 and the decisions
// taken for their classes.
func TestNormalizeExamples(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"I am fine ☀️ blue mango", "i am fine blue mango"},
		{"I am fine ☀️blue mango", "i am fine blue mango"},
		{"ok 👍🏽 blue mango", "ok blue mango"},
		{"ok 🇹🇭 blue mango 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "ok blue mango"},
		{"ok\u200d👍blue mango", "ok blue mango"},
		{"\u0301blue mango", "blue mango"},
		{"ปลอดภัยblue mango", "ปลอดภัย blue mango"},
		{"平安blue mango", "平安 blue mango"},
		{"blue mango好的", "blue mango 好的"},
		{"ສະບາຍດີblue", "ສະບາຍດີ blue"},
		{"ok2平安", "ok2 平安"},
		{"blu\u200ce man\u00adgo", "blue mango"},
		{"blue\u2060mango", "bluemango"},
		{"กล้\u200bวย", "กล้วย"},
		{"ก\u200cั", "กั"},
		{"1️⃣", "1"},
		{"mango1️⃣", "mango 1"},
		{"#️⃣ok", "ok"},
		{"ありがとう平安", "ありがとう平安"}, // Japanese mixes Han and kana inside words
		{"สบายดี平安", "สบายดี 平安"},
	} {
		if got := Normalize(c.in); got != c.want {
			t.Errorf("Normalize(%+q) = %+q, want %+q", c.in, got, c.want)
		}
	}
}

// everyRune calls f for every assigned code point of the tables.
func everyRune(f func(r rune), tables ...*unicode.RangeTable) {
	for _, tab := range tables {
		for _, r16 := range tab.R16 {
			for r := rune(r16.Lo); r <= rune(r16.Hi); r += rune(r16.Stride) {
				f(r)
			}
		}
		for _, r32 := range tab.R32 {
			for r := rune(r32.Lo); r <= rune(r32.Hi); r += rune(r32.Stride) {
				f(r)
			}
		}
	}
}

// becomesLetter reports whether r turns into a letter under NFKC and case
// folding (U+0345 folds to Greek iota): such a rune is spelling, not a mark.
func becomesLetter(r rune) bool {
	return strings.ContainsFunc(folder.String(norm.NFKC.String(string(r))), unicode.IsLetter)
}

var skinTones = &unicode.RangeTable{R32: []unicode.Range32{{Lo: 0x1F3FB, Hi: 0x1F3FF, Stride: 1}}}

// TestNormalizeUnattachedMarks: a mark, variation selector, joiner, format
// character, skin-tone modifier, regional indicator or tag with no letter
// before it never glues the next word to anything and never swallows a
// space (issue 9: "I am fine ☀️ blue mango").
func TestNormalizeUnattachedMarks(t *testing.T) {
	fails := 0
	everyRune(func(r rune) {
		if becomesLetter(r) || fails > 20 {
			return
		}
		m := string(r)
		for _, in := range []string{
			"fine " + m + " blue mango",
			"fine ☀" + m + "blue mango",
			"fine " + m + m + "blue mango",
			m + "blue mango",
			"fine.\u200d" + m + " blue mango",
		} {
			got := Normalize(in)
			if !strings.HasSuffix(" "+got, " blue mango") || (strings.HasPrefix(in, "fine") && !strings.HasPrefix(got, "fine ")) {
				t.Errorf("Normalize(%+q) = %+q: the words around U+%04X are not kept apart", in, got, r)
				fails++
			}
		}
	}, unicode.Mn, unicode.Me, unicode.Mc, unicode.Cf, unicode.Variation_Selector,
		unicode.Other_Default_Ignorable_Code_Point, unicode.Regional_Indicator, skinTones)
}

// wordsOfScripts are ordinary words of every script we support (and some
// we do not), for inserting and gluing.
var wordsOfScripts = []struct{ script, word string }{
	{"latin", "blue"},
	{"latin", "khỏe"},
	{"latin", norm.NFD.String("Đà Nẵng")},
	{"cyrillic", "привет"},
	{"greek", "γεια"},
	{"digits", "2026"},
	{"thai", "สบายดี"},
	{"thai", "กล้วยหอม"},
	{"lao", "ສະບາຍດີ"},
	{"khmer", "ខ្ញុំសុខសប្បាយ"},
	{"burmese", "နေကောင်းပါတယ်"},
	{"burmese", "အိုကေ"},
	{"cjk", "平安"},
	{"cjk", "ありがとう"},
	{"cjk", "カタカナ"},
}

// TestNormalizeIgnorableInsideWords: every default-ignorable code point
// (ZWNJ, ZWJ, soft hyphen, word joiner, variation selectors, bidi controls,
// tags, Hangul fillers, …) inside a word of any script vanishes — between
// letters and between a letter and its marks — and a keyword typed with it
// is the same keyword.
func TestNormalizeIgnorableInsideWords(t *testing.T) {
	fails, n := 0, 0
	everyRune(func(r rune) {
		if unicode.Is(unicode.White_Space, r) || fails > 20 {
			return
		}
		n++
		for i, w := range wordsOfScripts {
			rs := []rune(w.word)
			at := 1 + (n+i)%(len(rs)-1)
			in := string(rs[:at]) + string(r) + string(rs[at:])
			if got, want := Normalize(in), Normalize(w.word); got != want {
				t.Errorf("Normalize(%+q) = %+q, want %+q (U+%04X inside a %s word)", in, got, want, r, w.script)
				fails++
			}
			if n%50 == 0 && !bytes.Equal(NewKeyword(detectPepper, detectUser, in).Hash, NewKeyword(detectPepper, detectUser, w.word).Hash) {
				t.Errorf("keyword %+q does not hash as %+q", in, w.word)
				fails++
			}
		}
	}, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// TestNormalizeScriptBreaks: where a letter of an unspaced script (Thai,
// Lao, Khmer, Burmese, Han with kana) meets a letter or digit of another
// script, a word ends; two words of the same kind glued together stay one.
func TestNormalizeScriptBreaks(t *testing.T) {
	unspaced := map[string]bool{"thai": true, "lao": true, "khmer": true, "burmese": true, "cjk": true}
	for _, a := range wordsOfScripts {
		for _, b := range wordsOfScripts {
			na, nb := Normalize(a.word), Normalize(b.word)
			want := na + nb
			if a.script != b.script && (unspaced[a.script] || unspaced[b.script]) {
				want = na + " " + nb
			}
			if got := Normalize(a.word + b.word); got != want {
				t.Errorf("Normalize(%+q) = %+q, want %+q (%s then %s)", a.word+b.word, got, want, a.script, b.script)
			}
		}
	}
}

// TestNormalizeWholeMessage: a message of 65,536 characters (the longest
// WhatsApp message) is examined to its end on both paths; anything longer
// is cut there, so the work stays bounded.
func TestNormalizeWholeMessage(t *testing.T) {
	for _, fill := range []string{"ok fine ", "สบายดี ", "平安 ", "khỏe ", "👍🏽 "} {
		tail := " blue mango"
		body := strings.Repeat(fill, 70_000/utf8.RuneCountInString(fill))
		msg := string([]rune(body)[:maxMessageRunes-utf8.RuneCountInString(tail)]) + tail
		if got := Normalize(msg); !strings.HasSuffix(" "+got, " blue mango") {
			t.Errorf("%q × %d: the end of a %d-character message is lost", fill, len(body)/len(fill), utf8.RuneCountInString(msg))
		}
		if got := utf8.RuneCountInString(Normalize(body + tail)); got > maxMessageRunes {
			t.Errorf("%q: Normalize of %d characters returned %d, more than %d", fill, utf8.RuneCountInString(body+tail), got, maxMessageRunes)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		b := make([]byte, 60_000+rng.IntN(10_000))
		for i := range b {
			b[i] = byte(rng.IntN(128))
		}
		if got, want := Normalize(string(b)), normalizeUnicode(string(b)); got != want {
			t.Fatalf("ASCII path and general path differ on a %d-byte message", len(b))
		}
	}
}

// alphabet is everything a message may hold: letters of every script with
// their marks, digits, invisible characters, emoji and keycaps, marks with
// no base, spaces and punctuation.
func alphabet() []string {
	var a []string
	for _, sc := range []*script{latin, vietnamese, thai, lao, khmer, burmese, chinese} {
		a = append(a, sc.key...)
		a = append(a, sc.fill...)
		a = append(a, sc.leads...)
		for _, t := range sc.tails {
			a = append(a, strings.ReplaceAll(t, "C", "ក"))
		}
	}
	a = append(a, latinAccents...)
	a = append(a, vietTone...)
	a = append(a, "A", "Ｂ", "𝐜", "đ", "ß", "İ", "Σ", "ς", "я", "0", "7", "๗", "၃", "១", "½", "①")
	a = append(a, ignores...)
	a = append(a, emojis...)
	a = append(a, keycaps...)
	a = append(a, noBase...)
	a = append(a, spaces...)
	a = append(a, puncts...)
	return a
}

func randomText(rng *rand.Rand, a []string, n int) string {
	var b strings.Builder
	for range rng.IntN(n + 1) {
		b.WriteString(a[rng.IntN(len(a))])
	}
	return b.String()
}

// TestNormalizeConcatenation: normalising two texts joined by a separator
// gives the two normalised texts side by side. This is what makes a keyword
// typed alone match the same keyword inside any message.
func TestNormalizeConcatenation(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a := alphabet()
	g := newGen(7, nil)
	for i := range 20_000 {
		s, u := randomText(rng, a, 12), randomText(rng, a, 12)
		sep := breaking(g, pick(g, sepKinds[:6]))
		got := strings.Fields(Normalize(s + sep + u))
		want := slices.Concat(strings.Fields(Normalize(s)), strings.Fields(Normalize(sep)), strings.Fields(Normalize(u)))
		if !slices.Equal(got, want) {
			t.Fatalf("case %d: Normalize(%+q) = %+q, want %+q", i, s+sep+u, got, want)
		}
	}
}

// TestNormalizeIdempotent: normalised text normalises to itself, so the
// stored keyword form and a message that quotes it agree.
func TestNormalizeIdempotent(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	a := alphabet()
	for range 20_000 {
		s := randomText(rng, a, 20)
		if n := Normalize(s); Normalize(n) != n {
			t.Fatalf("Normalize(%+q) = %+q, which normalises to %+q", s, n, Normalize(n))
		}
	}
}
