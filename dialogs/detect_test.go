package dialogs

// Duress keyword detection, as a property over generated messages
// (DESIGN §3, issue 9 item 2).
//
// The generator knows the truth without asking the normaliser: keywords are
// spelt only with letters that the filler text never uses ("key" letters a–m,
// ก–ป, 香蕉…; filler n–z, พ–ฮ, 我很好…), so the only place the keyword can
// be is where the generator put it, and a keyword with one letter changed
// can be nowhere at all. Separators, emoji, marks and invisible characters
// carry no letters. The registered keyword is typed with its own random
// case, accents, widths and invisible characters, independent of the copy
// in the message.

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

var (
	detectPepper = []byte("detect-pepper-0123456789abcdef01")
	detectUser   = "user-detect"
)

// detect runs what the engine runs on a message: Normalize, then
// matchKeyword against the keyword as registered.
func detect(registered, message string) (bool, string) {
	k := NewKeyword(detectPepper, detectUser, registered)
	return matchKeyword(hmac.New(sha256.New, detectPepper), detectUser, k, Normalize(message))
}

// gen draws every choice of a generated case: from the fuzzer's bytes while
// they last, then from a PRNG seeded by them, so `go test -fuzz` steers the
// same generator the property test runs with fixed seeds.
type gen struct {
	data []byte
	rng  *rand.Rand
}

