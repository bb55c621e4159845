package api_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// TestResolveRace: officers of one embassy resolve the same case at once,
// over real HTTP. Exactly one wins (200); every other gets 409 with the
// case as it stands — resolved, by the winner, with the winner's
// outcome — so all agree. The registrant's do_not_contact and open case
// are cleared (in the resolution's own transaction), the citizen is sent
// nothing, and the audit holds one resolution. Every answer validates
// against docs/api.yaml.
func TestResolveRace(t *testing.T) {
	w := newWorld(t)
	c := w.firstCase(tokMY)
	key := registrantKey(t, w, c.ID)
	if st, _, _ := w.Store.Registrant(key); !st.DoNotContact || st.OpenCase != c.ID {
		t.Fatalf("before: do_not_contact %v, open case %q", st.DoNotContact, st.OpenCase)
	}
	sentBefore := len(w.API.Sent(w.siti.ID))
	const officers = 6
	type answer struct {
		status int
		Case   caseOut `json:"case"`
	}
	answers := make([]answer, officers)
	outcomes := []string{"safe", "assisted", "false_alarm", "no_contact", "other", "safe"}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range officers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := []string{tokMY, tokMYNew}[i%2]
			body, _ := json.Marshal(map[string]string{"outcome": outcomes[i]})
			<-start
			r := w.do("POST", "/v1/cases/"+c.ID+"/resolve", tok, body)
			answers[i].status = r.Status
			json.Unmarshal(r.Body, &answers[i])
		}()
	}
	close(start)
	wg.Wait()
	var winner *answer
	for i := range answers {
		if answers[i].status == http.StatusOK {
			if winner != nil {
				t.Fatalf("two resolutions won: %+v and %+v", winner.Case, answers[i].Case)
			}
			winner = &answers[i]
		}
	}
	if winner == nil {
		t.Fatalf("no resolution won: %+v", answers)
	}
	for _, a := range answers {
		if a.status == http.StatusOK {
			continue
		}
		if a.status != http.StatusConflict || a.Case.Status != "resolved" || a.Case.ResolvedBy != winner.Case.ResolvedBy ||
			a.Case.Outcome != winner.Case.Outcome {
			t.Errorf("a losing officer got %d %+v; the winner %+v", a.status, a.Case, winner.Case)
		}
	}
	st, _, err := w.Store.Registrant(key)
	if err != nil || st.DoNotContact || st.OpenCase != "" {
		t.Errorf("after the race: do_not_contact %v, open case %q (%v)", st.DoNotContact, st.OpenCase, err)
	}
	audit, _ := w.Store.Audit()
	n := 0
	for _, e := range audit {
		if e.Action == store.AuditCaseUpdated && e.Subject == dialogs.Pseudonym(key) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d audit entries of the resolution, want 1", n)
	}
	time.Sleep(200 * time.Millisecond) // a message sent anyway would reach the fake API by now
	if got := len(w.API.Sent(w.siti.ID)); got != sentBefore {
		t.Errorf("resolving sent the citizen %d messages", got-sentBefore)
	}
}
