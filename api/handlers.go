package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// route is one endpoint: its method, its path pattern split on "/", with
// "{id}" matching one segment, and its handler.
type route struct {
	method  string
	pattern []string
	query   []string // the query parameters it reads; any other is refused
	handle  func(a *API, w http.ResponseWriter, r *http.Request, t Token, id string)
}

var routes = []route{
	{http.MethodGet, []string{"cases"}, []string{"status", "type", "severity", "cursor", "limit"}, (*API).listCases},
	{http.MethodGet, []string{"cases", "{id}"}, nil, (*API).getCase},
	{http.MethodPost, []string{"cases", "{id}", "ack"}, nil, (*API).ackCase},
	{http.MethodPost, []string{"cases", "{id}", "resolve"}, nil, (*API).resolveCase},
	{http.MethodPost, []string{"cases", "{id}", "note"}, nil, (*API).noteCase},
	{http.MethodGet, []string{"events"}, []string{"after", "unacked", "limit"}, (*API).listEvents},
	{http.MethodPost, []string{"events", "{id}", "ack"}, nil, (*API).ackEvent},
	{http.MethodGet, []string{"registrants"}, []string{"status", "cursor", "limit"}, (*API).listRegistrants},
	{http.MethodPost, []string{"rollcalls"}, nil, (*API).startRollCall},
	{http.MethodGet, []string{"rollcalls", "{id}"}, []string{"list", "cursor", "limit"}, (*API).getRollCall},
}

// match finds the routes whose pattern fits path, and the {id} segment.
func match(path string) ([]route, string) {
	segs := strings.Split(strings.TrimPrefix(path, Prefix), "/")
	var out []route
	var id string
	for _, rt := range routes {
		if len(rt.pattern) != len(segs) {
			continue
		}
		ok, rid := true, ""
		for i, p := range rt.pattern {
			switch {
			case p == "{id}" && segs[i] != "":
				rid = segs[i]
			case p != segs[i]:
				ok = false
			}
		}
		if ok {
			out, id = append(out, rt), rid
		}
	}
	return out, id
}

// routeOf names a request's endpoint for logs, with the id left out.
func routeOf(r *http.Request) string {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, Prefix), "/")
	if len(segs) > 1 {
		segs[1] = "{id}"
	}
	return r.Method + " " + Prefix + strings.Join(segs, "/")
}