func newGen(seed uint64, data []byte) *gen {
	h := fnv.New64a()
	h.Write(data)
	seed ^= h.Sum64()
	return &gen{data: data, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

func (g *gen) intn(n int) int {
	if n <= 1 {
		return 0
	}
	if len(g.data) > 0 {
		v := int(g.data[0])
		g.data = g.data[1:]
		if n > 256 && len(g.data) > 0 {
			v = v<<8 | int(g.data[0])
			g.data = g.data[1:]
		}
		return v % n
	}
	return g.rng.IntN(n)
}

// chance is true num times in den.
func (g *gen) chance(num, den int) bool { return g.intn(den) < num }

func pick[T any](g *gen, xs []T) T { return xs[g.intn(len(xs))] }

// unit is one letter (Latin, Han) or one syllable (Thai, Lao, Khmer,
// Burmese): an optional leading vowel, the consonant that makes it a key or
// a filler unit, and the vowel signs or tone marks after it. The marks are
// part of the spelling there and are kept by Normalize.
type unit struct{ lead, cons, tail string }

// script describes how keywords and filler of one writing system are spelt.
type script struct {
	name     string
	unspaced bool     // written without spaces between words
	key      []string // consonants that only keywords use
	fill     []string // consonants that only filler uses
	leads    []string // leading vowels, written before the consonant
	tails    []string // signs after the consonant; "C" is a subscript consonant of the same set
	decorate func(g *gen, u unit) string
}

func (s *script) unit(g *gen, set []string, first bool) unit {
	u := unit{cons: pick(g, set)}
	if len(s.leads) > 0 && !first && g.chance(1, 4) {
		u.lead = pick(g, s.leads)
	}
	if len(s.tails) > 0 {
		u.tail = strings.ReplaceAll(pick(g, s.tails), "C", pick(g, set))
	}
	return u
}

func (s *script) render(g *gen, u unit) string {
	if s.decorate != nil {
		return s.decorate(g, u)
	}
	return u.lead + u.cons + u.tail
}

func split(s string) []string { return strings.Split(s, "") }

var (
	latinAccents = []string{"\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u030c", "\u0323", "\u0327", "\u0328"}
	vietVowel    = []string{"", "\u0302", "\u0306", "\u031b"}
	vietTone     = []string{"", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}
)

// decorateLatin writes a Latin letter as a person or a phone might: any
// case, accents (composed or not), full-width or mathematical bold.
func decorateLatin(g *gen, u unit, accents func(g *gen) string) string {
	c := []rune(u.cons)[0]
	upper := g.chance(1, 3)
	switch g.intn(8) {
	case 0:
		if upper {
			return string(rune(0xFF21+c-'a')) + accents(g)
		}
		return string(rune(0xFF41+c-'a')) + accents(g)
	case 1:
		if upper {
			return string(rune(0x1D400 + c - 'a'))
		}
		return string(rune(0x1D41A + c - 'a'))
	}
	s := string(c)
	if upper {
		s = strings.ToUpper(s)
	}
	s += accents(g)
	if g.chance(1, 2) {
		return norm.NFC.String(s)
	}
	return s
}

var (
	latin = &script{name: "latin", key: split("abcdefghijklm"), fill: split("nopqrstuvwxyz"),
		decorate: func(g *gen, u unit) string {
			return decorateLatin(g, u, func(g *gen) string {
				if g.chance(1, 3) {
					return pick(g, latinAccents)
				}
				return ""
			})
		}}
	vietnamese = &script{name: "vietnamese", key: split("abcdeghiklm"), fill: split("nopqrstuvxy"),
		decorate: func(g *gen, u unit) string {
			if u.cons == "d" && g.chance(1, 2) {
				return pick(g, []string{"đ", "Đ"})
			}
			return decorateLatin(g, u, func(g *gen) string { return pick(g, vietVowel) + pick(g, vietTone) })
		}}
	thai = &script{name: "thai", unspaced: true,
		key: split("กขคงจฉชซดตถทนบป"), fill: split("พฟมยรลวสหอฮผฝ"),
		leads: split("เแโใไ"),
		tails: []string{"", "", "ั", "ิ", "ี", "ึ", "ื", "ุ", "ู", "่", "้", "๊", "๋", "า", "ำ", "ะ", "ุ่", "ี้", "ั้", "่า"},
		decorate: func(g *gen, u unit) string {
			s := u.lead + u.cons + u.tail
			if g.chance(1, 2) {
				s = strings.ReplaceAll(s, "ำ", "\u0e4d\u0e32") // SARA AM typed as its two parts
			}
			return s
		}}
	lao = &script{name: "lao", unspaced: true,
		key: split("ກຂຄງຈຊຍດຕຖທນ"), fill: split("ບປຜຝພຟມຢຣລວສຫອຮ"),
		leads: split("ເແໂໃໄ"),
		tails: []string{"", "", "ັ", "ິ", "ີ", "ຶ", "ື", "ຸ", "ູ", "່", "້", "າ", "ະ", "ຳ", "ີ້", "່າ"},
		decorate: func(g *gen, u unit) string {
			s := u.lead + u.cons + u.tail
			if g.chance(1, 2) {
				s = strings.ReplaceAll(s, "ຳ", "\u0ecd\u0eb2")
			}
			return s
		}}
	khmer = &script{name: "khmer", unspaced: true,
		key: split("កខគឃងចឆជឈញដឋឌឍណត"), fill: split("ថទធនបផពភមយរលវសហឡអ"),
		tails:    []string{"", "", "ា", "ិ", "ី", "ឹ", "ឺ", "ុ", "ូ", "ួ", "ើ", "ែ", "ៃ", "ោ", "ៅ", "ំ", "ះ", "ុំ", "ាំ", "្C", "្Cា", "្Cុំ"},
		decorate: shuffleMarks}
	burmese = &script{name: "burmese", unspaced: true,
		key: split("ကခဂဃငစဆဇဈညဋဌ"), fill: split("ဍဎဏတထဒဓနပဖဗဘမယရလဝသဟအ"),
		tails:    []string{"", "", "ာ", "ိ", "ီ", "ု", "ူ", "ေ", "ဲ", "ံ", "း", "်", "ို", "ွ", "ျ", "ြ", "ှ", "ော", "ုံ", "ိုး", "ွံ့"},
		decorate: shuffleMarks}
	chinese = &script{name: "chinese", unspaced: true,
		key: split("香蕉苹果芒蓝色猫狗马鱼鸟花月山"), fill: split("我很好谢今天是的在有人不了这平安")}

	fillerScripts   = []*script{latin, vietnamese, thai, lao, khmer, burmese, chinese}
	unspacedScripts = []*script{thai, lao, khmer, burmese, chinese}
)

// shuffleMarks writes a Burmese or Khmer syllable with its runs of vowel
// signs in any order, as phones store them (Normalize sorts them).
func shuffleMarks(g *gen, u unit) string {
	rs := []rune(u.lead + u.cons + u.tail)
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && unicode.Is(unicode.Mn, rs[j]) {
			j++
		}
		for k := j - 1; k > i; k-- {
			l := i + g.intn(k-i+1)
			rs[k], rs[l] = rs[l], rs[k]
		}
		i = max(j, i+1)
	}
	return string(rs)
}

// A keyword is one or more words; each word is in one script.
type kwWord struct {
	sc    *script
	units []unit
}

type kwKind struct {
	name  string
	chars bool // matched by character windows (any unspaced script in it)
	make  func(g *gen) []kwWord
}

func words(g *gen, sc *script, nWords, minUnits, maxUnits int) []kwWord {
	var ws []kwWord
	for range nWords {
		w := kwWord{sc: sc}
		for i := range minUnits + g.intn(maxUnits-minUnits+1) {
			w.units = append(w.units, sc.unit(g, sc.key, len(ws) == 0 && i == 0))
		}
		ws = append(ws, w)
	}
	return ws
}

var kwKinds = []kwKind{
	{"latin", false, func(g *gen) []kwWord { return words(g, latin, 1+g.intn(3), 4, 9) }},
	{"vietnamese", false, func(g *gen) []kwWord { return words(g, vietnamese, 1+g.intn(3), 4, 7) }},
	{"thai", true, func(g *gen) []kwWord { return words(g, thai, 1, 3, 7) }},
	{"lao", true, func(g *gen) []kwWord { return words(g, lao, 1, 3, 7) }},
	{"khmer", true, func(g *gen) []kwWord { return words(g, khmer, 1, 3, 7) }},
	{"burmese", true, func(g *gen) []kwWord { return words(g, burmese, 1, 3, 7) }},
	{"chinese", true, func(g *gen) []kwWord { return words(g, chinese, 1, 4, 8) }},
	{"mixed", true, func(g *gen) []kwWord {
		other := pick(g, unspacedScripts)
		ws := append(words(g, latin, 1, 3, 6), words(g, other, 1, 2, 4)...)
		if g.chance(1, 2) {
			ws[0], ws[1] = ws[1], ws[0]
			ws[0].units[0].lead = ""
		}
		return ws
	}},
}

// Separators. None of them contains a letter.
var (
	spaces   = []string{" ", "  ", "\u00a0", "\u3000", "\t", "\n", "\u2003", " \n "}
	puncts   = []string{",", ".", "!", "?", "…", "—", "-", "(", ")", "«", "»", "「", "」", "。", "、", "，", "！", "¿", "\"", "'", ":", "/", "๏", "។", "။", "၊"}
	emojis   = []string{"☀️", "❤️", "☺︎", "👍🏽", "✌🏿", "👨‍👩‍👧", "🏳️‍🌈", "👩🏾‍💻", "🇹🇭", "🇻🇳", "🙏", "😀", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"}
	keycaps  = []string{"1️⃣", "#️⃣", "*️⃣", "7\u20e3", "0️⃣"}
	noBase   = []string{"\u0301", "\u20dd", "\u20e3", "\ufe0f", "\u0e49", "\u0ec9", "\u17c6", "\u1037", "\u102c", "\u093f", "\U0001f3fd"}
	ignores  = []string{"\u200b", "\u200c", "\u200d", "\u00ad", "\u2060", "\ufeff", "\u180e", "\u034f", "\ufe0f", "\ufe00", "\U000e0101", "\u2061", "\u200e", "\u200f", "\u202a", "\u202c", "\u202e", "\u2066", "\u2069", "\u061c", "\u3164", "\uffa0", "\u115f", "\U0001d173", "\U000e0001", "\U000e0041", "\u17b4", "\u180b"}
	sepKinds = []string{"space", "punct", "emoji", "keycap", "nobase", "ignorable", "glue", "any"}
)

// breaking is a separator that ends a word whatever is around it.
func breaking(g *gen, kind string) string {
	switch kind {
	case "space":
		return pick(g, spaces)
	case "punct":
		return maybe(g, " ") + pick(g, puncts) + maybe(g, pick(g, puncts)) + maybe(g, pick(g, spaces))
	case "emoji":
		s := maybe(g, " ") + pick(g, emojis)
		for g.chance(1, 3) {
			s += pick(g, emojis)
		}
		return s + maybe(g, " ")
	case "keycap":
		return maybe(g, " ") + pick(g, keycaps) + maybe(g, pick(g, emojis)) + maybe(g, " ")
	case "nobase":
		return breaking(g, pick(g, []string{"space", "punct", "emoji"})) + pick(g, noBase) + maybe(g, pick(g, noBase)) + maybe(g, " ")
	case "ignorable":
		return invisibles(g) + breaking(g, pick(g, []string{"space", "punct", "emoji", "keycap", "nobase"})) + invisibles(g)
	}
	return breaking(g, pick(g, sepKinds[:6]))
}

func maybe(g *gen, s string) string {
	if g.chance(1, 2) {
		return s
	}
	return ""
}

func invisibles(g *gen) string {
	var b strings.Builder
	for range 1 + g.intn(3) {
		b.WriteString(pick(g, ignores))
	}
	return b.String()
}

// sprinkle puts invisible characters between the runes of s, each gap with
// probability num/den.
func sprinkle(g *gen, s string, num, den int) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && g.chance(num, den) {
			b.WriteString(invisibles(g))
		}
		b.WriteRune(r)
	}
	return b.String()
}

