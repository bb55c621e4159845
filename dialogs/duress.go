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

// matchKeyword looks for k inside the normalised text. It examines every
// candidate window, even after a match, so the time it takes depends on the
// text's length and not on whether the keyword is in it. It returns whether
// the keyword was found and the text with the first occurrence cut out.
//
// Space-delimited scripts are matched by word n-grams: the keyword must be
// whole words ("blue mango" does not match "blue mangoes"). Keywords in
// unspaced scripts are matched by character windows over the text with its
// spaces removed, so they are found inside running Thai or Chinese text and
// beside Latin words.
func matchKeyword(mac hash.Hash, userKey string, k Keyword, text string) (bool, string) {
	if !k.Set() || k.Len == 0 {
		return false, text
	}
	var sum [sha256.Size]byte
	msg := make([]byte, 0, len(userKey)+1+4*k.Len)
	found, from, to := false, 0, 0 // byte span [from, to) of the first match
	check := func(candidate []byte, a, b int) {
		mac.Reset()
		mac.Write(append(append(append(msg[:0], userKey...), 0), candidate...))
		if hmac.Equal(mac.Sum(sum[:0]), k.Hash) && !found {
			found, from, to = true, a, b
		}
	}
	if k.Chars {
		// Windows of k.Len non-space runes; starts/ends keep byte offsets so
		// a window maps back to the text.
		type pos struct{ start, end int }
		var runes []pos
		for i, r := range text {
			if r != ' ' {
				runes = append(runes, pos{i, i + utf8.RuneLen(r)})
			}
		}
		var window []byte
		for i := 0; i+k.Len <= len(runes); i++ {
			window = window[:0]
			for _, p := range runes[i : i+k.Len] {
				window = append(window, text[p.start:p.end]...)
			}
			check(window, runes[i].start, runes[i+k.Len-1].end)
		}
	} else {
		// Each word start; a window is a run of whole words of exactly
		// k.Len runes (Normalize leaves single spaces between words).
		for start := 0; start < len(text); {
			end, n := start, 0
			for end < len(text) && n < k.Len {
				_, size := utf8.DecodeRuneInString(text[end:])
				end, n = end+size, n+1
			}
			if n == k.Len && (end == len(text) || text[end] == ' ') {
				check([]byte(text[start:end]), start, end)
			}
			next := strings.IndexByte(text[start:], ' ')
			if next < 0 {
				break
			}
			start += next + 1
		}
	}
	if !found {
		return false, text
	}
	return true, strings.Join(strings.Fields(text[:from]+" "+text[to:]), " ")
}
