package boltstore

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
)

// storedSize is the sealed length v would be stored at.
func storedSize(t *testing.T, v any) int {
	t.Helper()
	enc, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return seal.PaddedSize(4 + max(len(enc), reservedSize(v, len(enc))))
}

// Property: over registrants, index rows and events of every length, the
// fields an escalation or a duress signal adds (at their longest) never
// change the size a record is stored at, and neither does the kind of an
// event or its short details.
func TestReservedSizesHideEscalationFields(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 13))
	word := func(n int) string { return strings.Repeat("x", r.IntN(n)) }
	due := time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC)
	for i := 0; i < 3000; i++ {
		st := dialogs.State{Key: word(64), Status: dialogs.StatusActive, Lang: "en", Address: word(20),
			Profile: dialogs.Profile{Name: word(100), Passport: word(20), City: word(100), Employer: word(100), TrustedContact: word(100)},
			NextDue: due}
		duress := st
		duress.DoNotContact, duress.Shown, duress.ShownNextDue, duress.OpenCase = true, dialogs.StatusStopped, due, "case_9999999"
		if a, b := storedSize(t, &st), storedSize(t, &duress); a != b {
			t.Fatalf("registrant of %d bytes stored at %d, with the duress fields at %d", len(mustJSON(t, st)), a, b)
		}
		row := store.RegistrantRow{ID: word(30), Key: word(64), Status: store.StatusActive, Country: "KH", City: word(200)}
		withCase := row
		withCase.OpenCase = "case_9999999"
		if a, b := storedSize(t, row), storedSize(t, withCase); a != b {
			t.Fatalf("index row stored at %d, with an open case at %d", a, b)
		}
		view := dialogs.RegistrantView{ID: word(30), Name: word(100), Passport: word(20), City: word(100)}
		base := store.Event{ID: "evt_" + word(26), Type: escalation.TypeRegistrationCreated, Severity: escalation.SeverityInfo,
			Registrant: &view, Details: map[string]any{}}
		for _, other := range []store.Event{
			{Type: escalation.TypeDuressTriggered, Severity: escalation.SeverityCritical, DoNotContact: true, CaseID: "case_9999999", CaseSeq: 999,
				Details: map[string]any{"message": word(300)}},
			{Type: escalation.TypeSOSRaised, Severity: escalation.SeverityCritical, CaseID: "case_9999999", CaseSeq: 1,
				Details: map[string]any{"location": map[string]float64{"lat": 10.627311, "lon": 103.522199}}},
			{Type: escalation.TypeCheckinMissed, Severity: escalation.SeverityCritical, CaseID: "case_9999999", CaseSeq: 12,
				Details: map[string]any{"escalation": 3, "due_at": due}},
		} {
			ev := base
			ev.Type, ev.Severity, ev.DoNotContact, ev.CaseID, ev.CaseSeq, ev.Details = other.Type, other.Severity, other.DoNotContact,
				other.CaseID, other.CaseSeq, other.Details
			if a, b := storedSize(t, base), storedSize(t, ev); a != b {
				t.Fatalf("%s stored at %d, %s at %d", base.Type, a, ev.Type, b)
			}
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