// renderKeyword writes a keyword as typed: words joined by spaces or
// separators of kind inner (or, for character-window keywords, by
// nothing), units of
// unspaced scripts sometimes spaced, invisible characters inside when
// inside is set.
func renderKeyword(g *gen, ws []kwWord, chars, inside bool, inner string) string {
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			switch {
			case chars && g.chance(1, 3):
			case inner == "space" || g.chance(1, 2):
				b.WriteString(pick(g, spaces))
			case inner == "ignorable":
				b.WriteString(invisibles(g) + breaking(g, pick(g, []string{"space", "punct", "emoji", "nobase"})) + invisibles(g))
			default:
				b.WriteString(breaking(g, inner))
			}
		}
		for j, u := range w.units {
			if j > 0 && w.sc.unspaced && g.chance(1, 6) {
				b.WriteString(" ")
			}
			b.WriteString(w.sc.render(g, u))
		}
	}
	if inside {
		return sprinkle(g, b.String(), 1, 4)
	}
	return b.String()
}

// mutate changes one letter (or syllable) of the keyword: replaced by
// another keyword consonant, or — strictly inside the keyword, where a
// character window cannot simply skip it — one inserted or removed.
//
// For character windows, a change that leaves the keyword inside (inserting
// a copy of the letter before, "ab" → "aab") is not a change: it is drawn
// again, and the last resort is a substitution, which always is one.
func mutate(g *gen, ws []kwWord, chars bool) []kwWord {
	for range 8 {
		out := mutateOnce(g, ws, true)
		if !chars || !strings.Contains(spelling(out), spelling(ws)) {
			return out
		}
	}
	return mutateOnce(g, ws, false)
}

