package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// firstCase returns the embassy's newest case, as the API lists it.
func (w *world) firstCase(token string) caseOut {
	w.t.Helper()
	var l caseList
	w.must(http.StatusOK, "GET", "/v1/cases", token, nil).decode(w.t, &l)
	if len(l.Cases) == 0 {
		w.t.Fatal("the embassy has no case")
	}
	return l.Cases[0]
}

// endpoints lists every endpoint with a path naming id and a body that
// would be accepted, so tables can try each.
func endpoints(caseID, eventID string) []struct{ method, path, body string } {
	return []struct{ method, path, body string }{
		{"GET", "/v1/cases", ""},
		{"GET", "/v1/cases/" + caseID, ""},
		{"POST", "/v1/cases/" + caseID + "/ack", "{}"},
		{"POST", "/v1/cases/" + caseID + "/resolve", `{"outcome":"safe"}`},
		{"POST", "/v1/cases/" + caseID + "/note", `{"text":"called the employer"}`},
		{"GET", "/v1/events", ""},
		{"POST", "/v1/events/" + eventID + "/ack", ""},
	}
}

// TestEmbassyAPI runs the API on the whole program (real HTTP on :0, real
// bbolt, real engine and runner, Telegram through the fake Bot API) and
// validates every response against docs/api.yaml.
func TestEmbassyAPI(t *testing.T) {
	w := newWorld(t)
	my := w.firstCase(tokMY)
	id := w.firstCase(tokID)
	var evs eventList
	w.must(http.StatusOK, "GET", "/v1/events", tokID, nil).decode(t, &evs)
	if len(evs.Events) == 0 {
		t.Fatal("id-mekong has no events")
	}
	var idEvent eventOut
	json.Unmarshal(evs.Events[0], &idEvent)

	t.Run("Unauthorized", func(t *testing.T) {
		w.t = t
		for _, ep := range endpoints(my.ID, idEvent.ID) {
			for _, auth := range []string{"", "Bearer", "Bearer ", "Basic " + tokMY, "Bearer " + tokMY[:len(tokMY)-1],
				"Bearer " + tokMY + "x", "Bearer not-a-token", "bearer" + tokMY} {
				req, _ := http.NewRequest(ep.method, w.base+ep.path, strings.NewReader(ep.body))
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s with Authorization %q answered %d, want 401 with WWW-Authenticate", ep.method, ep.path, auth, res.StatusCode)
				}
			}
			r := w.do(ep.method, ep.path, "", []byte(ep.body))
			if r.Status != http.StatusUnauthorized || r.code(t) != "unauthorized" {
				t.Errorf("%s %s without a token: %d %s", ep.method, ep.path, r.Status, r.Body)
			}
		}
	})

	t.Run("IsolationBetweenEmbassies", func(t *testing.T) {
		w.t = t
		// id-mekong's token on my-mekong's case and event: 404 on every
		// endpoint naming an id, exactly as for an id that does not exist.
		var myEvs eventList
		w.must(http.StatusOK, "GET", "/v1/events", tokMY, nil).decode(t, &myEvs)
		var myEvent eventOut
		json.Unmarshal(myEvs.Events[0], &myEvent)
		for _, ep := range endpoints(my.ID, myEvent.ID) {
			if !strings.Contains(ep.path, "case_") && !strings.Contains(ep.path, "evt_") {
				continue
			}
			foreign := w.do(ep.method, ep.path, tokID, []byte(ep.body))
			missing := w.do(ep.method, strings.NewReplacer(my.ID, "case_999999", myEvent.ID, "evt_aaaaaaaaaaaaaaaaaaaaaaaaaa").Replace(ep.path), tokID, []byte(ep.body))
			if foreign.Status != http.StatusNotFound || foreign.code(t) != "not_found" {
				t.Errorf("%s %s with the other embassy's token: %d %s, want 404", ep.method, ep.path, foreign.Status, foreign.Body)
			}
			if missing.Status != http.StatusNotFound {
				t.Errorf("%s on a missing id: %d", ep.method, missing.Status)
			}
			if strings.ReplaceAll(string(foreign.Body), my.ID, "X") != strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(string(missing.Body), "case_999999", "X"), myEvent.ID, "X"), "evt_aaaaaaaaaaaaaaaaaaaaaaaaaa", "X") &&
				strings.ReplaceAll(string(foreign.Body), myEvent.ID, "X") != strings.ReplaceAll(string(missing.Body), "evt_aaaaaaaaaaaaaaaaaaaaaaaaaa", "X") {
				t.Errorf("another embassy's id answers %s, a missing one %s: they must not differ", foreign.Body, missing.Body)
			}
		}
		// The lists show only the caller's own.
		for tok, emb := range map[string]string{tokMY: "my-mekong", tokID: "id-mekong"} {
			var l eventList
			w.must(http.StatusOK, "GET", "/v1/events?limit=200", tok, nil).decode(t, &l)
			for _, raw := range l.Events {
				var e eventOut
				json.Unmarshal(raw, &e)
				if e.EmbassyID != emb {
					t.Errorf("%s pulled an event of %s", emb, e.EmbassyID)
				}
			}
			var cl caseList
			w.must(http.StatusOK, "GET", "/v1/cases?limit=200", tok, nil).decode(t, &cl)
			for _, c := range cl.Cases {
				if (emb == "my-mekong") != (c.ID == my.ID) && (c.ID == my.ID || c.ID == id.ID) {
					t.Errorf("%s lists case %s", emb, c.ID)
				}
			}
		}
		// No state of my-mekong's case changed through the other's token.
		got := w.firstCase(tokMY)
		if got.Status != "open" || len(got.Notes) != 0 {
			t.Errorf("my-mekong's case after id-mekong's attempts: %+v", got)
		}
	})

	t.Run("WorkACaseToResolution", func(t *testing.T) {
		w.t = t
		if my.Status != "open" || my.Severity != "critical" || !slices.Contains(my.Types, "duress.triggered") {
			t.Fatalf("duress case listed as %+v", my)
		}
		var one struct {
			Case   caseOut    `json:"case"`
			Events []eventOut `json:"events"`
		}
		w.must(http.StatusOK, "GET", "/v1/cases/"+my.ID, tokMY, nil).decode(t, &one)
		if len(one.Events) == 0 || one.Events[0].Type != "duress.triggered" || !one.Events[0].DoNotContact || one.Events[0].CaseID != my.ID {
			t.Fatalf("case events: %+v", one.Events)
		}
		key := registrantKey(t, w, my.ID)
		if st, _, _ := w.Store.Registrant(key); !st.DoNotContact || st.OpenCase != my.ID {
			t.Fatalf("before resolving: do_not_contact %v, open case %q", st.DoNotContact, st.OpenCase)
		}
		sentBefore := len(w.API.Sent(w.siti.ID))

		var c struct{ Case caseOut }
		w.must(http.StatusOK, "POST", "/v1/cases/"+my.ID+"/note", tokMY, map[string]string{"text": "Called the shelter; she is not there."}).decode(t, &c)
		if len(c.Case.Notes) != 1 || c.Case.Notes[0].By != "MY_TOKEN" || c.Case.Status != "open" {
			t.Errorf("after note: %+v", c.Case)
		}
		w.must(http.StatusOK, "POST", "/v1/cases/"+my.ID+"/ack", tokMYNew, nil).decode(t, &c)
		if c.Case.Status != "acked" || c.Case.AckedBy != "MY_TOKEN_NEW" {
			t.Errorf("after ack: %+v", c.Case)
		}
		var conflict struct {
			Error struct{ Code string }
			Case  caseOut
		}
		w.must(http.StatusConflict, "POST", "/v1/cases/"+my.ID+"/ack", tokMY, nil).decode(t, &conflict)
		if conflict.Error.Code != "conflict" || conflict.Case.Status != "acked" || conflict.Case.AckedBy != "MY_TOKEN_NEW" {
			t.Errorf("second ack: %+v", conflict)
		}
		w.must(http.StatusOK, "POST", "/v1/cases/"+my.ID+"/resolve", tokMY, map[string]string{"outcome": "assisted", "note": "Moved to the shelter."}).decode(t, &c)
		if c.Case.Status != "resolved" || c.Case.Outcome != "assisted" || c.Case.ResolvedBy != "MY_TOKEN" || len(c.Case.Notes) != 2 {
			t.Errorf("after resolve: %+v", c.Case)
		}
		w.must(http.StatusConflict, "POST", "/v1/cases/"+my.ID+"/resolve", tokMY, map[string]string{"outcome": "safe"})
		w.must(http.StatusOK, "POST", "/v1/cases/"+my.ID+"/note", tokMY, map[string]string{"text": "Follow-up call next week."})

		// The engine cleared do_not_contact and the open case, and the
		// citizen was sent nothing.
		st, _, err := w.Store.Registrant(key)
		if err != nil || st.DoNotContact || st.OpenCase != "" {
			t.Errorf("after resolving: do_not_contact %v, open case %q (%v)", st.DoNotContact, st.OpenCase, err)
		}
		if q, err := w.Store.PendingSends(key); err != nil || len(q) != 0 {
			t.Errorf("resolving queued %d messages for the citizen (%v)", len(q), err)
		}
		time.Sleep(200 * time.Millisecond) // a message sent anyway would reach the fake API by now
		if n := len(w.API.Sent(w.siti.ID)); n != sentBefore {
			t.Errorf("the citizen was sent %d messages while the case was worked", n-sentBefore)
		}
		// Listing by status follows.
		var l caseList
		w.must(http.StatusOK, "GET", "/v1/cases?status=open", tokMY, nil).decode(t, &l)
		for _, c := range l.Cases {
			if c.ID == my.ID {
				t.Error("a resolved case is listed as open")
			}
		}
		w.must(http.StatusOK, "GET", "/v1/cases?status=resolved&type=duress.triggered&severity=critical", tokMY, nil).decode(t, &l)
		if len(l.Cases) != 1 || l.Cases[0].ID != my.ID {
			t.Errorf("resolved duress cases: %+v", l.Cases)
		}
		// Every change is in the audit trail with its token's label.
		audit, err := w.Store.Audit()
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range audit {
			if e.Action == store.AuditCaseUpdated && strings.Contains(e.Reason, my.ID) && strings.Contains(e.Reason, " by ") {
				actions = append(actions, e.Reason)
			}
		}
		want := []string{"case.note " + my.ID + " by MY_TOKEN: open -> open", "case.ack " + my.ID + " by MY_TOKEN_NEW: open -> acked",
			"case.resolve " + my.ID + " by MY_TOKEN: acked -> resolved", "case.note " + my.ID + " by MY_TOKEN: resolved -> resolved"}
		if !slices.Equal(actions, want) {
			t.Errorf("audit of the case: %q, want %q", actions, want)
		}
		if _, err := w.Store.VerifyAudit(); err != nil {
			t.Errorf("audit chain: %v", err)
		}
	})

	t.Run("ConcurrentChangesOneWins", func(t *testing.T) {
		w.t = t
		const n = 8
		var wg sync.WaitGroup
		statuses := make([]response, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok := []string{tokID}[0]
				body, _ := json.Marshal(map[string]string{"outcome": "safe", "note": fmt.Sprintf("officer %d", i)})
				action := "resolve"
				if i%2 == 1 {
					action, body = "ack", nil
				}
				statuses[i] = w.do("POST", "/v1/cases/"+id.ID+"/"+action, tok, body)
			}()
		}
		wg.Wait()
		won := 0
		for _, r := range statuses {
			switch r.Status {
			case http.StatusOK:
				won++
			case http.StatusConflict:
				var c struct{ Case caseOut }
				r.decode(t, &c)
				if c.Case.ID != id.ID || c.Case.Status == "open" {
					t.Errorf("a loser was shown %+v", c.Case)
				}
			default:
				t.Errorf("answered %d %s", r.Status, r.Body)
			}
		}
		var final struct{ Case caseOut }
		w.must(http.StatusOK, "GET", "/v1/cases/"+id.ID, tokID, nil).decode(t, &final)
		// Exactly one resolve won; at most one ack won, and only before it.
		resolves := 0
		for i, r := range statuses {
			if i%2 == 0 && r.Status == http.StatusOK {
				resolves++
			}
			if i%2 == 1 && r.Status == http.StatusOK && final.Case.AckedBy == "" {
				t.Error("an ack answered 200 but is not recorded")
			}
		}
		if resolves != 1 || won > 2 || final.Case.Status != "resolved" || len(final.Case.Notes) != 1 {
			t.Errorf("%d resolves and %d changes won; final %+v", resolves, won, final.Case)
		}
	})

	t.Cleanup(func() {
		// Nothing an officer wrote, no token and nothing about the
		// citizen reaches the log.
		for _, secret := range []string{tokMY, tokMYNew, tokID, "shelter", "officer", "Follow-up", "Siti", "blue mango"} {
			if strings.Contains(w.logs.String(), secret) {
				t.Errorf("a log line carries %q", secret)
			}
		}
	})

	t.Run("Reconciliation", func(t *testing.T) {
		w.t = t
		// Pulled events are exactly the webhook bodies my-mekong received.
		received := map[string]string{}
		for _, ev := range w.Receiver.Events() {
			if ev.EmbassyID == "my-mekong" {
				received[ev.ID] = ev.Type
			}
		}
		pulled := map[string]string{}
		outbox, _ := w.Store.Outbox()
		bodies := map[string]escalation.Event{}
		for _, ev := range outbox {
			bodies[ev.ID] = ev
		}
		after := ""
		for page := 0; ; page++ {
			var l eventList
			w.must(http.StatusOK, "GET", "/v1/events?limit=1"+after, tokMY, nil).decode(t, &l)
			for _, raw := range l.Events {
				var e escalation.Event
				json.Unmarshal(raw, &e)
				want, _ := json.Marshal(bodies[e.ID])
				if !jsonEqual(t, raw, want) {
					t.Errorf("pulled %s, the webhook body is %s", raw, want)
				}
				pulled[e.ID] = e.Type
			}
			if !l.More {
				break
			}
			after = "&after=" + *l.NextCursor
			if page > 50 {
				t.Fatal("pagination does not end")
			}
		}
		if len(pulled) == 0 || fmt.Sprint(pulled) != fmt.Sprint(received) {
			t.Errorf("pulled %v, the webhook delivered %v", pulled, received)
		}
		// Acknowledge one: unacked=1 leaves it out; acknowledging again is fine.
		var first string
		for id := range pulled {
			first = id
			break
		}
		w.must(http.StatusOK, "POST", "/v1/events/"+first+"/ack", tokMY, nil)
		w.must(http.StatusOK, "POST", "/v1/events/"+first+"/ack", tokMYNew, "{}")
		var l eventList
		w.must(http.StatusOK, "GET", "/v1/events?unacked=1&limit=200", tokMY, nil).decode(t, &l)
		if len(l.Events) != len(pulled)-1 {
			t.Errorf("unacked: %d events, want %d", len(l.Events), len(pulled)-1)
		}
		for _, raw := range l.Events {
			if strings.Contains(string(raw), first) {
				t.Error("an acknowledged event is listed as unacked")
			}
		}
		// id-mekong has not acknowledged it: its view is its own.
		w.must(http.StatusNotFound, "POST", "/v1/events/"+first+"/ack", tokID, nil)
		// The last page's cursor gives nothing more, and stays good.
		last := ""
		for cur := after; ; {
			var l eventList
			w.must(http.StatusOK, "GET", "/v1/events?limit=200"+cur, tokMY, nil).decode(t, &l)
			if l.NextCursor == nil {
				t.Fatal("no cursor after events were listed")
			}
			if !l.More {
				last = *l.NextCursor
				break
			}
			cur = "&after=" + *l.NextCursor
		}
		w.must(http.StatusOK, "GET", "/v1/events?after="+last, tokMYNew, nil).decode(t, &l)
		if len(l.Events) != 0 || l.More || l.NextCursor == nil {
			t.Errorf("after the end: %+v", l)
		}
		// my-mekong's cursor is no cursor for id-mekong.
		w.must(http.StatusBadRequest, "GET", "/v1/events?after="+last, tokID, nil)
	})
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// registrantKey finds the store key of a case's registrant.
func registrantKey(t *testing.T, w *world, caseID string) string {
	t.Helper()
	c, found, err := w.Store.CaseByID(caseID)
	if err != nil || !found {
		t.Fatalf("case %s: %v", caseID, err)
	}
	return c.UserKey
}
