package dialogs

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/rangetable"
)

// maxMessageRunes bounds how much of one message is examined for words and
// the duress keyword. It is the longest message any channel delivers
// (WhatsApp: 65,536 characters; Telegram: 4,096), so every message is
// examined whole (DESIGN §3); anything longer cannot come from a channel
// and is cut, which keeps the work bounded.
const maxMessageRunes = 65536

var folder = cases.Fold()

// Normalize turns what a person typed into the form used for every
// comparison: keywords, command words and choice labels (DESIGN §3). It
// applies, in order: valid UTF-8, Unicode NFKC, case folding, then
//   - default-ignorable characters (ZWJ, ZWNJ, soft hyphen, word joiner,
//     variation selectors, bidi controls, tags, …) vanish, so they neither
//     split a word nor glue two;
//   - combining marks are removed on letters of scripts that write them as
//     optional accents (Latin, Greek, Cyrillic — "Café" matches "cafe"),
//     kept on letters of scripts where they are spelling (Thai, Lao, Khmer,
//     Burmese vowel signs and tone marks), and dropped when no letter
//     carries them (after an emoji, a space or a digit);
//   - enclosing marks (keycaps) and everything that is not a letter or a
//     digit — spaces, punctuation, symbols, emoji — end a word;
//   - a word also ends where a letter of a script written without spaces
//     (Thai, Lao, Khmer, Burmese, Han with kana) meets a letter or digit of
//     another script, so "ปลอดภัยblue mango" holds the words "blue mango";
//   - Vietnamese đ → d, digits of every script → ASCII, words separated by
//     single spaces, Burmese and Khmer vowel signs in one order.
//
// It is deterministic and linear in the text. Pure ASCII, most messages,
// takes a shortcut that gives the same result.
func Normalize(s string) string {
	if isASCII(s) {
		return normalizeASCII(s)
	}
	return normalizeUnicode(s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// normalizeASCII is Normalize for pure ASCII, where NFKC and the mark
// stripping change nothing and case folding is lower-casing. Most messages
// take this path; TestNormalizeASCIIFastPath keeps it equal to the general one.
func normalizeASCII(s string) string {
	if len(s) > maxMessageRunes {
		s = s[:maxMessageRunes]
	}
	b := make([]byte, 0, len(s))
	space := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
			space = false
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
			space = false
		default:
			if !space {
				b = append(b, ' ')
				space = true
			}
		}
	}
	if space && len(b) > 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}

// wordClass says which letters may follow each other inside one word: a
// word ends where the class changes (DESIGN §3). Letters and digits of
// scripts written with spaces share one class; each script written without
// spaces has its own.
type wordClass uint8

const (
	classSpaced wordClass = iota
	classThai
	classLao
	classKhmer
	classMyanmar
	classCJK // Han, Hiragana and Katakana: Japanese mixes them inside words
)

// letterClass returns the word class of letter r; letters of no particular
// script (the Katakana-Hiragana prolonged sound mark "ー", modifier
// letters) belong to the word they are in. The Unicode blocks of the
// scripts come first: they hold only letters of that script.
func letterClass(r rune, current wordClass) wordClass {
	switch {
	case r < 0x0E00:
		return classSpaced
	case r <= 0x0E7F:
		return classThai
	case r <= 0x0EFF:
		return classLao
	case r >= 0x1000 && r <= 0x109F:
		return classMyanmar
	case r >= 0x1780 && r <= 0x17FF:
		return classKhmer
	case r >= 0x4E00 && r <= 0x9FFF, r >= 0x3040 && r <= 0x30FF && r != 0x30FC:
		return classCJK
	case unicode.Is(unicode.Thai, r):
		return classThai
	case unicode.Is(unicode.Lao, r):
		return classLao
	case unicode.Is(unicode.Khmer, r):
		return classKhmer
	case unicode.Is(unicode.Myanmar, r):
		return classMyanmar
	case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana):
		return classCJK
	case unicode.In(r, unicode.Common, unicode.Inherited):
		return current
	}
	return classSpaced
}

