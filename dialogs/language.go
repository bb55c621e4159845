// Language: the language a citizen is spoken to in, suggested from the
// platform's hint (SuggestLanguage), chosen by name in any language or in
// English (languageOptions), and changed later from /language or the
// settings menu (StepSettingsLanguage, whose step lives here). The first
// question of registration, StepLanguage, is registration's own and lives
// in registration.go.

package dialogs

import (
	"strings"
)

// languageSteps is the language change of a registered citizen.
func languageSteps() map[Step]stepSpec {
	return map[Step]stepSpec{
		StepSettingsLanguage: {
			prompt:  "AskLanguage",
			options: (*turn).languageOptions,
			choose: func(t *turn, o option) {
				t.st.Lang = o.data
				t.st.Step = StepNone
				t.audit("settings.language")
				t.reply("LanguageSaved", nil)
			},
		},
	}
}

// SuggestLanguage maps a platform hint ("ms-MY", "zh-hans", "tl") to a
// supported language tag, defaulting to English.
func (e *Engine) SuggestLanguage(hint string) string {
	hint = strings.ToLower(strings.ReplaceAll(hint, "_", "-"))
	aliases := map[string]string{"zh-hans": "zh", "zh-cn": "zh", "zh-sg": "zh", "tl": "fil", "in": "id", "zsm": "ms"}
	if a, ok := aliases[hint]; ok {
		hint = a
	}
	base, _, _ := strings.Cut(hint, "-")
	for _, l := range e.Catalog.Languages() {
		if l.Tag == hint || l.Tag == base {
			return l.Tag
		}
	}
	return "en"
}

func (t *turn) languageOptions() []option {
	var opts []option
	for _, l := range t.e.Catalog.Languages() {
		opts = append(opts, option{label: l.Name, data: l.Tag, aliases: t.e.languageAliases()[l.Tag]})
	}
	return opts
}

// englishLanguageNames are what people type in English for a language.
var englishLanguageNames = map[string][]string{
	"en": {"english"}, "ms": {"malay", "bahasa malaysia"}, "id": {"indonesian"}, "th": {"thai"},
	"vi": {"vietnamese"}, "fil": {"tagalog"}, "my": {"burmese", "myanmar"}, "km": {"khmer", "cambodian"},
	"lo": {"lao", "laotian"}, "zh": {"chinese", "mandarin"},
}

// languageAliases lets a language be chosen by any word of its own name
// that no other language's name shares ("中文" for "中文（简体）", "melayu"
// but not "bahasa"), or by its English name.
func (e *Engine) languageAliases() map[string][]string {
	e.aliasOnce.Do(func() {
		count := map[string]int{}
		for _, l := range e.Catalog.Languages() {
			for _, w := range strings.Fields(Normalize(l.Name)) {
				count[w]++
			}
		}
		e.aliases = map[string][]string{}
		for _, l := range e.Catalog.Languages() {
			for _, w := range strings.Fields(Normalize(l.Name)) {
				if count[w] == 1 {
					e.aliases[l.Tag] = append(e.aliases[l.Tag], w)
				}
			}
			e.aliases[l.Tag] = append(e.aliases[l.Tag], englishLanguageNames[l.Tag]...)
		}
	})
	return e.aliases
}
