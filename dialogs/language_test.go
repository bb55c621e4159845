package dialogs_test

// Tests of the language flow (language.go).

import (
	"testing"
)

func TestSuggestLanguage(t *testing.T) {
	e := newEngine(t)
	for hint, want := range map[string]string{
		"zh-hans": "zh", "zh-CN": "zh", "zh_Hans": "zh", "zh": "zh", "fil": "fil", "tl": "fil", "ms-MY": "ms",
		"id": "id", "in": "id", "th": "th", "vi": "vi", "my": "my", "km": "km", "lo": "lo", "en-US": "en",
		"de": "en", "": "en",
	} {
		if got := e.SuggestLanguage(hint); got != want {
			t.Errorf("SuggestLanguage(%q) = %q, want %q", hint, got, want)
		}
	}
}
