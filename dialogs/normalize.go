package dialogs

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// maxMatchRunes bounds how much of one message is examined for words and the
// duress keyword. Telegram caps a message at 4,096 characters; anything
// longer is cut, so a 10,000-character paste costs the same as a long message.
const maxMatchRunes = 4096

var folder = cases.Fold()

// Normalize turns what a person typed into the form used for every
// comparison: keywords, command words and choice labels. It applies, in order:
// valid UTF-8, Unicode NFKC, case folding, removal of combining marks on
// letters of scripts that write them as optional accents (Latin, Greek,
// Cyrillic — so "Café" and "cafe" match, while Thai, Lao, Khmer and Burmese
// vowel signs are kept because they change the word), Vietnamese đ → d,
// punctuation and symbols turned into spaces, and runs of space collapsed.
//
// It is deterministic and allocation-light because it runs on every message.
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
	if len(s) > maxMatchRunes {
		s = s[:maxMatchRunes]
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

func normalizeUnicode(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, " ")
	}
	if utf8.RuneCountInString(s) > maxMatchRunes {
		s = string([]rune(s)[:maxMatchRunes])
	}
	s = norm.NFKC.String(s)
	s = folder.String(s)
	s = norm.NFD.String(s)

	var b strings.Builder
	b.Grow(len(s))
	var prev rune // last base rune written, for deciding whether a mark is optional
	space := true // suppress leading space
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r):
			if optionalMarks(prev) {
				continue
			}
			b.WriteRune(r)
		case r == 'đ':
			b.WriteRune('d')
			prev, space = 'd', false
		case r > unicode.MaxASCII && unicode.Is(unicode.Nd, r):
			d := digitValue(r) // Thai, Lao, Khmer, Burmese … digits read as 0-9
			b.WriteRune(d)
			prev, space = d, false
		case unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mc, r):
			b.WriteRune(r)
			prev, space = r, false
		default: // spaces, punctuation, symbols, controls, emoji
			if !space {
				b.WriteByte(' ')
				space = true
			}
			prev = 0
		}
	}
	out := norm.NFC.String(b.String())
	return sortMarks(strings.TrimRight(out, " "))
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

// sortMarks puts runs of Burmese and Khmer combining marks in code point
// order. Phones store the same-looking syllable with its vowel signs in
// different orders (Burmese "ို" and "ုိ"), and Unicode normalisation does
// not reorder them; for comparing words and keywords, one order is enough.
func sortMarks(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.In(r, unicode.Myanmar, unicode.Khmer) }) {
		return s
	}
	rs := []rune(s)
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && unicode.Is(unicode.Mn, rs[j]) && unicode.In(rs[j], unicode.Myanmar, unicode.Khmer) {
			j++
		}
		if j-i > 1 {
			slices.Sort(rs[i:j])
		}
		i = max(j, i+1)
	}
	return string(rs)
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
