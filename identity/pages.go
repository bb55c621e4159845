package identity

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"regexp"
)

// PageKind is one of the two pages a citizen's browser can end on.
type PageKind int

// The pages.
const (
	// PageDone: the identity was verified and recorded.
	PageDone PageKind = iota
	// PageFailed: anything else. One page for every failure, so that
	// the browser learns nothing about why (a used link, a guessed one,
	// a provider error all read the same).
	PageFailed
)

// PageText is what a page says.
type PageText struct {
	Title string
	Body  string
}

// Pages gives the page texts in a language; the wiring supplies the
// localised texts (locales), tests and fallbacks use EnglishPages. lang is
// empty when the request cannot be tied to a citizen (an unknown link).
type Pages interface {
	Page(kind PageKind, lang string) PageText
}

// PagesFunc adapts a function to Pages.
type PagesFunc func(kind PageKind, lang string) PageText

// Page calls f.
func (f PagesFunc) Page(kind PageKind, lang string) PageText { return f(kind, lang) }

// EnglishPages are the default texts.
var EnglishPages = PagesFunc(func(kind PageKind, _ string) PageText {
	if kind == PageDone {
		return PageText{Title: "Done", Body: "Done. You can go back to the chat."}
	}
	return PageText{Title: "Link not usable", Body: "This link can't be used. Ask the bot for a new one in the chat."}
})

// pageStyle is the pages' only style; the CSP allows exactly it by hash.
const pageStyle = `body{font:1.2rem/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}`

var (
	pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title><style>` + pageStyle + `</style></head>
<body><p>{{.Body}}</p></body></html>
`))
	styleHash = func() string {
		h := sha256.Sum256([]byte(pageStyle))
		return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	}()
	langTag = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)
)

// securityHeaders: nothing cached (the pages follow single-use links),
// no referrer (the start URL carries the token), nothing but our style.
func securityHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+styleHash+"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
}

// page writes one of the two pages in lang.
func (s *Service) page(w http.ResponseWriter, status int, kind PageKind, lang string) {
	t := s.pages.Page(kind, lang)
	if !langTag.MatchString(lang) {
		lang = "en"
	}
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, struct{ Lang, Title, Body string }{lang, t.Title, t.Body})
}