// spelling is the keyword's letters as one plain string, without case,
// accents, spaces or invisible characters: what character windows see.
func spelling(ws []kwWord) string {
	var b strings.Builder
	for _, w := range ws {
		for _, u := range w.units {
			b.WriteString(u.lead + u.cons + u.tail)
		}
	}
	return b.String()
}

func mutateOnce(g *gen, ws []kwWord, insertOrDelete bool) []kwWord {
	out := make([]kwWord, len(ws))
	total := 0
	for i, w := range ws {
		out[i] = kwWord{sc: w.sc, units: slices.Clone(w.units)}
		total += len(w.units)
	}
	pos := g.intn(total)
	wi := 0
	for pos >= len(out[wi].units) {
		pos -= len(out[wi].units)
		wi++
	}
	w := &out[wi]
	inner := insertOrDelete && (wi > 0 || pos > 0) && (wi < len(out)-1 || pos < len(w.units)-1)
	switch op := g.intn(3); {
	case op == 1 && inner:
		u := w.sc.unit(g, w.sc.key, false)
		w.units = slices.Insert(w.units, pos, u)
	case op == 2 && inner && len(w.units) > 1:
		w.units = slices.Delete(w.units, pos, pos+1)
	default:
		old := w.units[pos].cons
		for w.units[pos].cons == old {
			w.units[pos].cons = pick(g, w.sc.key)
		}
	}
	return out
}

