package locales_test

import (
	"errors"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/BurntSushi/toml"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/nicksnyder/go-i18n/v2/i18n"
)

// pluralCounts are the counts every plural message is rendered at: they hit
// every CLDR category of the supported languages.
var pluralCounts = []int{0, 1, 2, 3, 5, 11, 21, 100}

// englishMessages reads en.toml: message ids, and whether each is plural.
func englishMessages(t *testing.T) map[string]bool {
	t.Helper()
	var raw map[string]any
	if _, err := toml.DecodeFS(locales.Files(), "en.toml", &raw); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for id, v := range raw {
		_, plural := v.(map[string]any)
		ids[id] = plural
	}
	return ids
}

var placeholder = regexp.MustCompile(`{{\s*\.(\w+)\s*}}`)

func placeholders(s string) []string {
	var out []string
	for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}

// TestCompleteness: every message of en.toml localises in every language
// without error, plural messages at every count, with the placeholders of
// the English text, and with no English left in it by accident.
func TestCompleteness(t *testing.T) {
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	cat.OnMissing = func(lang, id string, err error) { missing = append(missing, lang+":"+id) }
	ids := englishMessages(t)
	if len(ids) < 50 {
		t.Fatalf("en.toml has only %d messages", len(ids))
	}
	bundle := cat.Bundle()
	for _, lang := range cat.Languages() {
		loc := i18n.NewLocalizer(bundle, lang.Tag)
		for id, plural := range ids {
			if !plural {
				if _, err := loc.Localize(&i18n.LocalizeConfig{MessageID: id}); err != nil {
					t.Errorf("%s: %s: %v", lang.Tag, id, err)
					continue
				}
				checkPlaceholders(t, lang.Tag, id, rawText(t, lang.Tag, id, "other"), rawText(t, "en", id, "other"))
				continue
			}
			for _, n := range pluralCounts {
				if _, err := loc.Localize(&i18n.LocalizeConfig{MessageID: id, PluralCount: n,
					TemplateData: map[string]any{"Count": n}}); err != nil {
					t.Errorf("%s: %s at count %d: %v", lang.Tag, id, n, err)
				}
			}
			checkPlaceholders(t, lang.Tag, id, rawText(t, lang.Tag, id, "other"), rawText(t, "en", id, "other"))
		}
		if name, ok := cat.Lookup(lang.Tag, "ReviewStatus"); !ok || (name != "reviewed" && name != "drafted") {
			t.Errorf("%s: ReviewStatus must be \"reviewed\" or \"drafted\", got %q", lang.Tag, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("Catalog reported missing messages: %v", missing)
	}
	if len(cat.Languages()) < 3 {
		t.Errorf("expected at least English, Malay and Indonesian, got %v", cat.Languages())
	}
}

// rawText returns a message's template as written in lang's file.
func rawText(t *testing.T, lang, id, form string) string {
	t.Helper()
	var raw map[string]any
	if _, err := toml.DecodeFS(locales.Files(), lang+".toml", &raw); err != nil {
		t.Fatal(err)
	}
	switch v := raw[id].(type) {
	case string:
		return v
	case map[string]any:
		s, _ := v[form].(string)
		return s
	}
	return ""
}

func checkPlaceholders(t *testing.T, lang, id, got, want string) {
	t.Helper()
	if g, w := placeholders(got), placeholders(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s: %s: placeholders %v, English has %v", lang, id, g, w)
	}
}

// TestWordsAreUsable: every language can check in and ask for help, and no
// word means two things in one language (it would route unpredictably).
func TestWordsAreUsable(t *testing.T) {
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	en := cat.Words("en")
	for _, w := range []string{"ok", "safe"} {
		if !contains(en.Checkin, w) {
			t.Errorf("English check-in words lack %q", w)
		}
	}
	for _, w := range []string{"help", "sos"} {
		if !contains(en.Help, w) {
			t.Errorf("English help words lack %q", w)
		}
	}
	for _, lang := range cat.Languages() {
		w := cat.Words(lang.Tag)
		lists := map[string][]string{"checkin": w.Checkin, "help": w.Help, "stop": w.Stop, "pause": w.Pause,
			"delete": w.Delete, "status": w.Status, "settings": w.Settings, "mydata": w.MyData,
			"language": w.Language, "menu": w.Menu, "start": w.Start}
		owner := map[string]string{}
		for name, list := range lists {
			if len(list) == 0 {
				t.Errorf("%s: no %s words", lang.Tag, name)
			}
			for _, word := range list {
				if prev, ok := owner[word]; ok {
					t.Errorf("%s: %q is both a %s and a %s word", lang.Tag, word, prev, name)
				}
				owner[word] = name
			}
		}
		if !contains(w.Checkin, "ok") {
			t.Errorf("%s: \"ok\" must check in everywhere", lang.Tag)
		}
		if len(w.Yes) == 0 || len(w.No) == 0 || len(w.Skip) == 0 {
			t.Errorf("%s: yes, no and skip words are needed", lang.Tag)
		}
	}
}

func TestMissingMessageFallsBackAndIsReported(t *testing.T) {
	fsys := fstest.MapFS{
		"en.toml": {Data: []byte("LanguageName = \"English\"\nHello = \"Hello {{.Name}}\"\n")},
		"ms.toml": {Data: []byte("LanguageName = \"Bahasa Melayu\"\n")},
	}
	cat, err := locales.LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var reported []string
	cat.OnMissing = func(lang, id string, err error) {
		var nf *i18n.MessageNotFoundErr
		if !errors.As(err, &nf) {
			t.Errorf("unexpected error type %T", err)
		}
		reported = append(reported, lang+":"+id)
	}
	if got := cat.Text("ms", "Hello", map[string]any{"Name": "Siti"}); got != "Hello Siti" {
		t.Errorf("fallback text %q", got)
	}
	if !reflect.DeepEqual(reported, []string{"ms:Hello"}) {
		t.Errorf("reported %v", reported)
	}
}

func TestBrokenFilesFailToLoad(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no english":     {"ms.toml": {Data: []byte("A = \"b\"\n")}},
		"bad toml":       {"en.toml": {Data: []byte("A = \n")}},
		"unknown lang":   {"en.toml": {Data: []byte("A = \"b\"\n")}, "xx.toml": {Data: []byte("A = \"c\"\n")}},
		"reserved mixed": {"en.toml": {Data: []byte("[A]\nother = \"b\"\nB = \"c\"\n")}},
	} {
		if _, err := locales.LoadFS(fsys); err == nil {
			t.Errorf("%s: loaded without error", name)
		} else if !strings.Contains(err.Error(), "locales") {
			t.Errorf("%s: error does not say where: %v", name, err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestTextMatchesTemplate: the cached-skeleton rendering of Text gives
// exactly what executing the template gives, for every message and language,
// including values that look like markers or template syntax.
func TestTextMatchesTemplate(t *testing.T) {
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	values := []any{"Siti", "{{.Name}}", "a\x01b\x02c", 42, "", "ភ្នំពេញ"}
	for _, lang := range cat.Languages() {
		loc := i18n.NewLocalizer(cat.Bundle(), lang.Tag)
		for id, plural := range englishMessages(t) {
			if plural {
				continue
			}
			names := placeholders(rawText(t, lang.Tag, id, "other"))
			for i, v := range values {
				data := map[string]any{}
				for j, n := range names {
					data[n] = values[(i+j)%len(values)]
				}
				if len(names) == 0 {
					data["Unused"] = v
				}
				want, err := loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data})
				if err != nil {
					t.Fatal(err)
				}
				// Twice: the first call fills the cache, the second uses it.
				for k := 0; k < 2; k++ {
					if got := cat.Text(lang.Tag, id, data); got != want {
						t.Fatalf("%s %s: Text = %q, template gives %q", lang.Tag, id, got, want)
					}
				}
			}
		}
	}
}
