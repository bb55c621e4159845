package dialogs_test

import (
	"strings"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
)

// TestOptionalProfileFields drives every skippable profile question —
// while registering, in a status update and in settings — through Skip
// (typed and pressed), a valid answer and refused answers. Skip clears the
// field and moves on; a valid answer is stored as read and moves on; a
// refused one changes nothing and gets a hint and the same question again.
func TestOptionalProfileFields(t *testing.T) {
	e := newEngine(t)
	registering, _ := say(e, dialogs.State{}, testNow, "/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah")
	if registering.Step != dialogs.StepPassport {
		t.Fatalf("registration stopped at %q, want %q", registering.Step, dialogs.StepPassport)
	}
	active := registered(t, e)
	passport := func(p *dialogs.Profile) *string { return &p.Passport }
	employer := func(p *dialogs.Profile) *string { return &p.Employer }
	contact := func(p *dialogs.Profile) *string { return &p.TrustedContact }
	freeRefused := []string{"!!!", strings.Repeat("x", 201)}
	cases := []struct {
		step    dialogs.Step
		base    dialogs.State
		field   func(*dialogs.Profile) *string
		valid   string
		stored  string
		refused []string
		next    dialogs.Step
	}{
		{dialogs.StepPassport, registering, passport, "a1234 567", "A1234567", []string{"A1", "AB#12345"}, dialogs.StepEmployer},
		{dialogs.StepEmployer, registering, employer, "Acme   Ltd", "Acme Ltd", freeRefused, dialogs.StepContact},
		{dialogs.StepContact, registering, contact, "Ali, brother", "Ali, brother", freeRefused, dialogs.StepInterval},
		{dialogs.StepUpdateEmployer, active, employer, "Acme   Ltd", "Acme Ltd", freeRefused, dialogs.StepNone},
		{dialogs.StepSettingsContact, active, contact, "Ali, brother", "Ali, brother", freeRefused, dialogs.StepNone},
	}
	covered := map[dialogs.Step]bool{}
	for _, c := range cases {
		covered[c.step] = true
		st := c.base
		st.Step = c.step
		*c.field(&st.Profile) = "OLD12345"
		// A registered citizen's change is told to the embassy; a
		// registration in progress tells nothing until it is confirmed.
		wantEvents := 0
		if st.Registered() {
			wantEvents = 1
		}
		answers := []struct {
			name string
			in   dialogs.Input
			want string
		}{
			{"typed skip", textInput("skip"), ""},
			{"pressed skip", dialogs.Input{Kind: dialogs.KindButton, Key: "user-1", Channel: "telegram", Address: "1001", Text: "skip"}, ""},
			{"valid", textInput(c.valid), c.stored},
		}
		for _, a := range answers {
			res := e.Handle(st, a.in, testNow)
			if got := *c.field(&res.State.Profile); got != a.want {
				t.Errorf("%s, %s: field = %q, want %q", c.step, a.name, got, a.want)
			}
			if res.State.Step != c.next {
				t.Errorf("%s, %s: next step %q, want %q", c.step, a.name, res.State.Step, c.next)
			}
			if len(res.Escalations) != wantEvents {
				t.Errorf("%s, %s: %d escalations %v, want %d", c.step, a.name, len(res.Escalations), eventTypes2(res.Escalations), wantEvents)
			}
		}
		for _, text := range c.refused {
			res := e.Handle(st, textInput(text), testNow)
			if got := *c.field(&res.State.Profile); got != "OLD12345" {
				t.Errorf("%s, refused %.10q: field = %q, want it unchanged", c.step, text, got)
			}
			if res.State.Step != c.step {
				t.Errorf("%s, refused %.10q: step moved to %q", c.step, text, res.State.Step)
			}
			if n := len(res.Replies); n != 2 || !hasButton(res.Replies[n-1], "skip") {
				t.Errorf("%s, refused %.10q: replies %+v, want a hint and the question again", c.step, text, res.Replies)
			}
			if len(res.Escalations) != 0 {
				t.Errorf("%s, refused %.10q: escalated %v", c.step, text, eventTypes2(res.Escalations))
			}
		}
	}
	for _, step := range dialogs.SkippableSteps() {
		// The SOS questions may be skipped too, but fill no profile field.
		if !covered[step] && step != dialogs.StepSOSLocation && step != dialogs.StepSOSNote {
			t.Errorf("skippable step %q is not covered here", step)
		}
	}
}

func hasButton(r dialogs.Reply, data string) bool {
	for _, b := range r.Buttons {
		if b.Data == data {
			return true
		}
	}
	return false
}