// fillerWord is a word of filler letters in sc.
func fillerWord(g *gen, sc *script) string {
	var b strings.Builder
	for i := range 1 + g.intn(6) {
		b.WriteString(sc.render(g, sc.unit(g, sc.fill, i == 0)))
	}
	return b.String()
}

// filler is text of about n runes: filler words in any script, joined by
// spaces, punctuation, emoji or nothing.
func filler(g *gen, n int) string {
	var b strings.Builder
	runes := 0
	for runes < n {
		if runes > 0 {
			var sep string
			switch g.intn(10) {
			case 0, 1:
				sep = breaking(g, "any")
			case 2:
				sep = ""
			default:
				sep = " "
			}
			b.WriteString(sep)
			runes += utf8.RuneCountInString(sep)
		}
		w := fillerWord(g, pick(g, fillerScripts))
		b.WriteString(w)
		runes += utf8.RuneCountInString(w)
	}
	return b.String()
}

// detectCase is one generated message with the keyword at a known place.
type detectCase struct {
	registered  string // the keyword as typed at registration
	left, right string // everything before and after it in the message
	keyword     string // the keyword as typed in the message
	mutated     string // the keyword with one letter changed, as typed
}

func (c detectCase) message() string        { return c.left + c.keyword + c.right }
func (c detectCase) mutatedMessage() string { return c.left + c.mutated + c.right }

// generate builds a message of at most maxRunes runes with the keyword of
// kind placed between separators of sepKind.
func generate(g *gen, kind kwKind, sepKind string, maxRunes int) detectCase {
	ws := kind.make(g)
	// Invisible characters inside the keyword belong to the "ignorable"
	// class (and "any"), so that every other class fails on its own.
	invisible := sepKind == "ignorable" || sepKind == "any"
	// Between the words of the keyword: separators of the class under test
	// when they are plain ones (not keycaps: a digit would be a word).
	inner := "punct"
	switch sepKind {
	case "space", "punct", "emoji", "nobase", "ignorable":
		inner = sepKind
	case "any":
		inner = pick(g, []string{"space", "punct", "emoji", "nobase", "ignorable"})
	}
	c := detectCase{
		registered: maybe(g, " ") + renderKeyword(g, ws, kind.chars, invisible && g.chance(1, 3), inner) + maybe(g, pick(g, []string{" ", "!"})),
	}
	inside := sepKind == "ignorable" || (invisible && g.chance(1, 3))
	c.keyword = renderKeyword(g, ws, kind.chars, inside, inner)
	c.mutated = renderKeyword(g, mutate(g, ws, kind.chars), kind.chars, inside, inner)

	budget := maxRunes - 2*max(utf8.RuneCountInString(c.keyword), utf8.RuneCountInString(c.mutated)) - 60
	nLeft, nRight := 0, 0
	switch g.intn(4) { // alone, at the start, at the end, in the middle
	case 1:
		nRight = g.intn(budget + 1)
	case 2:
		nLeft = g.intn(budget + 1)
	case 3:
		nLeft = g.intn(budget + 1)
		nRight = g.intn(budget - nLeft + 1)
	}
	sepKindAt := func() string {
		if sepKind == "any" {
			return pick(g, sepKinds[:7])
		}
		return sepKind
	}
	side := func(n int, before bool) string {
		var fill, sep string
		sk := sepKindAt()
		if n > 0 {
			fill = filler(g, n)
		}
		if sk == "glue" {
			// No separator: the keyword touches a word of another script
			// (or, for character windows, of any script).
			sc := pick(g, unspacedScripts)
			if kind.chars {
				sc = pick(g, fillerScripts)
			}
			w := fillerWord(g, sc)
			if before {
				fill = fill + maybe(g, " ") + w
			} else {
				fill = w + maybe(g, " ") + fill
			}
			sep = maybe(g, invisibles(g))
		} else if n > 0 || g.chance(1, 2) {
			sep = breaking(g, sk)
		}
		if before {
			return fill + sep
		}
		return sep + fill
	}
	c.left, c.right = side(nLeft, true), side(nRight, false)
	switch g.intn(4) {
	case 0:
		c.left, c.keyword, c.mutated, c.right = norm.NFD.String(c.left), norm.NFD.String(c.keyword), norm.NFD.String(c.mutated), norm.NFD.String(c.right)
	case 1:
		c.left, c.keyword, c.mutated, c.right = norm.NFC.String(c.left), norm.NFC.String(c.keyword), norm.NFC.String(c.mutated), norm.NFC.String(c.right)
	}
	return c
}

