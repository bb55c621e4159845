package dialogs

import (
	"strings"
	"unicode/utf8"
)

// The refusal rules for a new duress keyword (DESIGN §3, "No false alarms
// by construction"). A keyword that an ordinary message can contain would
// raise duress.triggered — with do_not_contact — on every ordinary check-in,
// and real alarms would drown; one that contains a help word would raise a
// visible SOS each time it is used in the taught form "OK <keyword>".

// vocabulary is every phrase the bot reacts to, in every supported language,
// prepared for the refusal rules.
type vocabulary struct {
	phrases []string        // every check-in, help, stop, pause, yes/no, command … phrase
	words   map[string]bool // every word of a phrase of a space-delimited script
	joined  map[string]bool // every phrase with its spaces removed, for unspaced scripts
	heads   map[string]bool // every non-empty prefix of a joined phrase
	tails   map[string]bool // every non-empty suffix of a joined phrase
	help    []string        // every help phrase
	checkin []string        // every check-in phrase
	longest int             // runes of the longest joined phrase
}

func buildVocabulary(cat Catalog) vocabulary {
	v := vocabulary{words: map[string]bool{}, joined: map[string]bool{}, heads: map[string]bool{}, tails: map[string]bool{}}
	add := func(p string, help bool) {
		if p == "" {
			return
		}
		v.phrases = append(v.phrases, p)
		if help {
			v.help = append(v.help, p)
		}
		for _, w := range strings.Fields(p) {
			v.words[w] = true
		}
		j := strings.ReplaceAll(p, " ", "")
		v.joined[j] = true
		v.longest = max(v.longest, utf8.RuneCountInString(j))
		rs := []rune(j)
		for i := 1; i <= len(rs); i++ {
			v.heads[string(rs[:i])], v.tails[string(rs[len(rs)-i:])] = true, true
		}
	}
	for _, lang := range cat.Languages() {
		w := cat.Words(lang.Tag)
		for _, p := range w.Help {
			add(p, true)
		}
		v.checkin = append(v.checkin, w.Checkin...)
		for _, list := range [][]string{w.Checkin, w.Stop, w.Pause, w.Delete, w.Status,
			w.Settings, w.MyData, w.Language, w.Menu, w.Start, w.Yes, w.No, w.Skip, w.Snooze} {
			for _, p := range list {
				add(p, false)
			}
		}
	}
	for _, c := range commands {
		add(strings.TrimPrefix(c.name, "/"), false)
	}
	return v
}

// madeOfPhrases reports whether s (spaces removed) can be cut entirely
// into phrases of the vocabulary — "平安好的" is "平安" then "好的".
func (v vocabulary) madeOfPhrases(s string) bool {
	rs := []rune(s)
	ok := make([]bool, len(rs)+1)
	ok[0] = true
	for i := 1; i <= len(rs); i++ {
		for j := max(0, i-v.longest); j < i && !ok[i]; j++ {
			ok[i] = ok[j] && v.joined[string(rs[j:i])]
		}
	}
	return ok[len(rs)]
}

// spansPhrases reports whether s (spaces removed) can be found in a run of
// ordinary phrases typed one after another: the end of one phrase, any
// number of whole phrases, the start of another ("ดีโอเค" in "สบายดี
// โอเค"; "很好平安" in "我很好，平安"). Character windows ignore the spaces
// and punctuation between phrases, so such a keyword would raise duress on
// an ordinary check-in.
func (v vocabulary) spansPhrases(s string) bool {
	rs := []rune(s)
	// from[i]: rs[:i] is the end of a phrase followed by whole phrases.
	from := make([]bool, len(rs)+1)
	from[0] = true
	for i := 1; i <= len(rs); i++ {
		from[i] = v.tails[string(rs[:i])]
		for j := max(0, i-v.longest); j < i && !from[i]; j++ {
			from[i] = from[j] && v.joined[string(rs[j:i])]
		}
	}
	for j := range len(rs) + 1 {
		if from[j] && (j == len(rs) || v.heads[string(rs[j:])]) {
			return true
		}
	}
	return false
}

// keywordProblem returns the id of the message explaining why typed cannot
// be a keyword, or "" if it can. Refused: shorter than 4 letters, longer
// than 64, the citizen's name or part of it; anything an ordinary message
// of any supported language can contain — a phrase, made only of words of
// phrases, inside a phrase of an unspaced script, or within one edit of a
// phrase; and anything containing a help phrase.
func (e *Engine) keywordProblem(typed, name string) string {
	form, chars := keywordForm(typed)
	joined := strings.ReplaceAll(form, " ", "")
	switch {
	case utf8.RuneCountInString(joined) < minKeywordLetters:
		return "KeywordTooShort"
	case utf8.RuneCountInString(form) > maxKeywordRunes:
		return "KeywordTooLong"
	}
	if n := Normalize(name); n != "" {
		if form == n || joined == strings.ReplaceAll(n, " ", "") {
			return "KeywordIsName"
		}
		for _, part := range strings.Fields(n) {
			if form == part {
				return "KeywordIsName"
			}
		}
	}
	v := e.wordIndex().vocab
	if chars && (v.madeOfPhrases(joined) || v.spansPhrases(joined)) {
		return "KeywordIsCommonWord" // character windows would find it in ordinary text
	}
	if !chars {
		allKnown := true
		for _, w := range strings.Fields(form) {
			allKnown = allKnown && v.words[w]
		}
		if allKnown {
			return "KeywordIsCommonWord"
		}
	}
	for _, p := range v.phrases {
		if withinOneEdit(form, p) || withinOneEdit(joined, strings.ReplaceAll(p, " ", "")) {
			return "KeywordIsCommonWord"
		}
		if hasUnspaced(p) && strings.Contains(strings.ReplaceAll(p, " ", ""), joined) {
			return "KeywordIsCommonWord" // inside a phrase of an unspaced script
		}
	}
	for _, c := range v.checkin {
		if beginsWith(form, c) || beginsWith(joined, strings.ReplaceAll(c, " ", "")) {
			// Typed alone it would be a check-in, not a keyword: the
			// taught form "OK <keyword>" must stay unambiguous.
			return "KeywordIsCommonWord"
		}
	}
	for _, h := range v.help {
		if hasPhrase(form, h) || (hasUnspaced(h) && strings.Contains(joined, strings.ReplaceAll(h, " ", ""))) {
			return "KeywordIsCommonWord"
		}
	}
	return ""
}

// withinOneEdit reports whether a and b differ by at most one insertion,
// deletion or substitution of a rune.
func withinOneEdit(a, b string) bool {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > len(rb) {
		ra, rb = rb, ra
	}
	if len(rb)-len(ra) > 1 {
		return false
	}
	i := 0
	for i < len(ra) && ra[i] == rb[i] {
		i++
	}
	if len(ra) == len(rb) {
		return string(ra[i+min(1, len(ra)-i):]) == string(rb[i+min(1, len(rb)-i):])
	}
	return string(ra[i:]) == string(rb[i+1:])
}
