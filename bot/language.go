package bot

import "strings"

// phoneLanguages maps international calling codes to the language to
// suggest first. Longer codes are listed before the shorter codes they
// start with (+855 before +85…). Anything else suggests English; the
// citizen can always change it.
var phoneLanguages = []struct{ prefix, lang string }{
	{"855", "km"}, {"856", "lo"}, {"60", "ms"}, {"62", "id"}, {"63", "fil"}, {"65", "en"},
	{"66", "th"}, {"84", "vi"}, {"86", "zh"}, {"95", "my"},
}

// LanguageForPhone suggests a language from a phone number's country
// calling code ("+855 12 345 678" → "km").
func LanguageForPhone(phone string) string {
	digits := strings.TrimLeft(strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, phone), "0")
	for _, p := range phoneLanguages {
		if strings.HasPrefix(digits, p.prefix) {
			return p.lang
		}
	}
	return "en"
}