// defaultIgnorable is Default_Ignorable_Code_Point (UAX #44): format
// characters, variation selectors and the other ignorables, in one table.
var defaultIgnorable = rangetable.Merge(unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)

// ignorable reports whether r is a default-ignorable code point (ZWJ, ZWNJ,
// soft hyphen, word joiner, variation selectors, bidi controls, tags,
// Hangul fillers, …): invisible, it vanishes from the text. Zero-width
// space is one of them: a word typed with it inside is still one word.
func ignorable(r rune) bool {
	return r >= 0xAD && unicode.Is(defaultIgnorable, r)
}

// keycapFollows reports whether s starts, after invisible characters, with
// the combining enclosing keycap: the digit before it is an emoji (1️⃣), a
// word of its own.
func keycapFollows(s string) bool {
	for _, r := range s {
		if r == '\u20E3' {
			return true
		}
		if !ignorable(r) {
			return false
		}
	}
	return false
}

func normalizeUnicode(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, " ")
	}
	s = firstRunes(s, maxMessageRunes)
	s = separateSymbols(s)
	s = norm.NFKC.String(s)
	s = folder.String(s)
	s = norm.NFD.String(s)

	var b strings.Builder
	b.Grow(len(s))
	var base rune         // letter the next marks belong to; 0 after a break or a digit
	class := classSpaced  // word class of the last letter or digit written
	space := true         // a word ended (suppresses leading and double spaces)
	wordBreak := func() { // end the current word
		if !space {
			b.WriteByte(' ')
			space = true
		}
		base = 0
	}
	write := func(r rune, c wordClass) { // a letter or digit, in a word of class c
		if !space && c != class {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
		class, space = c, false
	}
	for i, r := range s {
		switch {
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z'):
			write(r, classSpaced)
			base = r
		case r < utf8.RuneSelf && (r >= '0' && r <= '9'):
			if keycapFollows(s[i+1:]) {
				wordBreak()
			}
			write(r, classSpaced)
			base = 0
		case ignorable(r):
			// vanishes: neither a letter nor a break
		case unicode.Is(unicode.Me, r): // enclosing marks make a symbol of what they enclose
			wordBreak()
		case unicode.In(r, unicode.Mn, unicode.Mc):
			if base == 0 || optionalMarks(base) {
				continue // a mark with no letter to carry it, or an optional accent
			}
			b.WriteRune(r)
		case r == 'đ':
			write('d', classSpaced)
			base = 'd'
		case unicode.Is(unicode.Nd, r): // Thai, Lao, Khmer, Burmese … digits read as 0-9
			write(digitValue(r), classSpaced)
			base = 0
		case unicode.IsLetter(r):
			write(r, letterClass(r, class))
			base = r
		case unicode.IsNumber(r):
			write(r, classSpaced)
			base = 0
		default: // spaces, punctuation, symbols, controls, emoji
			wordBreak()
		}
	}
	return norm.NFC.String(sortMarks(strings.TrimRight(b.String(), " ")))
}

// firstRunes returns the first n runes of s.
func firstRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// digitValue maps a decimal digit of any script to its ASCII digit. Unicode
// keeps each script's digits as a run of ten from zero.
func digitValue(r rune) rune {
	z := r
	for i := 0; i < 9 && unicode.Is(unicode.Nd, z-1); i++ {
		z--
	}
	return '0' + (r-z)%10
}

// ASCIIDigits rewrites the digits of any script as ASCII, for numbers and
// times typed on Burmese, Khmer, Thai or Lao keyboards.
func ASCIIDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII && unicode.Is(unicode.Nd, r) {
			return digitValue(r)
		}
		return r
	}, s)
}