// checkCase asserts the three properties of one case and returns a failure
// description, or "". strict is false when arbitrary fuzz text surrounds
// the message and may itself hold the keyword: then only "found" is
// asserted.
func checkCase(c detectCase, strict bool) string {
	found, rest := detect(c.registered, c.message())
	if !found {
		return "keyword not found"
	}
	if !strict {
		return ""
	}
	if want := Normalize(c.left + " " + c.right); rest != want {
		return fmt.Sprintf("rest of the message:\n got %+q\nwant %+q", clip(rest), clip(want))
	}
	if found, _ := detect(c.registered, c.mutatedMessage()); found {
		return fmt.Sprintf("keyword with one letter changed (%+q) was found", c.mutated)
	}
	return ""
}

func clip(s string) string {
	if rs := []rune(s); len(rs) > 240 {
		return string(rs[:100]) + fmt.Sprintf(" …(%d runes)… ", len(rs)-200) + string(rs[len(rs)-100:])
	}
	return s
}

func describe(c detectCase) string {
	return fmt.Sprintf("registered %+q\nmessage    %+q\n  keyword  %+q at rune %d of %d", c.registered,
		clip(c.message()), c.keyword, utf8.RuneCountInString(c.left), utf8.RuneCountInString(c.message()))
}

// TestKeywordDetection: for every kind of keyword and every kind of
// separator, a keyword placed anywhere in a message is found, the rest of
// the message is what surrounds it, and the keyword with one letter changed
// is not found. Messages are short, except in the "long" subtests, which
// go up to 65,536 characters (the longest WhatsApp message).
func TestKeywordDetection(t *testing.T) {
	const perClass = 100
	for ki, kind := range kwKinds {
		for si, sk := range sepKinds {
			t.Run(kind.name+"/"+sk, func(t *testing.T) {
				t.Parallel()
				fails := 0
				for i := range perClass {
					seed := uint64(ki*1_000_000 + si*1_000 + i)
					c := generate(newGen(seed, nil), kind, sk, 40+int(seed%300))
					if msg := checkCase(c, true); msg != "" {
						t.Errorf("seed %d: %s\n%s", seed, msg, describe(c))
						if fails++; fails == 3 {
							return
						}
					}
				}
			})
		}
		t.Run(kind.name+"/long", func(t *testing.T) {
			t.Parallel()
			for i, n := range []int{4_200, 20_000, 65_536} {
				seed := uint64(ki*1_000_000 + 999_000 + i)
				g := newGen(seed, nil)
				c := generate(g, kind, "any", n)
				// Put the keyword past the first 4,096 characters.
				if utf8.RuneCountInString(c.left) < 4_100 {
					c.left = filler(g, n-utf8.RuneCountInString(c.message())-80) + " " + c.left
				}
				if got := utf8.RuneCountInString(c.message()); got > 65_536 {
					t.Fatalf("generator made %d runes", got)
				}
				if msg := checkCase(c, true); msg != "" {
					t.Errorf("seed %d: %s\n%s", seed, msg, describe(c))
				}
			}
		})
	}
}

