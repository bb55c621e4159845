// Settings (DESIGN §2 flow 8): the menu, and the check-in interval, time
// and trusted contact. The menu's language choice is in language.go and its
// secret-word choice in keyword_change.go, each with its own steps; the
// schedule changes live here, beside rescheduled, which they end with.

package dialogs

import (
	"time"
)

// settingsSteps are the settings menu and the schedule and contact questions.
func settingsSteps() map[Step]stepSpec {
	return map[Step]stepSpec{
		StepSettingsMenu: {
			prompt: "AskSettings",
			options: func(t *turn) []option {
				opts := []option{
					{label: t.text("FieldLanguage", nil), data: string(StepSettingsLanguage)},
					{label: t.text("FieldInterval", nil), data: string(StepSettingsInterval)},
					{label: t.text("FieldTime", nil), data: string(StepSettingsTime)},
					{label: t.text("FieldContact", nil), data: string(StepSettingsContact)},
					{label: t.text("FieldKeyword", nil), data: string(StepSettingsKeywordOld)},
				}
				if len(t.identityProviders()) > 0 { // last, so the others keep their numbers
					opts = append(opts, option{label: t.text("FieldIdentity", nil), data: string(StepIdentityOffer)})
				}
				return opts
			},
			choose: func(t *turn, o option) { t.ask(Step(o.data)) },
		},
		StepSettingsInterval: {
			prompt:  "AskInterval",
			options: (*turn).intervalOptions,
			choose: func(t *turn, o option) {
				t.st.Interval, _ = time.ParseDuration(o.data)
				t.rescheduled("interval")
			},
		},
		StepSettingsTime: {
			prompt:  "AskTime",
			options: (*turn).timeOptions,
			choose: func(t *turn, o option) {
				if t.setTime(o.data, StepNone) {
					t.rescheduled("checkin_time")
					t.warnCrowded(t.st.CheckinTime) // crowding.go
				}
			},
			free: func(t *turn, text string) {
				if t.setTime(text, StepNone) {
					t.rescheduled("checkin_time")
					t.warnCrowded(t.st.CheckinTime) // crowding.go
				}
			},
		},
		StepSettingsContact: optionalField("AskContact",
			func(p *Profile) *string { return &p.TrustedContact }, freeTextUpTo(200),
			func(t *turn) { t.updated("trusted_contact") }),
	}
}

// rescheduled finishes an interval or time change.
func (t *turn) rescheduled(field string) {
	t.st.Step = StepNone
	if t.st.Ladder == ladderWaiting && t.visible() == StatusActive {
		t.schedule()
	}
	t.escalate(EventRegistrationUpdated, SeverityInfo, CaseNone, map[string]any{"fields": []string{field}})
	t.audit("registration.updated")
	t.reply("SettingsSaved", map[string]any{"When": t.when(t.shownNextDue())})
}