// sortMarks puts runs of combining marks that hold a Burmese or Khmer mark
// in one order: by canonical combining class, then by code point. Phones
// store the same-looking syllable with its vowel signs in different orders
// (Burmese "ို" and "ုိ"), and Unicode normalisation does not reorder them
// (most have combining class 0); for comparing words and keywords, one
// order is enough. Sorting by class first keeps the text in canonical
// order, so normalising it again changes nothing.
func sortMarks(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.In(r, unicode.Myanmar, unicode.Khmer) }) {
		return s
	}
	rs := []rune(s)
	for i := 0; i < len(rs); {
		j, ours := i, false
		for j < len(rs) && unicode.Is(unicode.Mn, rs[j]) {
			ours = ours || unicode.In(rs[j], unicode.Myanmar, unicode.Khmer)
			j++
		}
		if j-i > 1 && ours {
			slices.SortFunc(rs[i:j], func(a, b rune) int {
				if ca, cb := combiningClass(a), combiningClass(b); ca != cb {
					return int(ca) - int(cb)
				}
				return int(a - b)
			})
		}
		i = max(j, i+1)
	}
	return string(rs)
}

// combiningClass is the canonical combining class of r.
func combiningClass(r rune) uint8 {
	var buf [utf8.UTFMax]byte
	return norm.NFD.Properties(buf[:utf8.EncodeRune(buf[:], r)]).CCC()
}

// optionalMarks reports whether combining marks after r are accents a person
// may leave out when typing (Latin, Greek, Cyrillic), as opposed to vowel
// signs that are part of the spelling (Thai, Khmer, Burmese, …).
func optionalMarks(r rune) bool {
	return unicode.In(r, unicode.Latin, unicode.Greek, unicode.Cyrillic)
}

// unspacedScript reports whether r belongs to a script written without
// spaces between words, where keyword matching must use character windows
// rather than word n-grams.
func unspacedScript(r rune) bool {
	return unicode.In(r, unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar, unicode.Han,
		unicode.Hiragana, unicode.Katakana)
}

// hasUnspaced reports whether s contains any rune of an unspaced script.
func hasUnspaced(s string) bool {
	for _, r := range s {
		if unspacedScript(r) {
			return true
		}
	}
	return false
}

// separateSymbols puts a word break between a run of symbols that NFKC
// turns into letters or digits (™ → "tm", Ⓜ → "m", ² → "2", ① → "1",
// 🄰 → "a", and any character shown as an emoji by U+FE0F, such as ℹ️)
// and the ordinary letters and digits beside it: "mango™️" must read as
// "mango tm", not "mangotm", or a keyword glued to an emoji is missed. A
// whole word typed in such symbols ("ⓑⓛⓤⓔ") stays one word.
func separateSymbols(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r == '\ufe0f' || compatSymbol(r) }) {
		return s
	}
	const (
		none = iota
		plain
		symbol
	)
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 8)
	prev := none
	for i, r := range rs {
		kind := none
		switch {
		case compatSymbol(r) || (i+1 < len(rs) && rs[i+1] == '\ufe0f' && emojiCapable(r)):
			kind = symbol
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			kind = plain
		case unicode.IsMark(r) || ignorable(r):
			kind = prev // belongs to what it follows
		}
		if kind != none && prev != none && kind != prev {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
		prev = kind
	}
	return b.String()
}

// emojiCapable reports whether r, followed by U+FE0F, is shown as an
// emoji: a symbol, or a letterlike symbol such as ℹ — never a letter of a
// script, where U+FE0F is only a stray invisible character.
func emojiCapable(r rune) bool {
	if r >= 0x2100 && r <= 0x214F {
		return true
	}
	return r >= utf8.RuneSelf && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) && !ignorable(r) &&
		!unicode.Is(unicode.Cf, r)
}

// compatSymbol reports whether r is a symbol or a number form whose
// compatibility decomposition is made of letters or digits.
func compatSymbol(r rune) bool {
	if r < utf8.RuneSelf || !unicode.In(r, unicode.So, unicode.Sm, unicode.No, unicode.Nl) {
		return false
	}
	return strings.ContainsFunc(norm.NFKC.String(string(r)), func(c rune) bool { return unicode.IsLetter(c) || unicode.IsDigit(c) })
}
