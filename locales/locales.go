// Package locales holds the bot's text in every supported language, as
// go-i18n message files embedded in the binary, and serves it to the
// conversation engine as a dialogs.Catalog.
//
// A file per language, named by its BCP 47 tag (ms.toml): go-i18n takes the
// language from the file name. en.toml is the source; the completeness test
// fails when any other file lacks a message, a plural form or a placeholder.
package locales

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed *.toml
var files embed.FS

// Order is the order languages are offered in, by tag. Languages without a
// file are skipped.
var Order = []string{"en", "ms", "id", "th", "vi", "fil", "my", "km", "lo", "zh"}

// Catalog is the loaded bundle. It is read-only after Load and safe for
// concurrent use.
type Catalog struct {
	bundle     *i18n.Bundle
	langs      []dialogs.Language
	localizers map[string]*i18n.Localizer
	words      map[string]dialogs.Words
	// plain caches messages rendered without data (labels, prompts): most
	// replies are these, and rendering a template costs more than the rest
	// of handling a message.
	plain sync.Map // lang + "\x00" + id → string
	// skeletons caches messages rendered with a marker in place of each
	// placeholder; filling markers in is far cheaper than executing the
	// template (see Text).
	skeletons sync.Map // lang + "\x00" + id → skeleton
	// OnMissing is told about a message missing from a locale. By default
	// it logs the language and message id — never any text.
	OnMissing func(lang, id string, err error)
}

var _ dialogs.Catalog = (*Catalog)(nil)

// Load parses every embedded message file.
func Load() (*Catalog, error) {
	return LoadFS(files)
}

// LoadFS parses every *.toml file at the root of fsys. Tests use it to
// check broken files fail clearly.
func LoadFS(fsys fs.FS) (*Catalog, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	names, err := fs.Glob(fsys, "*.toml")
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, name := range names {
		if _, err := b.LoadMessageFileFS(fsys, name); err != nil {
			return nil, fmt.Errorf("locales: %s: %w", name, err)
		}
		present[strings.TrimSuffix(name, ".toml")] = true
	}
	if !present["en"] {
		return nil, errors.New("locales: en.toml is missing")
	}
	c := &Catalog{
		bundle:     b,
		localizers: map[string]*i18n.Localizer{},
		words:      map[string]dialogs.Words{},
		OnMissing: func(lang, id string, err error) {
			slog.Warn("locale message missing", "lang", lang, "id", id)
		},
	}
	for _, tag := range Order {
		if !present[tag] {
			continue
		}
		c.localizers[tag] = i18n.NewLocalizer(b, tag)
		name, _ := c.Lookup(tag, "LanguageName")
		c.langs = append(c.langs, dialogs.Language{Tag: tag, Name: name})
		c.words[tag] = c.loadWords(tag)
	}
	for tag := range present {
		if _, ok := c.localizers[tag]; !ok {
			return nil, fmt.Errorf("locales: %s.toml: language %q is not in locales.Order", tag, tag)
		}
	}
	return c, nil
}

// Files is the embedded message files, for tests and tools.
func Files() fs.FS { return files }

// Bundle is the underlying go-i18n bundle, for tests and tools.
func (c *Catalog) Bundle() *i18n.Bundle { return c.bundle }

// Languages lists the supported languages in offering order.
func (c *Catalog) Languages() []dialogs.Language { return c.langs }

func (c *Catalog) localizer(lang string) *i18n.Localizer {
	if l, ok := c.localizers[lang]; ok {
		return l
	}
	return c.localizers["en"]
}

// Text renders id in lang, falling back to English (and reporting it) when
// the locale lacks the message.
//
// Messages use only plain {{.Name}} placeholders, so each is rendered once
// per language and set of data keys with markers as values, and later calls
// only substitute the markers. TestTextMatchesTemplate keeps this exact.
func (c *Catalog) Text(lang, id string, data map[string]any) string {
	if data == nil {
		if s, ok := c.plain.Load(lang + "\x00" + id); ok {
			return s.(string)
		}
		return c.render(lang, id, nil)
	}
	cacheKey := lang + "\x00" + id
	if v, ok := c.skeletons.Load(cacheKey); ok {
		if sk := v.(skeleton); sk.fits(data) {
			return fill(sk.text, data)
		}
	}
	sk := skeleton{keys: make([]string, 0, len(data))}
	markers := make(map[string]any, len(data))
	for k := range data {
		sk.keys = append(sk.keys, k)
		markers[k] = markerStart + k + markerEnd
	}
	s, err := c.localizer(lang).Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: markers})
	if err != nil {
		return c.render(lang, id, data) // reports the problem
	}
	sk.text = s
	c.skeletons.Store(cacheKey, sk)
	return fill(s, data)
}

