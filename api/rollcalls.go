package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store"
)

// RollCaller runs roll calls (DESIGN §2 item 9); *bot.Runner implements
// it. StartRollCall returns once every member's prompt is committed to the
// send queue; RollCall reports any embassy's roll call (the API checks the
// embassy).
type RollCaller interface {
	StartRollCall(ctx context.Context, q bot.RollCallRequest) (store.RollCall, error)
	RollCall(id string) (store.RollCallReport, bool, error)
}

// MaxCity bounds a roll call's city, in characters.
const MaxCity = 100

// rollCallView is a roll call as the API shows it: where its members
// stand, by pseudonymous id, with the counts.
type rollCallView struct {
	ID        string    `json:"id"`
	Country   string    `json:"country"`
	City      string    `json:"city,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Deadline  time.Time `json:"deadline"`
	Closed    bool      `json:"closed"`
	Counts    struct {
		Members    int `json:"members"`
		Responded  int `json:"responded"`
		Pending    int `json:"pending"`
		Missed     int `json:"missed"`
		Unprompted int `json:"unprompted"`
	} `json:"counts"`
	Responded  []string `json:"responded"`
	Pending    []string `json:"pending"`
	Missed     []string `json:"missed"`
	Unprompted []string `json:"unprompted"`
}

func rollCallViewOf(rep store.RollCallReport) *rollCallView {
	v := &rollCallView{ID: rep.ID, Country: rep.Country, City: rep.City, CreatedAt: rep.CreatedAt,
		Deadline: rep.Deadline, Closed: rep.Closed,
		Responded: nonNil(rep.Responded), Pending: nonNil(rep.Pending), Missed: nonNil(rep.Missed), Unprompted: nonNil(rep.Unprompted)}
	v.Counts.Responded, v.Counts.Pending = len(v.Responded), len(v.Pending)
	v.Counts.Missed, v.Counts.Unprompted = len(v.Missed), len(v.Unprompted)
	v.Counts.Members = v.Counts.Responded + v.Counts.Pending + v.Counts.Missed + v.Counts.Unprompted
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// rollCallBody is POST /v1/rollcalls's body.
type rollCallBody struct {
	Country  string            `json:"country"`
	City     string            `json:"city"`
	Text     map[string]string `json:"text"`
	Deadline string            `json:"deadline"`
}

// request checks the body at now for embassy and builds the runner's
// request; every error names its field.
func (a *API) rollCallRequest(b rollCallBody, embassy string, now time.Time) (bot.RollCallRequest, error) {
	q := bot.RollCallRequest{EmbassyID: embassy, Country: strings.ToUpper(strings.TrimSpace(b.Country)), Texts: map[string]string{}}
	switch {
	case q.Country == "":
		return q, &errs.Error{Code: errs.EMISSING, Key: "country", Reason: "say which country (ISO 3166 alpha-2, such as \"KH\")"}
	case len(q.Country) != 2 || strings.Trim(q.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "":
		return q, invalid("country", "want an ISO 3166 alpha-2 code such as \"KH\"")
	case a.opt.Covers != nil && !a.opt.Covers(embassy, q.Country):
		return q, invalid("country", "is not a country your embassy covers")
	}
	city, err := plainText("city", b.City, MaxCity)
	if err != nil {
		return q, err
	}
	q.City = city
	if b.Deadline == "" {
		return q, &errs.Error{Code: errs.EMISSING, Key: "deadline", Reason: "say by when to answer (RFC 3339, such as \"2026-05-01T18:00:00+07:00\")"}
	}
	if q.Deadline, err = time.Parse(time.RFC3339, b.Deadline); err != nil {
		return q, invalid("deadline", "want an RFC 3339 time such as \"2026-05-01T18:00:00+07:00\"")
	}
	switch {
	case !q.Deadline.After(now):
		return q, invalid("deadline", "is not in the future")
	case q.Deadline.Sub(now) > bot.MaxRollCallDeadline:
		return q, invalid("deadline", "is more than a week ahead")
	}
	for lang, text := range b.Text {
		key := "text." + lang
		if !slices.Contains(locales.Order, lang) {
			return q, invalid(key, "is not a language of the service ("+strings.Join(locales.Order, ", ")+")")
		}
		t, err := plainText(key, text, bot.MaxRollCallText)
		if err == nil && t == "" {
			err = invalid(key, "is empty: leave the language out to use the standard question")
		}
		if err != nil {
			return q, err
		}
		q.Texts[lang] = t
	}
	if len(q.Texts) == 0 {
		q.Texts = nil
	}
	return q, nil
}

// plainText trims s and checks it is at most max characters with no
// control characters but line breaks and tabs.
func plainText(key, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > max {
		return "", invalid(key, fmt.Sprintf("is over %d characters", max))
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || r == utf8.RuneError {
			return "", invalid(key, "holds control characters or is not UTF-8")
		}
	}
	return s, nil
}

// startRollCall answers POST /v1/rollcalls: it prompts every active
// registrant of the embassy in the area and answers 201 once every prompt
// is committed. The work does not depend on the request: a client that
// hangs up does not stop it.
func (a *API) startRollCall(w http.ResponseWriter, r *http.Request, t Token, _ string) {
	if a.opt.RollCalls == nil {
		writeCode(w, http.StatusNotFound, errs.ENOTFOUND, "no such endpoint")
		return
	}
	var body rollCallBody
	err := decode(r, &body)
	var q bot.RollCallRequest
	if err == nil {
		q, err = a.rollCallRequest(body, t.Embassy, a.opt.Now())
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	rc, err := a.opt.RollCalls.StartRollCall(context.WithoutCancel(r.Context()), q)
	if rc.ID == "" {
		a.writeErr(w, r, err)
		return
	}
	if err != nil {
		// The roll call exists; those not prompted stay pending (the
		// runner prompts them again at its next start). Answering an
		// error here would invite a second roll call.
		a.opt.Log.Error("roll call started but not every prompt was recorded", "rollcall", rc.ID, "err", err)
	}
	a.opt.Log.Info("roll call started", "rollcall", rc.ID, "embassy", t.Embassy, "by", t.Label, "members", len(rc.Members))
	rep, found, err := a.opt.RollCalls.RollCall(rc.ID)
	if err == nil && !found {
		err = fmt.Errorf("roll call %s vanished after it started", rc.ID)
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.Header().Set("Location", Prefix+"rollcalls/"+rc.ID)
	writeJSON(w, http.StatusCreated, struct {
		RollCall *rollCallView `json:"rollcall"`
	}{rollCallViewOf(rep)})
}

// getRollCall answers GET /v1/rollcalls/{id}; another embassy's roll
// call is 404, like one that does not exist.
func (a *API) getRollCall(w http.ResponseWriter, r *http.Request, t Token, id string) {
	if a.opt.RollCalls == nil {
		writeCode(w, http.StatusNotFound, errs.ENOTFOUND, "no such endpoint")
		return
	}
	rep, found, err := a.opt.RollCalls.RollCall(id)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	if !found || rep.EmbassyID != t.Embassy {
		writeCode(w, http.StatusNotFound, errs.ENOTFOUND, "no such roll call")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		RollCall *rollCallView `json:"rollcall"`
	}{rollCallViewOf(rep)})
}
