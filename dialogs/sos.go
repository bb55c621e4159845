// SOS (DESIGN §2 flow 4): the alarm is raised at once, then location,
// "safe to call?" and a note are asked one at a time, each answer sent to
// the embassy as it arrives. The SOS questions live here because dispatch
// treats them specially (sosStep): every answer there is taken as given.

package dialogs

// sosSteps are the questions after an alarm; each may be skipped or
// answered, never abandoned by a help word.
func sosSteps() map[Step]stepSpec {
	return map[Step]stepSpec{
		StepSOSLocation: {
			prompt:    "AskSOSLocation",
			skippable: true,
			free: func(t *turn, text string) {
				if text == "" {
					t.ask(StepSOSCall)
					return
				}
				if v, ok := t.freeText(text, 500); ok {
					t.sosLocation(&Location{Text: v, At: t.now})
				}
			},
		},
		StepSOSCall: {
			prompt: "AskSOSCall",
			// "Is it safe to call you?" is naturally answered "safe" or
			// "ok": here those words mean yes, not a check-in.
			options: func(t *turn) []option {
				opts := t.yesNo()
				opts[0].aliases = append(append([]string(nil), opts[0].aliases...), t.words().Checkin...)
				return opts
			},
			choose: func(t *turn, o option) {
				t.escalate(EventCaseUpdated, SeverityCritical, CaseOpen, map[string]any{"safe_to_call": o.data == "yes"})
				t.ask(StepSOSNote)
			},
		},
		StepSOSNote: {
			prompt:    "AskSOSNote",
			skippable: true,
			free: func(t *turn, text string) {
				if text != "" {
					v, ok := t.freeText(text, 1000)
					if !ok {
						return
					}
					t.escalate(EventCaseUpdated, SeverityCritical, CaseOpen, map[string]any{"note": v})
				}
				t.st.Step = StepNone
				t.audit("sos.completed")
				t.reply("SOSDone", nil)
			},
		},
	}
}

// sos raises the alarm at once, then asks one question at a time.
func (t *turn) sos() {
	t.res.Urgent = true
	t.escalate(EventSOSRaised, SeverityCritical, CaseOpen, nil)
	t.audit("sos.raised")
	t.reply("SOSRaised", nil)
	t.ask(StepSOSLocation)
}

func (t *turn) sosLocation(loc *Location) {
	t.res.Urgent = true
	t.st.Profile.LastLocation = loc
	t.escalate(EventCaseUpdated, SeverityCritical, CaseOpen, map[string]any{"location": loc})
	t.ask(StepSOSCall)
}

// sosStep reports whether step is one of the questions after an SOS, where
// every answer is taken as given: "help" there is part of the answer.
func sosStep(step Step) bool {
	return step == StepSOSLocation || step == StepSOSCall || step == StepSOSNote
}
