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
// it. CreateRollCall records the roll call with its members listed and
// returns at once; PromptRollCall then asks them, which at 100,000
// members takes seconds, so the API runs it in the background. Reports
// come from the Store (RollCallCounts, RollCallPage), which keeps them
// as it goes.
type RollCaller interface {
	CreateRollCall(q bot.RollCallRequest) (store.RollCall, error)
	PromptRollCall(ctx context.Context, rc store.RollCall) error
}

// MaxCity bounds a roll call's city, in characters.
const MaxCity = 100

// rollCallLists are the member lists a roll call pages.
var rollCallLists = map[string]bool{"responded": true, "pending": true, "missed": true, "unprompted": true}

// rollCallView is a roll call as the API shows it: where its members
// stand, as counts (the ids come a page at a time, rollCallPage).
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
		Prompted   int `json:"prompted"`
	} `json:"counts"`
}

// rollCallPage is one page of one of a roll call's lists, by
// pseudonymous id in ascending order.
type rollCallPage struct {
	List       string   `json:"list"`
	IDs        []string `json:"ids"`
	NextCursor *string  `json:"next_cursor"`
}

// rollCallViewOf is the view of a roll call with its counts, which the
// store keeps as counters: reading them does not read the memberships.
func rollCallViewOf(rc store.RollCall, n store.RollCallCounts) *rollCallView {
	v := &rollCallView{ID: rc.ID, Country: rc.Country, City: rc.City, CreatedAt: rc.CreatedAt,
		Deadline: rc.Deadline, Closed: rc.Closed}
	v.Counts.Members, v.Counts.Responded, v.Counts.Pending = n.Members, n.Responded, n.Pending
	v.Counts.Missed, v.Counts.Unprompted, v.Counts.Prompted = n.Missed, n.Unprompted, n.Prompted
	return v
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

// startRollCall answers POST /v1/rollcalls: it records a roll call of
// every active registrant of the embassy in the area and answers 202 with
// its id and counts at once; the prompts go out in the background, on a
// context not tied to the request (a client that hangs up does not stop
// them; a restart half-way is resumed by the runner at its next start).
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
	rc, err := a.opt.RollCalls.CreateRollCall(q)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.opt.Log.Info("roll call started", "rollcall", rc.ID, "embassy", t.Embassy, "by", t.Label, "members", len(rc.Members))
	rcNow, counts, found, err := a.opt.Store.RollCallCounts(rc.ID)
	if err == nil && !found {
		err = fmt.Errorf("roll call %s vanished after it started", rc.ID)
	}
	a.background.Add(1)
	go func() {
		defer a.background.Done()
		if err := a.opt.RollCalls.PromptRollCall(context.WithoutCancel(r.Context()), rc); err != nil {
			// Those not prompted stay listed (pending); the runner
			// prompts them again at its next start.
			a.opt.Log.Error("roll call started but not every prompt was recorded", "rollcall", rc.ID, "err", err)
		}
	}()
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.Header().Set("Location", Prefix+"rollcalls/"+rc.ID)
	writeJSON(w, http.StatusAccepted, struct {
		RollCall *rollCallView `json:"rollcall"`
	}{rollCallViewOf(rcNow, counts)})
}

// Wait returns once every roll call's background prompting has finished;
// call it on shutdown, after the listener stopped, before the store
// closes.
func (a *API) Wait() { a.background.Wait() }

// getRollCall answers GET /v1/rollcalls/{id}: the counts, and with
// ?list= one page of that list's ids (?cursor=, ?limit= as for the
// registrants). Another embassy's roll call is 404, like one that does
// not exist.
func (a *API) getRollCall(w http.ResponseWriter, r *http.Request, t Token, id string) {
	if a.opt.RollCalls == nil {
		writeCode(w, http.StatusNotFound, errs.ENOTFOUND, "no such endpoint")
		return
	}
	q := r.URL.Query()
	list := q.Get("list")
	var err error
	if _, ok := rollCallLists[list]; list != "" && !ok {
		err = invalid("list", "must be responded, pending, missed or unprompted")
	}
	if err == nil && list == "" && (q.Has("cursor") || q.Has("limit")) {
		err = &errs.Error{Code: errs.EMISSING, Key: "list", Reason: "say which list to page (responded, pending, missed or unprompted)"}
	}
	limit := 0
	if err == nil {
		limit, err = limitParam(q)
	}
	after := ""
	if err == nil && q.Get("cursor") != "" {
		after, err = a.cursors.open(q.Get("cursor"), t.Embassy, rollCallCursorList(id, list))
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	rc, counts, found, err := a.opt.Store.RollCallCounts(id)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	if !found || rc.EmbassyID != t.Embassy {
		writeCode(w, http.StatusNotFound, errs.ENOTFOUND, "no such roll call")
		return
	}
	out := struct {
		RollCall *rollCallView `json:"rollcall"`
		Page     *rollCallPage `json:"page,omitempty"`
	}{RollCall: rollCallViewOf(rc, counts)}
	if list != "" {
		// One seek and the page in the store's list, whatever the size.
		ids, next, err := a.opt.Store.RollCallPage(id, list, after, limit)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		out.Page = &rollCallPage{List: list, IDs: ids}
		if next != "" {
			c := a.cursors.seal(next, t.Embassy, rollCallCursorList(id, list))
			out.Page.NextCursor = &c
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// rollCallCursorList is what a roll-call page cursor is bound to (with
// the embassy): the roll call and the list, so it cannot be carried to
// another of either.
func rollCallCursorList(id, list string) string {
	return "rollcall\x00" + id + "\x00" + list
}