// FuzzKeywordDetection lets the fuzzer drive the same generator (data are
// its choices) and put arbitrary text around the message. The keyword must
// always be found; when the arbitrary text cannot hold the keyword (it has
// no keyword letters), the rest and the changed keyword are checked too.
func FuzzKeywordDetection(f *testing.F) {
	f.Add([]byte{0, 0, 0}, "")
	f.Add([]byte{2, 5, 1}, "I am fine ☀️")
	f.Add([]byte{3, 6, 2}, "ปลอดภัย")
	f.Fuzz(func(t *testing.T, data []byte, free string) {
		if len(data) == 0 || utf8.RuneCountInString(free) > 4_096 {
			return
		}
		g := newGen(0, data[1:])
		kind := kwKinds[int(data[0])%len(kwKinds)]
		sk := sepKinds[int(data[0]/16)%len(sepKinds)]
		n := 40 + g.intn(400)
		if g.chance(1, 32) {
			n = 65_536 - utf8.RuneCountInString(free) - 1
		}
		c := generate(g, kind, sk, n)
		strict := true
		if free != "" {
			c.left = free + " " + c.left
			strict = !hasKeyLetter(Normalize(free))
		}
		if utf8.RuneCountInString(c.message()) > maxMessageRunes {
			// Longer than any channel delivers (the generator can overshoot
			// n by a grapheme's runes): the engine cuts such a message at
			// maxMessageRunes by design (normalize.go), so its rest is cut
			// too. TestKeywordDetection's "long" cases cover messages up to it.
			return
		}
		if msg := checkCase(c, strict); msg != "" {
			t.Errorf("%s\n%s", msg, describe(c))
		}
	})
}

// hasKeyLetter reports whether normalised text holds any letter that
// keywords are spelt with.
func hasKeyLetter(s string) bool {
	for _, kind := range []*script{latin, vietnamese, thai, lao, khmer, burmese, chinese} {
		for _, k := range kind.key {
			if strings.Contains(s, k) {
				return true
			}
		}
	}
	return false
}