// ServeHTTP authenticates, rate-limits, routes and answers one request,
// and reports it to Options.Observe (metrics.go).
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.observed(w, r, a.serve)
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	t, ok := a.auth.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="checkinbot"`)
		writeCode(w, http.StatusUnauthorized, errs.EUNAUTHORIZED, "missing or wrong bearer token")
		return
	}
	if ok, wait := a.limiter.allow(t.Label); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		writeCode(w, http.StatusTooManyRequests, CodeRateLimited, "too many requests for this token: retry after the Retry-After header's seconds")
		return
	}
	rts, id := match(r.URL.Path)
	if len(rts) == 0 {
		writeCode(w, http.StatusNotFound, errs.ENOTFOUND, "no such endpoint")
		return
	}
	var allow []string
	for _, rt := range rts {
		if rt.method != r.Method {
			allow = append(allow, rt.method)
			continue
		}
		if err := checkQuery(r.URL.Query(), rt.query); err != nil {
			a.writeErr(w, r, err)
			return
		}
		rt.handle(a, w, r, t, id)
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeCode(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "use "+strings.Join(allow, " or ")+" on this path")
}

// checkQuery refuses a parameter the endpoint does not read, or one given
// twice, so a typo never silently lists everything.
func checkQuery(q url.Values, known []string) error {
	for k, v := range q {
		found := false
		for _, n := range known {
			found = found || n == k
		}
		if !found {
			return &errs.Error{Code: errs.EUNKNOWNKEY, Key: k, Reason: "unknown query parameter"}
		}
		if len(v) > 1 {
			return invalid(k, "given more than once")
		}
	}
	return nil
}

// decode reads a JSON body into v: at most MaxBody bytes, no unknown
// fields, nothing after the value. An empty body is an empty object.
func decode(r *http.Request, v any) error {
	if r.ContentLength > MaxBody {
		return &errs.Error{Code: CodeTooLarge, Reason: fmt.Sprintf("the body is over %d bytes", MaxBody)}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return invalid("", "the body could not be read")
	}
	if len(body) > MaxBody {
		return &errs.Error{Code: CodeTooLarge, Reason: fmt.Sprintf("the body is over %d bytes", MaxBody)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return invalid(ute.Field, "has the wrong type: want "+ute.Type.String())
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
			return &errs.Error{Code: errs.EUNKNOWNKEY, Key: name, Reason: "unknown field"}
		}
		return invalid("", "the body is not a JSON object")
	}
	if dec.More() {
		return invalid("", "the body holds more than one JSON value")
	}
	return nil
}

// caseView is a case as the API shows it: the registrant by pseudonymous
// id only (the store's user key is never shown).
type caseView struct {
	ID         string                `json:"id"`
	Status     escalation.CaseStatus `json:"status"`
	Severity   escalation.Severity   `json:"severity,omitempty"`
	Types      []escalation.Type     `json:"types"`
	Seq        int                   `json:"seq"`
	OpenedAt   time.Time             `json:"opened_at"`
	UpdatedAt  time.Time             `json:"updated_at"`
	AckedAt    *time.Time            `json:"acked_at,omitempty"`
	AckedBy    string                `json:"acked_by,omitempty"`
	ResolvedAt *time.Time            `json:"resolved_at,omitempty"`
	ResolvedBy string                `json:"resolved_by,omitempty"`
	Outcome    escalation.Outcome    `json:"outcome,omitempty"`
	Notes      []escalation.CaseNote `json:"notes"`
}

func viewOf(c escalation.Case) *caseView {
	v := &caseView{ID: c.ID, Status: c.Status, Severity: c.Severity, Types: c.Types, Seq: c.Seq,
		OpenedAt: c.OpenedAt, UpdatedAt: c.UpdatedAt, AckedBy: c.AckedBy, ResolvedBy: c.ResolvedBy,
		Outcome: c.Outcome, Notes: c.Notes}
	if v.Types == nil {
		v.Types = []escalation.Type{}
	}
	if v.Notes == nil {
		v.Notes = []escalation.CaseNote{}
	}
	if !c.AckedAt.IsZero() {
		v.AckedAt = &c.AckedAt
	}
	if !c.ResolvedAt.IsZero() {
		v.ResolvedAt = &c.ResolvedAt
	}
	return v
}

// limitParam reads "limit" (default DefaultLimit, 1..MaxLimit).
func limitParam(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, invalid("limit", fmt.Sprintf("must be a whole number from 1 to %d", MaxLimit))
	}
	return n, nil
}

// cursorParam reads an opaque cursor (a positive decimal number).
func cursorParam(q url.Values, name string) (uint64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, invalid(name, "is not a cursor this API gave out")
	}
	return n, nil
}

func (a *API) listCases(w http.ResponseWriter, r *http.Request, t Token, _ string) {
	q := r.URL.Query()
	cq := store.CaseQuery{Embassy: t.Embassy, Status: escalation.CaseStatus(q.Get("status")),
		Type: q.Get("type"), Severity: escalation.Severity(q.Get("severity"))}
	var err error
	if cq.Status != "" && !cq.Status.Valid() {
		err = invalid("status", "must be open, acked or resolved")
	} else if cq.Type != "" && !knownType(cq.Type) {
		err = invalid("type", "is not an event type (docs/webhooks.md lists them)")
	} else if cq.Severity != "" && cq.Severity.Rank() == 0 {
		err = invalid("severity", "must be info, high or critical")
	}
	if err == nil {
		cq.Limit, err = limitParam(q)
	}
	if err == nil {
		cq.Before, err = cursorParam(q, "cursor")
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	page, err := a.opt.Store.Cases(cq)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := struct {
		Cases      []*caseView `json:"cases"`
		NextCursor *string     `json:"next_cursor"`
	}{Cases: []*caseView{}}
	for _, c := range page.Cases {
		out.Cases = append(out.Cases, viewOf(c))
	}
	if page.Next > 0 {
		s := strconv.FormatUint(page.Next, 10)
		out.NextCursor = &s
	}
	writeJSON(w, http.StatusOK, out)
}

func knownType(t escalation.Type) bool {
	for _, v := range escalation.AllTypes {
		if v == t {
			return true
		}
	}
	return false
}

func (a *API) getCase(w http.ResponseWriter, r *http.Request, t Token, id string) {
	c, events, err := a.opt.Store.Case(t.Embassy, id)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	if events == nil {
		events = []escalation.Event{}
	}
	writeJSON(w, http.StatusOK, struct {
		Case   *caseView          `json:"case"`
		Events []escalation.Event `json:"events"`
	}{viewOf(c), events})
}

// noteText checks a note: present when required, at most MaxNote
// characters, no control characters but line breaks.
func noteText(key, s string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" && required:
		return "", &errs.Error{Code: errs.EMISSING, Key: key, Reason: "write the note"}
	case utf8.RuneCountInString(s) > MaxNote:
		return "", invalid(key, fmt.Sprintf("is over %d characters", MaxNote))
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return "", invalid(key, "holds control characters")
		}
	}
	return s, nil
}

func (a *API) ackCase(w http.ResponseWriter, r *http.Request, t Token, id string) {
	var body struct{}
	if err := decode(r, &body); err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.change(w, r, store.CaseChange{Embassy: t.Embassy, CaseID: id, Action: escalation.ActionAck, By: t.Label})
}

func (a *API) resolveCase(w http.ResponseWriter, r *http.Request, t Token, id string) {
	var body struct {
		Outcome escalation.Outcome `json:"outcome"`
		Note    string             `json:"note"`
	}
	err := decode(r, &body)
	if err == nil && body.Outcome == "" {
		err = &errs.Error{Code: errs.EMISSING, Key: "outcome", Reason: "say how the case ended"}
	} else if err == nil && !body.Outcome.Valid() {
		err = invalid("outcome", "must be one of safe, assisted, false_alarm, no_contact, other")
	}
	if err == nil {
		body.Note, err = noteText("note", body.Note, false)
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.change(w, r, store.CaseChange{Embassy: t.Embassy, CaseID: id, Action: escalation.ActionResolve, By: t.Label,
		Outcome: body.Outcome, Text: body.Note})
}

func (a *API) noteCase(w http.ResponseWriter, r *http.Request, t Token, id string) {
	var body struct {
		Text string `json:"text"`
	}
	err := decode(r, &body)
	if err == nil {
		body.Text, err = noteText("text", body.Text, true)
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.change(w, r, store.CaseChange{Embassy: t.Embassy, CaseID: id, Action: escalation.ActionNote, By: t.Label, Text: body.Text})
}

// change applies one change. A resolution goes through the Resolver: the
// case and the registrant's do_not_contact and open case change in one
// transaction, without messaging them.
func (a *API) change(w http.ResponseWriter, r *http.Request, ch store.CaseChange) {
	var c escalation.Case
	var err error
	if ch.Action == escalation.ActionResolve {
		c, err = a.opt.Resolver.ResolveCase(r.Context(), ch)
	} else {
		c, err = a.opt.Store.ChangeCase(ch, a.opt.Now())
	}
	if errs.ErrorCode(err) == errs.ECONFLICT {
		writeJSON(w, http.StatusConflict, errorBody{Error: errorDetail{Code: errs.ECONFLICT, Message: errs.Public(err)}, Case: viewOf(c)})
		return
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Case *caseView `json:"case"`
	}{viewOf(c)})
}

func (a *API) ackEvent(w http.ResponseWriter, r *http.Request, t Token, id string) {
	var body struct{}
	if err := decode(r, &body); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if err := a.opt.Store.AckEvent(t.Embassy, id, t.Label, a.opt.Now()); err != nil {
		a.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		ID    string `json:"id"`
		Acked bool   `json:"acked"`
	}{id, true})
}
