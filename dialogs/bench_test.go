package dialogs_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/checkinbot/checkinbot/dialogs"
)

// BenchmarkEngine measures the pure engine — no store, no I/O — in events
// per second, per kind of event and for a mix. The mix is one of each
// kind, so the rare, expensive /mydata (twenty fields rendered) weighs as
// much as a check-in; real traffic is mostly check-ins and timers.
func BenchmarkEngine(b *testing.B) {
	e := newEngine(b)
	st := registered(b, e)
	now := testNow.Add(time.Hour)
	due := st
	due.Timer, due.NextDue = now, now
	kinds := []struct {
		name  string
		state dialogs.State
		in    dialogs.Input
	}{
		{"checkin", st, textInput("ok")},
		{"duress-in-sentence", st, textInput("I'm fine today, thanks. blue mango")},
		{"unknown-text", st, textInput("what is this?")},
		{"mydata", st, textInput("/mydata")},
		{"due-prompt", due, dialogs.Input{Kind: dialogs.KindTimer, Key: st.Key}},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e.Handle(k.state, k.in, now)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	b.Run("mix", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := kinds[i%len(kinds)]
			e.Handle(k.state, k.in, now)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// detectTexts are chat-like texts to repeat up to a length: English and
// Thai, as typed.
var detectTexts = map[string]string{
	"english": "I am fine, thanks. Work was long today and the boss was ok. ",
	"thai":    "สบายดีครับ วันนี้ทำงานเหนื่อยมาก แต่ก็โอเค ",
}

// sized repeats text to exactly n runes and ends it with tail.
func sized(text, tail string, n int) string {
	rs := []rune(strings.Repeat(text, n/utf8.RuneCountInString(text)+1))
	return string(rs[:n-utf8.RuneCountInString(tail)]) + tail
}

// BenchmarkDetect measures what the engine does for duress on every message
// of a registered user — Normalize, then matchKeyword — at 100, 4,096
// (Telegram's limit) and 65,536 characters (WhatsApp's), for a keyword
// matched by word n-grams ("blue mango") and one matched by character
// windows (Thai, 8 runes; and the longest allowed, 64 runes). The keyword
// is at the end, so all of the message must be read.
func BenchmarkDetect(b *testing.B) {
	pepper := []byte("bench-pepper-0123456789abcdef012")
	mac := hmac.New(sha256.New, pepper)
	longThai := strings.Repeat("กล้วยหอม", 8)
	for _, k := range []struct{ name, text, keyword string }{
		{"word", "english", "blue mango"},
		{"chars8", "thai", "กล้วยหอม"},
		{"chars64", "thai", longThai},
	} {
		kw := dialogs.NewKeyword(pepper, "user-1", k.keyword)
		for _, n := range []int{100, 4_096, 65_536} {
			msg := sized(detectTexts[k.text], " "+k.keyword, n)
			if found, _ := dialogs.MatchKeyword(mac, "user-1", kw, dialogs.Normalize(msg)); !found {
				b.Fatalf("%s at %d: keyword not found", k.name, n)
			}
			b.Run(fmt.Sprintf("%s/%d/normalize+match", k.name, n), func(b *testing.B) {
				b.SetBytes(int64(len(msg)))
				for b.Loop() {
					dialogs.MatchKeyword(mac, "user-1", kw, dialogs.Normalize(msg))
				}
			})
			norm := dialogs.Normalize(msg)
			b.Run(fmt.Sprintf("%s/%d/match", k.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					dialogs.MatchKeyword(mac, "user-1", kw, norm)
				}
			})
		}
	}
}

// BenchmarkNormalize compares Normalize with the version before issue 9
// (normalizeBefore below: 4,096-character limit, no word breaks between
// scripts, marks with no base kept) on ordinary messages, in the same
// binary and run, so that examining whole messages is seen not to slow the
// everyday ones.
func BenchmarkNormalize(b *testing.B) {
	for _, m := range []struct{ name, text string }{
		{"ascii-ok", "ok"},
		{"ascii-command", "/checkin"},
		{"ascii-sentence", "I'm fine, thanks! See you tomorrow."},
		{"vietnamese", "Tôi khỏe, cảm ơn"},
		{"thai", "สบายดีครับ"},
		{"burmese", "နေကောင်းပါတယ်"},
		{"emoji", "ok 👍🏽 ☀️"},
		{"english-100", sized(detectTexts["english"], "", 100)},
		{"thai-100", sized(detectTexts["thai"], "", 100)},
		{"english-4096", sized(detectTexts["english"], "é", 4_096)},
		{"thai-4096", sized(detectTexts["thai"], "", 4_096)},
	} {
		for _, f := range []struct {
			name string
			fn   func(string) string
		}{{"before", normalizeBefore}, {"now", dialogs.Normalize}} {
			b.Run(m.name+"/"+f.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					f.fn(m.text)
				}
			})
		}
	}
}

// normalizeBefore is Normalize as it was before issue 9, kept only as the
// baseline of BenchmarkNormalize.
func normalizeBefore(s string) string {
	const maxMatchRunes = 4096
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
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
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, " ")
	}
	if utf8.RuneCountInString(s) > maxMatchRunes {
		s = string([]rune(s)[:maxMatchRunes])
	}
	s = norm.NFKC.String(s)
	s = beforeFolder.String(s)
	s = norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(s))
	var prev rune
	space := true
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r):
			if unicode.In(prev, unicode.Latin, unicode.Greek, unicode.Cyrillic) {
				continue
			}
			b.WriteRune(r)
		case r == 'đ':
			b.WriteRune('d')
			prev, space = 'd', false
		case r > unicode.MaxASCII && unicode.Is(unicode.Nd, r):
			d := []rune(dialogs.ASCIIDigits(string(r)))[0]
			b.WriteRune(d)
			prev, space = d, false
		case unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mc, r):
			b.WriteRune(r)
			prev, space = r, false
		default:
			if !space {
				b.WriteByte(' ')
				space = true
			}
			prev = 0
		}
	}
	out := strings.TrimRight(norm.NFC.String(b.String()), " ")
	if !strings.ContainsFunc(out, func(r rune) bool { return unicode.In(r, unicode.Myanmar, unicode.Khmer) }) {
		return out
	}
	rs := []rune(out)
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

var beforeFolder = cases.Fold()