// TestWindowsAreEveryCandidate: the one-pass window enumerations yield
// exactly the candidates a brute-force search would: every run of whole
// words of n runes, every run of n non-space runes — no window skipped
// (a missed alarm), none invented.
func TestWindowsAreEveryCandidate(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	letters := []string{"a", "b", "é", "ก", "ั", "香", "ខ", "្", "ー"}
	type window struct {
		text     string
		from, to int
	}
	for range 3_000 {
		var words []string
		for range rng.IntN(12) {
			var w strings.Builder
			for range 1 + rng.IntN(5) {
				w.WriteString(letters[rng.IntN(len(letters))])
			}
			words = append(words, w.String())
		}
		text := strings.Join(words, " ")
		for n := 1; n <= 12; n++ {
			var got, want []window
			wordWindows(text, n, func(b []byte, from, to int) { got = append(got, window{string(b), from, to}) })
			starts := []int{0}
			for i := range len(text) {
				if text[i] == ' ' {
					starts = append(starts, i+1)
				}
			}
			for _, s := range starts {
				for e := s + 1; e <= len(text); e++ {
					if (e == len(text) || text[e] == ' ') && utf8.RuneCountInString(text[s:e]) == n && s < len(text) {
						want = append(want, window{text[s:e], s, e})
					}
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("word windows of %d in %+q:\n got %v\nwant %v", n, text, got, want)
			}

			got, want = nil, nil
			charWindows(text, n, func(b []byte, from, to int) { got = append(got, window{string(b), from, to}) })
			type at struct{ r, off int }
			var rs []at
			for i, r := range text {
				if r != ' ' {
					rs = append(rs, at{int(r), i})
				}
			}
			for i := 0; i+n <= len(rs); i++ {
				var b strings.Builder
				for _, x := range rs[i : i+n] {
					b.WriteRune(rune(x.r))
				}
				last := rs[i+n-1]
				want = append(want, window{b.String(), rs[i].off, last.off + utf8.RuneLen(rune(last.r))})
			}
			if !slices.Equal(got, want) {
				t.Fatalf("char windows of %d in %+q:\n got %v\nwant %v", n, text, got, want)
			}
		}
	}
}

// TestKeywordRest: what the embassy receives is the message with the
// keyword's first occurrence cut out, normalised; a message without the
// keyword is returned whole.
func TestKeywordRest(t *testing.T) {
	for _, c := range []struct{ keyword, message, rest string }{
		{"blue mango", "I am fine, thanks. Blue Mango!", "i am fine thanks"},
		{"blue mango", "blue mango", ""},
		{"blue mango", "blue mango, blue mango", "blue mango"},
		{"blue mango", "one blue mango two blue mango three", "one two blue mango three"},
		{"กล้วยหอม", "กล้วยหอมนะกล้วยหอม", "นะกล้วยหอม"},
		{"blue mango", "ok ☀️ blue mango 👍🏽 boss is here", "ok boss is here"},
		{"blue mango", "ปลอดภัยblue mango", "ปลอดภัย"},
		{"กล้วยหอม", "สบายดีกล้วยหอมนะ", "สบายดี นะ"},
		{"กล้วยหอม", "ok กล้วย หอม thanks", "ok thanks"},
		{"香蕉苹果", "我很好香蕉苹果谢谢", "我很好 谢谢"},
		{"blue 香蕉", "OK blue香蕉 bye", "ok bye"},
	} {
		found, rest := detect(c.keyword, c.message)
		if !found || rest != c.rest {
			t.Errorf("keyword %q in %q: found=%v rest %q, want rest %q", c.keyword, c.message, found, rest, c.rest)
		}
	}
	if found, rest := detect("blue mango", "I am fine, green mango"); found || rest != "i am fine green mango" {
		t.Errorf("no keyword: found=%v rest %q, want the whole normalised message", found, rest)
	}
}

// countingHash counts the windows hashed.
type countingHash struct {
	hash.Hash
	sums int
}

func (c *countingHash) Sum(b []byte) []byte { c.sums++; return c.Hash.Sum(b) }

// TestMatchWorkIndependentOfMatch: the number of windows hashed is the same
// for a message holding the keyword and for the same message with every
// keyword letter replaced by another (same shape, no keyword): matching
// goes on after a match, so its time does not say whether there was one.
func TestMatchWorkIndependentOfMatch(t *testing.T) {
	rotate := map[rune]rune{}
	for _, sc := range []*script{latin, vietnamese, thai, lao, khmer, burmese, chinese} {
		for i, k := range sc.key {
			rotate[[]rune(k)[0]] = []rune(sc.key[(i+1)%len(sc.key)])[0]
		}
	}
	for ki, kind := range kwKinds {
		for i := range 40 {
			c := generate(newGen(uint64(ki*1000+i), nil), kind, "any", 600)
			k := NewKeyword(detectPepper, detectUser, c.registered)
			with := Normalize(c.message())
			without := strings.Map(func(r rune) rune {
				if o, ok := rotate[r]; ok {
					return o
				}
				return r
			}, with)
			m1 := &countingHash{Hash: hmac.New(sha256.New, detectPepper)}
			m2 := &countingHash{Hash: hmac.New(sha256.New, detectPepper)}
			f1, _ := matchKeyword(m1, detectUser, k, with)
			f2, _ := matchKeyword(m2, detectUser, k, without)
			if !f1 || f2 {
				t.Fatalf("%s: found %v with the keyword, %v without\n%s", kind.name, f1, f2, describe(c))
			}
			if m1.sums != m2.sums || m1.sums == 0 {
				t.Fatalf("%s: %d windows hashed with the keyword, %d without\n%s", kind.name, m1.sums, m2.sums, describe(c))
			}
		}
	}
}
