// Status update (DESIGN §2 flow 5): a registered citizen reports a new
// place (country and city together), employer, phone or location. Each
// answer is told to the embassy as registration.updated. The steps live
// here, beside updated, which every one of them ends with.

package dialogs

// statusUpdateSteps are the update menu and the question behind each choice.
func statusUpdateSteps() map[Step]stepSpec {
	return map[Step]stepSpec{
		StepUpdateMenu: {
			prompt: "AskUpdate",
			options: func(t *turn) []option {
				return []option{
					{label: t.text("ButtonUpdatePlace", nil), data: string(StepUpdateCountry)},
					{label: t.text("ButtonUpdateEmployer", nil), data: string(StepUpdateEmployer)},
					{label: t.text("ButtonUpdatePhone", nil), data: string(StepUpdatePhone)},
					{label: t.text("ButtonUpdateLocation", nil), data: string(StepUpdateLocation)},
				}
			},
			choose: func(t *turn, o option) { t.ask(Step(o.data)) },
		},
		StepUpdateCountry: {
			prompt:  "AskCountry",
			options: func(t *turn) []option { return t.countryOptions(t.e.Directory.CountriesFor(t.st.Profile.Nationality)) },
			choose: func(t *turn, o option) {
				t.st.PendingCountry = o.data // applied with the city, never alone
				t.ask(StepUpdateCity)
			},
		},
		StepUpdateCity: {
			prompt: "AskCity",
			free: func(t *turn, text string) {
				if v, ok := t.freeText(text, 100); ok {
					if t.st.PendingCountry != "" {
						t.st.Profile.Country = t.st.PendingCountry
					}
					t.st.Profile.City = v
					t.updated("country", "city")
				}
			},
		},
		StepUpdateEmployer: optionalField("AskEmployer",
			func(p *Profile) *string { return &p.Employer }, freeTextUpTo(200),
			func(t *turn) { t.updated("employer") }),
		StepUpdatePhone: {
			prompt: "AskPhone",
			free: func(t *turn, text string) {
				v, ok := parsePhone(text)
				if !ok {
					t.reply("HintPhone", nil)
					t.reprompt()
					return
				}
				t.st.Profile.Phone = v
				t.updated("phone")
			},
		},
		StepUpdateLocation: {
			prompt: "AskLocation",
			free: func(t *turn, text string) {
				if v, ok := t.freeText(text, 500); ok {
					t.st.Profile.LastLocation = &Location{Text: v, At: t.now}
					t.updated("last_location")
				}
			},
		},
	}
}

// updated finishes a status update: tell the embassy which fields changed.
func (t *turn) updated(fields ...string) {
	t.st.Step, t.st.PendingCountry = StepNone, ""
	t.escalate(EventRegistrationUpdated, SeverityInfo, CaseNone, map[string]any{"fields": fields})
	t.audit("registration.updated")
	t.reply("UpdateSaved", nil)
}
