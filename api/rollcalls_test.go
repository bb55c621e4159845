package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/webhook"
)

type rollCallOut struct {
	RollCall struct {
		ID       string    `json:"id"`
		Country  string    `json:"country"`
		City     string    `json:"city"`
		Deadline time.Time `json:"deadline"`
		Closed   bool      `json:"closed"`
		Counts   struct {
			Members, Responded, Pending, Missed, Unprompted, Prompted int
		} `json:"counts"`
		// The lists, walked page by page (rollCall).
		Responded  []string `json:"-"`
		Pending    []string `json:"-"`
		Missed     []string `json:"-"`
		Unprompted []string `json:"-"`
	} `json:"rollcall"`
	Page *struct {
		List       string   `json:"list"`
		IDs        []string `json:"ids"`
		NextCursor *string  `json:"next_cursor"`
	} `json:"page"`
}

// rollCall reads roll call id as tok sees it: the counts, and every list
// walked a page of limit at a time, each page checked against the counts.
func (w *world) rollCall(id, tok string, limit int) rollCallOut {
	w.t.Helper()
	var rc rollCallOut
	w.must(http.StatusOK, "GET", "/v1/rollcalls/"+id, tok, nil).decode(w.t, &rc)
	if rc.Page != nil {
		w.t.Errorf("a page without ?list: %+v", rc.Page)
	}
	for list, dst := range map[string]*[]string{"responded": &rc.RollCall.Responded, "pending": &rc.RollCall.Pending,
		"missed": &rc.RollCall.Missed, "unprompted": &rc.RollCall.Unprompted} {
		*dst = []string{}
		cursor := ""
		for pages := 0; ; pages++ {
			var p rollCallOut
			w.must(http.StatusOK, "GET", fmt.Sprintf("/v1/rollcalls/%s?list=%s&limit=%d&cursor=%s", id, list, limit, cursor), tok, nil).decode(w.t, &p)
			if p.Page == nil || p.Page.List != list || len(p.Page.IDs) > limit || pages > 1000 {
				w.t.Fatalf("%s page %d: %+v", list, pages, p.Page)
			}
			*dst = append(*dst, p.Page.IDs...)
			if p.Page.NextCursor == nil {
				break
			}
			cursor = *p.Page.NextCursor
		}
		if !slices.IsSorted(*dst) || len(slices.Compact(slices.Clone(*dst))) != len(*dst) {
			w.t.Errorf("%s: not ascending and distinct: %v", list, *dst)
		}
	}
	return rc
}

// pseudonymOf is the registrant id the embassy sees for the citizen of
// one of newWorld's duress cases.
func (w *world) pseudonymOf(emb string) string {
	w.t.Helper()
	return dialogs.Pseudonym(registrantKey(w.t, w, w.duressCase(emb)))
}

// told reports whether u was sent a message containing s.
func (w *world) told(u fakeapi.User, s string) bool {
	for _, c := range w.API.Sent(u.ID) {
		if strings.Contains(c.Params["text"], s) {
			return true
		}
	}
	return false
}

