package dialogs

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"strings"
	"unicode/utf8"
)

// minKeywordLetters is the shortest keyword accepted (DESIGN §2: shorter
// than 4 letters is refused), counted in runes without spaces.
const minKeywordLetters = 4

// maxKeywordRunes keeps keywords typeable and windows cheap.
const maxKeywordRunes = 64

// hashKeyword computes HMAC-SHA256(pepper, userKey ‖ 0x00 ‖ normalised).
func hashKeyword(mac hash.Hash, userKey, normalised string) []byte {
	mac.Reset()
	mac.Write([]byte(userKey))
	mac.Write([]byte{0})
	mac.Write([]byte(normalised))
	return mac.Sum(nil)
}

// keywordForm returns the normalised form of a typed keyword as it is
// hashed, and whether it is matched by character windows.
func keywordForm(typed string) (form string, chars bool) {
	n := Normalize(typed)
	if hasUnspaced(n) {
		return strings.ReplaceAll(n, " ", ""), true
	}
	return n, false
}

// NewKeyword derives the stored form of a keyword. The word itself is not
// kept anywhere.
func NewKeyword(pepper []byte, userKey, typed string) Keyword {
	form, chars := keywordForm(typed)
	mac := hmac.New(sha256.New, pepper)
	return Keyword{Hash: hashKeyword(mac, userKey, form), Len: utf8.RuneCountInString(form), Chars: chars}
}

// matchKeyword looks for k inside the normalised text (DESIGN §3). It
// returns whether the keyword is there and the text with its first
// occurrence cut out (the text itself when it is not there), for the
// embassy's copy of the message.
//
// The whole text is examined and every candidate window is hashed, even
// after a match, so the time taken depends on the text and the keyword's
// length, never on whether the keyword is in the text.
//
// Space-delimited scripts are matched by word n-grams: the keyword must be
// whole words ("blue mango" does not match "blue mangoes"); there is at most
// one window per word, found in one pass. Keywords in unspaced scripts are
// matched by character windows over the text with its spaces removed, so
// they are found inside running Thai or Chinese text and beside Latin
// words: one window per character, each of k.Len ≤ maxKeywordRunes runes.
// A stored length beyond that is no keyword NewKeyword makes after
// keywordProblem and is not searched, so the work stays bounded.
func matchKeyword(mac hash.Hash, userKey string, k Keyword, text string) (bool, string) {
	if !k.Set() || k.Len <= 0 || k.Len > maxKeywordRunes {
		return false, text
	}
	prefix := append([]byte(userKey), 0)
	var sum [sha256.Size]byte
	found, from, to := false, 0, 0 // byte span [from, to) of the first match
	check := func(candidate []byte, a, b int) {
		mac.Reset()
		mac.Write(prefix)
		mac.Write(candidate)
		if hmac.Equal(mac.Sum(sum[:0]), k.Hash) && !found {
			found, from, to = true, a, b
		}
	}
	if k.Chars {
		charWindows(text, k.Len, check)
	} else {
		wordWindows(text, k.Len, check)
	}
	// The same work whether found or not.
	rest := strings.Join(strings.Fields(text[:from]+" "+text[to:]), " ")
	if !found {
		return false, text
	}
	return true, rest
}

// charWindows calls check with every run of n consecutive non-space runes
// of text, as bytes, and its byte span in text.
func charWindows(text string, n int, check func(window []byte, from, to int)) {
	packed := make([]byte, 0, len(text)) // text without its spaces
	type pos struct{ packed, text int }
	ring := make([]pos, n+1) // where the last n+1 runes start
	count := 0
	for t, r := range text {
		if r == ' ' {
			continue
		}
		ring[count%(n+1)] = pos{len(packed), t}
		packed = utf8.AppendRune(packed, r)
		count++
		if count >= n {
			first := ring[(count-n)%(n+1)]
			check(packed[first.packed:], first.text, t+utf8.RuneLen(r))
		}
	}
}

// wordWindows calls check with every run of whole words of text that is
// exactly n runes long (spaces included), as bytes, and its byte span.
// Two cursors move forward over the words once each: linear in the text.
func wordWindows(text string, n int, check func(window []byte, from, to int)) {
	b := []byte(text)
	lo, rlo := 0, 0  // start of the window's first word: byte, rune
	hi, rhi := -1, 0 // end of the window's last word: byte, rune
	for lo < len(b) {
		if hi < lo {
			end, runes := wordAt(b, lo)
			hi, rhi = end, rlo+runes
		}
		for rhi-rlo < n && hi < len(b) {
			end, runes := wordAt(b, hi+1)
			hi, rhi = end, rhi+1+runes
		}
		if rhi-rlo == n {
			check(b[lo:hi], lo, hi)
		}
		end, runes := wordAt(b, lo)
		if end >= len(b) {
			break
		}
		lo, rlo = end+1, rlo+runes+1
	}
}

// wordAt returns the end of the word that starts at byte i of b and its
// length in runes.
func wordAt(b []byte, i int) (end, runes int) {
	for end = i; end < len(b) && b[end] != ' '; runes++ {
		_, size := utf8.DecodeRune(b[end:])
		end += size
	}
	return end, runes
}
