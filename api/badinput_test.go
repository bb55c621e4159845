package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/api"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// TestBadInput: every kind of bad request answers its status and stable
// code, and the body follows docs/api.yaml's Error schema.
func TestBadInput(t *testing.T) {
	w := newWorld(t)
	c := w.firstCase(tokMY).ID
	big := `{"text":"` + strings.Repeat("a", 64<<10) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"MalformedJSON", "POST", "/v1/cases/" + c + "/note", `{"text":`, 400, "invalid"},
		{"NotAnObject", "POST", "/v1/cases/" + c + "/note", `["text"]`, 400, "invalid"},
		{"TwoValues", "POST", "/v1/cases/" + c + "/note", `{"text":"a"}{"text":"b"}`, 400, "invalid"},
		{"UnknownField", "POST", "/v1/cases/" + c + "/note", `{"text":"a","txt":"b"}`, 400, "unknown_key"},
		{"UnknownFieldOnAck", "POST", "/v1/cases/" + c + "/ack", `{"force":true}`, 400, "unknown_key"},
		{"WrongType", "POST", "/v1/cases/" + c + "/note", `{"text":42}`, 400, "invalid"},
		{"EmptyNote", "POST", "/v1/cases/" + c + "/note", `{"text":"   "}`, 400, "missing"},
		{"NoteTooLong", "POST", "/v1/cases/" + c + "/note", `{"text":"` + strings.Repeat("é", 4001) + `"}`, 400, "invalid"},
		{"NoteControlChars", "POST", "/v1/cases/" + c + "/note", `{"text":"a\u0007b"}`, 400, "invalid"},
		{"MissingOutcome", "POST", "/v1/cases/" + c + "/resolve", `{"note":"x"}`, 400, "missing"},
		{"BadOutcome", "POST", "/v1/cases/" + c + "/resolve", `{"outcome":"fine"}`, 400, "invalid"},
		{"BodyOver64KiB", "POST", "/v1/cases/" + c + "/note", big, 413, "too_large"},
		{"UnknownQuery", "GET", "/v1/cases?stauts=open", "", 400, "unknown_key"},
		{"RepeatedQuery", "GET", "/v1/cases?status=open&status=acked", "", 400, "invalid"},
		{"BadStatus", "GET", "/v1/cases?status=closed", "", 400, "invalid"},
		{"BadType", "GET", "/v1/cases?type=duress", "", 400, "invalid"},
		{"BadSeverity", "GET", "/v1/cases?severity=urgent", "", 400, "invalid"},
		{"LimitZero", "GET", "/v1/cases?limit=0", "", 400, "invalid"},
		{"LimitTooBig", "GET", "/v1/cases?limit=201", "", 400, "invalid"},
		{"LimitNotANumber", "GET", "/v1/events?limit=ten", "", 400, "invalid"},
		{"BadCursor", "GET", "/v1/cases?cursor=-1", "", 400, "invalid"},
		{"BadAfter", "GET", "/v1/events?after=abc", "", 400, "invalid"},
		{"BadUnacked", "GET", "/v1/events?unacked=yes", "", 400, "invalid"},
		{"UnknownCase", "GET", "/v1/cases/case_424242", "", 404, "not_found"},
		{"UnknownCaseAck", "POST", "/v1/cases/nonsense/ack", "", 404, "not_found"},
		{"UnknownEvent", "POST", "/v1/events/evt_nope/ack", "", 404, "not_found"},
		{"UnknownEndpoint", "GET", "/v1/registrantz", "", 404, "not_found"},
		{"TrailingSlash", "GET", "/v1/cases/", "", 404, "not_found"},
		{"WrongMethodList", "POST", "/v1/cases", "{}", 405, "method_not_allowed"},
		{"WrongMethodCase", "DELETE", "/v1/cases/" + c, "", 405, "method_not_allowed"},
		{"WrongMethodAck", "GET", "/v1/cases/" + c + "/ack", "", 405, "method_not_allowed"},
		{"WrongMethodEvents", "PUT", "/v1/events", "", 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := w.do(tc.method, tc.path, tokMY, body)
			if r.Status != tc.status || r.code(t) != tc.code {
				t.Errorf("answered %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
			if tc.status == 405 && r.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if strings.Contains(string(r.Body), "goroutine") || strings.Contains(string(r.Body), ".go:") {
				t.Errorf("the answer shows internals: %s", r.Body)
			}
		})
	}
	// None of the refused changes touched the case.
	w.t = t
	got := w.firstCase(tokMY)
	if got.ID != c || got.Status != "open" || len(got.Notes) != 0 {
		t.Errorf("after refused requests the case is %+v", got)
	}
}