// TestRollCallEndToEnd: a roll call in Phnom Penh over real HTTP. Both of
// my-mekong's citizens there are prompted by Telegram; one answers, one
// stays silent and is escalated as rollcall.missed at the deadline; the
// report follows each step and validates against docs/api.yaml. id-mekong
// sees none of it.
func TestRollCallEndToEnd(t *testing.T) {
	w := newWorld(t)
	amir := fakeapi.User{ID: 8003, Username: "amir", Lang: "en"}
	for _, text := range registration("MY") {
		w.Say(amir, text)
	}
	siti, silent := w.pseudonymOf("my-mekong"), ""
	w.WaitFor("amir listed", func() bool {
		page, _ := w.Store.Registrants("my-mekong", store.StatusActive, "", 10)
		for _, r := range page.Rows {
			if r.ID != siti {
				silent = r.ID
			}
		}
		return silent != ""
	})
	deadline := w.Runner.Now().Add(4 * time.Second).Truncate(time.Second).Add(time.Second)
	var rc rollCallOut
	r := w.must(http.StatusAccepted, "POST", "/v1/rollcalls", tokMY, map[string]any{
		"country": "KH", "city": "phnom penh", "deadline": deadline.Format(time.RFC3339)})
	r.decode(t, &rc)
	id := rc.RollCall.ID
	if r.Header.Get("Location") != "/v1/rollcalls/"+id {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	if rc.RollCall.Counts.Members != 2 || rc.RollCall.Counts.Pending != 2 {
		t.Errorf("accepted: counts %+v, want 2 members pending", rc.RollCall.Counts)
	}
	got := w.rollCall(id, tokMY, 1).RollCall
	slices.Sort(got.Pending)
	want := []string{siti, silent}
	slices.Sort(want)
	if got.Counts.Members != 2 || !slices.Equal(got.Pending, want) || len(got.Responded)+len(got.Missed) != 0 || got.Closed {
		t.Fatalf("started: %+v, want pending %v", got, want)
	}
	// Both were asked, by Telegram; each prompt accepted counts once.
	w.WaitFor("both prompted", func() bool {
		return w.told(w.siti, "check in now") && w.told(amir, "check in now")
	})
	w.WaitFor("both prompts counted as accepted", func() bool {
		return w.rollCall(id, tokMY, 1).RollCall.Counts.Prompted == 2
	})
	// Another embassy's token: 404, exactly like an unknown id.
	foreign := w.do("GET", "/v1/rollcalls/"+id, tokID, nil)
	missing := w.do("GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa", tokID, nil)
	if foreign.Status != http.StatusNotFound || string(foreign.Body) != string(missing.Body) {
		t.Errorf("another embassy's roll call: %d %s; a missing one: %s", foreign.Status, foreign.Body, missing.Body)
	}

	w.Say(w.siti, "I'm safe")
	w.WaitFor("siti responded", func() bool {
		now := w.rollCall(id, tokMY, 1)
		return slices.Equal(now.RollCall.Responded, []string{siti}) && slices.Equal(now.RollCall.Pending, []string{silent})
	})

	time.Sleep(time.Until(deadline) + 100*time.Millisecond)
	if _, err := w.Runner.FireRollCalls(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = w.rollCall(id, tokMY, 2).RollCall
	if !got.Closed || !slices.Equal(got.Missed, []string{silent}) || !slices.Equal(got.Responded, []string{siti}) ||
		len(got.Pending) != 0 || got.Counts.Missed != 1 || got.Counts.Responded != 1 || got.Counts.Members != 2 || got.Counts.Prompted != 2 {
		t.Errorf("after the deadline: %+v", got)
	}
	// One rollcall.missed, about the silent one, to my-mekong.
	outbox, err := w.Store.Outbox()
	if err != nil {
		t.Fatal(err)
	}
	var missed []string
	for _, ev := range outbox {
		if ev.Type == escalation.TypeRollcallMissed {
			if ev.EmbassyID != "my-mekong" || ev.Registrant == nil {
				t.Errorf("rollcall.missed %+v", ev)
				continue
			}
			missed = append(missed, ev.Registrant.ID)
		}
	}
	if !slices.Equal(missed, []string{silent}) {
		t.Errorf("rollcall.missed about %v, want [%s]", missed, silent)
	}
	w.WaitFor("rollcall.missed delivered", func() bool {
		return slices.ContainsFunc(w.Receiver.Events(), func(ev webhook.Event) bool {
			return ev.Type == "rollcall.missed" && ev.EmbassyID == "my-mekong"
		})
	})
}

// TestRollCallIsolation: an embassy's roll call asks only its own
// registrants, in the area, and another embassy cannot read it.
func TestRollCallIsolation(t *testing.T) {
	w := newWorld(t)
	deadline := w.Runner.Now().Add(time.Hour).Format(time.RFC3339)
	var my, id rollCallOut
	w.must(http.StatusAccepted, "POST", "/v1/rollcalls", tokMY, map[string]any{"country": "KH", "deadline": deadline}).decode(t, &my)
	w.must(http.StatusAccepted, "POST", "/v1/rollcalls", tokID, map[string]any{"country": "KH", "deadline": deadline,
		"text": map[string]string{"en": "Flooding in Phnom Penh: are you safe? Reply OK.", "id": "Banjir: apakah Anda aman?"}}).decode(t, &id)
	my, id = w.rollCall(my.RollCall.ID, tokMY, 50), w.rollCall(id.RollCall.ID, tokID, 50)
	if !slices.Equal(my.RollCall.Pending, []string{w.pseudonymOf("my-mekong")}) || !slices.Equal(id.RollCall.Pending, []string{w.pseudonymOf("id-mekong")}) {
		t.Errorf("my-mekong asked %v, id-mekong %v", my.RollCall.Pending, id.RollCall.Pending)
	}
	w.WaitFor("budi asked in the embassy's words", func() bool {
		return w.told(w.budi, "Flooding in Phnom Penh")
	})
	if w.told(w.siti, "Flooding") {
		t.Error("siti got id-mekong's question")
	}
	for tok, rc := range map[string]string{tokID: my.RollCall.ID, tokMY: id.RollCall.ID} {
		for _, q := range []string{"", "?list=pending", "?list=responded&limit=1"} {
			if r := w.do("GET", "/v1/rollcalls/"+rc+q, tok, nil); r.Status != http.StatusNotFound || r.code(t) != "not_found" {
				t.Errorf("another embassy's roll call%s: %d %s", q, r.Status, r.Body)
			}
		}
	}
	// A city nobody is in: a roll call of no one, not an error.
	var none rollCallOut
	w.must(http.StatusAccepted, "POST", "/v1/rollcalls", tokMY, map[string]any{"country": "TH", "city": "Chiang Mai", "deadline": deadline}).decode(t, &none)
	if none.RollCall.Counts.Members != 0 {
		t.Errorf("empty area: %+v", none.RollCall)
	}
}

// TestRollCallAndRegistrantsBadInput: every kind of bad request to the new
// endpoints answers its status and stable code, validated against
// docs/api.yaml, and no refused roll call prompts anyone.
func TestRollCallAndRegistrantsBadInput(t *testing.T) {
	w := newWorld(t, func(o *api.Options) { o.Burst = 100000 })
	now := w.Runner.Now()
	at := func(d time.Duration) string { return `"` + now.Add(d).Format(time.RFC3339) + `"` }
	ok := `"country":"KH","deadline":` + at(time.Hour)
	long := strings.Repeat("é", 1001)
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"DeadlinePast", "POST", "/v1/rollcalls", `{"country":"KH","deadline":` + at(-time.Minute) + `}`, 400, "invalid"},
		{"DeadlineNow", "POST", "/v1/rollcalls", `{"country":"KH","deadline":` + at(-time.Second) + `}`, 400, "invalid"},
		{"DeadlineBeyondWeek", "POST", "/v1/rollcalls", `{"country":"KH","deadline":` + at(7*24*time.Hour+time.Minute) + `}`, 400, "invalid"},
		{"DeadlineNotATime", "POST", "/v1/rollcalls", `{"country":"KH","deadline":"tomorrow"}`, 400, "invalid"},
		{"DeadlineNoZone", "POST", "/v1/rollcalls", `{"country":"KH","deadline":"2030-01-01T10:00:00"}`, 400, "invalid"},
		{"DeadlineMissing", "POST", "/v1/rollcalls", `{"country":"KH"}`, 400, "missing"},
		{"CountryMissing", "POST", "/v1/rollcalls", `{"deadline":` + at(time.Hour) + `}`, 400, "missing"},
		{"CountryBadCode", "POST", "/v1/rollcalls", `{"country":"KHM","deadline":` + at(time.Hour) + `}`, 400, "invalid"},
		{"CountryDigits", "POST", "/v1/rollcalls", `{"country":"K1","deadline":` + at(time.Hour) + `}`, 400, "invalid"},
		{"CountryNotCovered", "POST", "/v1/rollcalls", `{"country":"MY","deadline":` + at(time.Hour) + `}`, 400, "invalid"},
		{"CountryUnknown", "POST", "/v1/rollcalls", `{"country":"JP","deadline":` + at(time.Hour) + `}`, 400, "invalid"},
		{"CityTooLong", "POST", "/v1/rollcalls", `{` + ok + `,"city":"` + strings.Repeat("a", 101) + `"}`, 400, "invalid"},
		{"CityControl", "POST", "/v1/rollcalls", `{` + ok + `,"city":"a\u0000b"}`, 400, "invalid"},
		{"TextTooLong", "POST", "/v1/rollcalls", `{` + ok + `,"text":{"en":"` + long + `"}}`, 400, "invalid"},
		{"TextEmpty", "POST", "/v1/rollcalls", `{` + ok + `,"text":{"en":"  "}}`, 400, "invalid"},
		{"TextUnknownLanguage", "POST", "/v1/rollcalls", `{` + ok + `,"text":{"xx":"hello"}}`, 400, "invalid"},
		{"TextNotAnObject", "POST", "/v1/rollcalls", `{` + ok + `,"text":"hello"}`, 400, "invalid"},
		{"UnknownField", "POST", "/v1/rollcalls", `{` + ok + `,"area":"x"}`, 400, "unknown_key"},
		{"Malformed", "POST", "/v1/rollcalls", `{"country":`, 400, "invalid"},
		{"EmptyBody", "POST", "/v1/rollcalls", ``, 400, "missing"},
		{"TooLarge", "POST", "/v1/rollcalls", `{` + ok + `,"text":{"en":"` + strings.Repeat("a", 64<<10) + `"}}`, 413, "too_large"},
		{"RollCallWrongMethod", "GET", "/v1/rollcalls", "", 405, "method_not_allowed"},
		{"RollCallIDWrongMethod", "POST", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa", "{}", 405, "method_not_allowed"},
		{"RollCallUnknown", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa", "", 404, "not_found"},
		{"RollCallNonsenseID", "GET", "/v1/rollcalls/..%2f..", "", 404, "not_found"},
		{"RollCallQuery", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa?x=1", "", 400, "unknown_key"},
		{"RollCallBadList", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa?list=all", "", 400, "invalid"},
		{"RollCallListRepeated", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa?list=pending&list=missed", "", 400, "invalid"},
		{"RollCallCursorNoList", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa?cursor=abc", "", 400, "missing"},
		{"RollCallLimitNoList", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa?limit=5", "", 400, "missing"},
		{"RollCallLimitZero", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa?list=pending&limit=0", "", 400, "invalid"},
		{"RollCallLimitTooBig", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa?list=pending&limit=201", "", 400, "invalid"},
		{"RollCallBadCursor", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa?list=pending&cursor=abc", "", 400, "invalid"},
		{"RollCallCursorNotBase64", "GET", "/v1/rollcalls/rc_aaaaaaaaaaaaaaaa?list=pending&cursor=%21%21", "", 400, "invalid"},
		{"RegistrantsBadStatus", "GET", "/v1/registrants?status=late", "", 400, "invalid"},
		{"RegistrantsUnknownQuery", "GET", "/v1/registrants?country=KH", "", 400, "unknown_key"},
		{"RegistrantsRepeated", "GET", "/v1/registrants?status=active&status=paused", "", 400, "invalid"},
		{"RegistrantsLimitZero", "GET", "/v1/registrants?limit=0", "", 400, "invalid"},
		{"RegistrantsLimitTooBig", "GET", "/v1/registrants?limit=201", "", 400, "invalid"},
		{"RegistrantsBadCursor", "GET", "/v1/registrants?cursor=abc", "", 400, "invalid"},
		{"RegistrantsNotBase64", "GET", "/v1/registrants?cursor=%21%21", "", 400, "invalid"},
		{"RegistrantsWrongMethod", "POST", "/v1/registrants", "{}", 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			var body []byte
			if tc.body != "" || tc.method == "POST" {
				body = []byte(tc.body)
			}
			r := w.do(tc.method, tc.path, tokMY, body)
			if r.Status != tc.status || r.code(t) != tc.code {
				t.Errorf("answered %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
			if strings.Contains(string(r.Body), "goroutine") || strings.Contains(string(r.Body), ".go:") {
				t.Errorf("the answer shows internals: %s", r.Body)
			}
		})
	}
	w.t = t
	if w.told(w.siti, "check in now") {
		t.Error("a refused roll call prompted someone")
	}
	for _, tok := range []string{"", "Bearer nope"} {
		r := w.do("POST", "/v1/rollcalls", strings.TrimPrefix(tok, "Bearer "), []byte(`{`+ok+`}`))
		if r.Status != http.StatusUnauthorized {
			t.Errorf("roll call with token %q: %d", tok, r.Status)
		}
	}
}

// heldPrompts is a RollCaller whose prompting waits until released, to
// see what the API answers while the prompts are still going out.
type heldPrompts struct {
	api.RollCaller
	release chan struct{}
}

func (h heldPrompts) PromptRollCall(ctx context.Context, rc store.RollCall) error {
	<-h.release
	return h.RollCaller.PromptRollCall(ctx, rc)
}

// TestRollCallAnswersBeforePrompts: POST /v1/rollcalls answers 202, with
// everyone listed as pending, while no prompt has gone out yet; the
// prompts follow in the background, after the client is gone.
func TestRollCallAnswersBeforePrompts(t *testing.T) {
	release := make(chan struct{})
	w := newWorld(t, func(o *api.Options) { o.RollCalls = heldPrompts{o.RollCalls, release} })
	deadline := w.Runner.Now().Add(time.Hour).Format(time.RFC3339)
	var rc rollCallOut
	w.must(http.StatusAccepted, "POST", "/v1/rollcalls", tokMY, map[string]any{"country": "KH", "deadline": deadline}).decode(t, &rc)
	got := w.rollCall(rc.RollCall.ID, tokMY, 50).RollCall
	if got.Counts.Members != 1 || !slices.Equal(got.Pending, []string{w.pseudonymOf("my-mekong")}) {
		t.Errorf("accepted: %+v", got)
	}
	if w.told(w.siti, "check in now") {
		t.Fatal("siti was asked before the prompts were released")
	}
	close(release)
	w.WaitFor("siti asked in the background", func() bool { return w.told(w.siti, "check in now") })
}

// TestRollCallCursorBound: a page cursor works only for the roll call,
// list and embassy it was given for; elsewhere it is 400 invalid, never a
// page of something else.
func TestRollCallCursorBound(t *testing.T) {
	w := newWorld(t)
	amir := fakeapi.User{ID: 8003, Username: "amir", Lang: "en"}
	for _, text := range registration("MY") {
		w.Say(amir, text)
	}
	w.WaitFor("amir listed", func() bool {
		page, _ := w.Store.Registrants("my-mekong", store.StatusActive, "", 10)
		return len(page.Rows) == 2
	})
	deadline := w.Runner.Now().Add(time.Hour).Format(time.RFC3339)
	var a, b rollCallOut
	w.must(http.StatusAccepted, "POST", "/v1/rollcalls", tokMY, map[string]any{"country": "KH", "deadline": deadline}).decode(t, &a)
	w.must(http.StatusAccepted, "POST", "/v1/rollcalls", tokMY, map[string]any{"country": "KH", "deadline": deadline}).decode(t, &b)
	var first rollCallOut
	w.must(http.StatusOK, "GET", "/v1/rollcalls/"+a.RollCall.ID+"?list=pending&limit=1", tokMY, nil).decode(t, &first)
	if first.Page == nil || first.Page.NextCursor == nil || len(first.Page.IDs) != 1 {
		t.Fatalf("first page: %+v", first.Page)
	}
	c := *first.Page.NextCursor
	var second rollCallOut
	w.must(http.StatusOK, "GET", "/v1/rollcalls/"+a.RollCall.ID+"?list=pending&limit=1&cursor="+c, tokMY, nil).decode(t, &second)
	if second.Page == nil || len(second.Page.IDs) != 1 || second.Page.IDs[0] <= first.Page.IDs[0] || second.Page.NextCursor != nil {
		t.Errorf("second page: %+v after %v", second.Page, first.Page.IDs)
	}
	for name, path := range map[string]string{
		"another list":      "/v1/rollcalls/" + a.RollCall.ID + "?list=responded&cursor=" + c,
		"another roll call": "/v1/rollcalls/" + b.RollCall.ID + "?list=pending&cursor=" + c,
		"registrant list":   "/v1/registrants?status=active&cursor=" + c,
		"tampered":          "/v1/rollcalls/" + a.RollCall.ID + "?list=pending&cursor=" + flip(c),
	} {
		if r := w.do("GET", path, tokMY, nil); r.Status != http.StatusBadRequest || r.code(t) != "invalid" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if r := w.do("GET", "/v1/rollcalls/"+a.RollCall.ID+"?list=pending&cursor="+c, tokID, nil); r.Status != http.StatusBadRequest {
		t.Errorf("another embassy's token with the cursor: %d %s", r.Status, r.Body)
	}
}

// flip changes the cursor's first character (all six of its bits count).
func flip(c string) string {
	if c[0] == 'A' {
		return "B" + c[1:]
	}
	return "A" + c[1:]
}