// skeleton is a message rendered with markers for the data keys it was
// rendered with; it serves calls with exactly those keys.
type skeleton struct {
	keys []string
	text string
}

func (sk skeleton) fits(data map[string]any) bool {
	if len(data) != len(sk.keys) {
		return false
	}
	for _, k := range sk.keys {
		if _, ok := data[k]; !ok {
			return false
		}
	}
	return true
}

// missingMarker caches a Lookup that found nothing.
const missingMarker = "\x00missing"

// Markers stand for placeholders in cached skeletons. Control characters
// never survive into message text (dialogs strips them from input).
const (
	markerStart = "\x01"
	markerEnd   = "\x02"
)

// fill replaces each marker of skel with its value, formatted as
// text/template would (fmt.Sprint).
func fill(skel string, data map[string]any) string {
	var b strings.Builder
	for {
		i := strings.Index(skel, markerStart)
		if i < 0 {
			b.WriteString(skel)
			return b.String()
		}
		j := strings.Index(skel[i:], markerEnd)
		if j < 0 {
			b.WriteString(skel)
			return b.String()
		}
		b.WriteString(skel[:i])
		v := data[skel[i+1:i+j]]
		if s, ok := v.(string); ok {
			b.WriteString(s)
		} else {
			fmt.Fprint(&b, v)
		}
		skel = skel[i+j+1:]
	}
}

// render executes the template, falling back to English when lang lacks
// the message.
func (c *Catalog) render(lang, id string, data map[string]any) string {
	s, err := c.localizer(lang).Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data})
	if err != nil {
		c.OnMissing(lang, id, err)
		if s == "" {
			s, _ = c.localizers["en"].Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data})
		}
		return s
	}
	if data == nil {
		c.plain.Store(lang+"\x00"+id, s)
	}
	return s
}

// Count renders the plural message id for n; {{.Count}} is n.
func (c *Catalog) Count(lang, id string, n int, data map[string]any) string {
	cacheKey := lang + "\x00" + id + "\x00#" + strconv.Itoa(n)
	if data == nil {
		if s, ok := c.plain.Load(cacheKey); ok {
			return s.(string)
		}
	}
	d := map[string]any{"Count": n}
	for k, v := range data {
		d[k] = v
	}
	s, err := c.localizer(lang).Localize(&i18n.LocalizeConfig{MessageID: id, PluralCount: n, TemplateData: d})
	if err != nil {
		c.OnMissing(lang, id, err)
		if s == "" {
			s, _ = c.localizers["en"].Localize(&i18n.LocalizeConfig{MessageID: id, PluralCount: n, TemplateData: d})
		}
		return s
	}
	if data == nil {
		c.plain.Store(cacheKey, s)
	}
	return s
}

// Lookup renders id only if lang itself defines it.
func (c *Catalog) Lookup(lang, id string) (string, bool) {
	cacheKey := lang + "\x00?" + id
	if v, ok := c.plain.Load(cacheKey); ok {
		if s := v.(string); s != missingMarker {
			return s, true
		}
		return "", false
	}
	l, ok := c.localizers[lang]
	if !ok {
		return "", false
	}
	s, err := l.Localize(&i18n.LocalizeConfig{MessageID: id})
	if err != nil {
		c.plain.Store(cacheKey, missingMarker)
		return "", false
	}
	c.plain.Store(cacheKey, s)
	return s, true
}

// Words returns lang's command words, normalised.
func (c *Catalog) Words(lang string) dialogs.Words {
	if w, ok := c.words[lang]; ok {
		return w
	}
	return c.words["en"]
}

func (c *Catalog) loadWords(lang string) dialogs.Words {
	list := func(id string) []string {
		s, ok := c.Lookup(lang, id)
		if !ok {
			return nil
		}
		var out []string
		for _, w := range strings.Split(s, ",") {
			if n := dialogs.Normalize(w); n != "" && !contains(out, n) {
				out = append(out, n)
			}
		}
		return out
	}
	return dialogs.Words{
		Checkin: list("WordsCheckin"), Help: list("WordsHelp"), Stop: list("WordsStop"),
		Pause: list("WordsPause"), Delete: list("WordsDelete"), Status: list("WordsStatus"),
		Settings: list("WordsSettings"), MyData: list("WordsMyData"), Language: list("WordsLanguage"),
		Menu: list("WordsMenu"), Start: list("WordsStart"), Yes: list("WordsYes"), No: list("WordsNo"),
		Skip: list("WordsSkip"), Snooze: list("WordsSnooze"),
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