// TestRateLimitPerToken: one token's burst spent answers 429 with
// Retry-After; another token of the same embassy is unaffected.
func TestRateLimitPerToken(t *testing.T) {
	w := newWorld(t)
	limited := 0
	for i := 0; i < 200 && limited == 0; i++ {
		r := w.do("GET", "/v1/cases?limit=1", tokBurst, nil)
		switch r.Status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited++
			if r.code(t) != "rate_limited" {
				t.Errorf("429 with code %q", r.code(t))
			}
			if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
				t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("answered %d %s", r.Status, r.Body)
		}
	}
	if limited == 0 {
		t.Fatal("200 requests at once were never limited")
	}
	w.must(http.StatusOK, "GET", "/v1/cases", tokMY, nil)
}

// TestCasePagination: cases of two embassies interleaved; each embassy's
// pages, at every page size, list exactly its own cases, newest first,
// each once, and filters hold on every page.
func TestCasePagination(t *testing.T) {
	w := newWorld(t, func(o *api.Options) { o.Burst = 100000 })
	now := w.Runner.Now()
	// 23 more registrants with a case each, alternating embassies and
	// severities (written through the store, as the engine would).
	want := map[string][]string{}
	for i := range 23 {
		emb := []string{"my-mekong", "id-mekong"}[i%2]
		sev := []escalation.Severity{escalation.SeverityCritical, escalation.SeverityHigh, escalation.SeverityInfo}[i%3]
		key := store.UserKey([]byte("pepper-pepper-pepper-pepper-0000"), "test", strconv.Itoa(i))
		out, err := w.Store.Process(key, "", now.Add(time.Duration(i)*time.Second), func(prev dialogs.State, _ bool) dialogs.Result {
			return dialogs.Result{State: prev, Escalations: []dialogs.Escalation{{Type: escalation.TypeSOSRaised, Severity: sev,
				EmbassyID: emb, Case: dialogs.CaseOpen, Registrant: dialogs.RegistrantView{ID: dialogs.Pseudonym(key)}}}}
		})
		if err != nil {
			t.Fatal(err)
		}
		want[emb] = append(want[emb], out.Events[0].CaseID)
	}
	for tok, emb := range map[string]string{tokMY: "my-mekong", tokID: "id-mekong"} {
		for _, size := range []int{1, 2, 3, 5, 50} {
			for _, filter := range []string{"", "&severity=high", "&type=sos.raised", "&status=open"} {
				var got []string
				cursor := ""
				for pages := 0; ; pages++ {
					var l caseList
					w.t = t
					w.must(http.StatusOK, "GET", "/v1/cases?limit="+strconv.Itoa(size)+filter+cursor, tok, nil).decode(t, &l)
					if len(l.Cases) > size {
						t.Fatalf("page of %d for limit %d", len(l.Cases), size)
					}
					for _, c := range l.Cases {
						got = append(got, c.ID)
					}
					if l.NextCursor == nil {
						break
					}
					cursor = "&cursor=" + *l.NextCursor
					if pages > 100 {
						t.Fatal("pagination does not end")
					}
				}
				// Expected: the embassy's cases matching the filter, newest first.
				var exp []string
				all := append([]string{}, want[emb]...)
				for i := len(all) - 1; i >= 0; i-- {
					n := indexOf(want[emb], all[i])*2 + map[string]int{"my-mekong": 0, "id-mekong": 1}[emb]
					if filter == "&severity=high" && n%3 != 1 {
						continue
					}
					exp = append(exp, all[i])
				}
				if filter == "" || filter == "&status=open" { // the duress case (oldest) matches these
					exp = append(exp, w.duressCase(emb))
				}
				if strings.Join(got, ",") != strings.Join(exp, ",") {
					t.Errorf("%s limit %d%s: %v, want %v", emb, size, filter, got, exp)
				}
			}
		}
	}
}

// duressCase is the embassy's duress case from newWorld.
func (w *world) duressCase(emb string) string {
	w.t.Helper()
	outbox, err := w.Store.Outbox()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, ev := range outbox {
		if ev.EmbassyID == emb && ev.Type == escalation.TypeDuressTriggered {
			return ev.CaseID
		}
	}
	w.t.Fatalf("no duress case for %s", emb)
	return ""
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
