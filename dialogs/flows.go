package dialogs

import (
	"time"
)

// Flows of registered citizens (DESIGN §2 flows 4, 5, 7, 8).

func flowSteps() map[Step]stepSpec {
	return map[Step]stepSpec{
		StepDue: {
			// The question of the due prompt, reminders and roll calls, so
			// its buttons can be answered by number or label as well.
			prompt: "DuePrompt",
			// "Are you safe?" — "yes" means safe, "no" means help.
			options: func(t *turn) []option {
				w := t.words()
				return []option{{label: t.text("ButtonSafe", nil), data: "checkin", aliases: w.Yes},
					{label: t.text("ButtonHelp", nil), data: "sos", aliases: w.No}}
			},
			choose: func(t *turn, o option) {
				if o.data == "sos" {
					t.sos()
					return
				}
				t.checkin()
			},
		},
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
		StepUpdateEmployer: {
			prompt:    "AskEmployer",
			skippable: true,
			free: func(t *turn, text string) {
				if text == "" {
					t.st.Profile.Employer = ""
					t.updated("employer")
				} else if v, ok := t.freeText(text, 200); ok {
					t.st.Profile.Employer = v
					t.updated("employer")
				}
			},
		},
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
		StepSettingsMenu: {
			prompt: "AskSettings",
			options: func(t *turn) []option {
				return []option{
					{label: t.text("FieldLanguage", nil), data: string(StepSettingsLanguage)},
					{label: t.text("FieldInterval", nil), data: string(StepSettingsInterval)},
					{label: t.text("FieldTime", nil), data: string(StepSettingsTime)},
					{label: t.text("FieldContact", nil), data: string(StepSettingsContact)},
					{label: t.text("FieldKeyword", nil), data: string(StepSettingsKeywordOld)},
				}
			},
			choose: func(t *turn, o option) { t.ask(Step(o.data)) },
		},
		StepSettingsLanguage: {
			prompt:  "AskLanguage",
			options: (*turn).languageOptions,
			choose: func(t *turn, o option) {
				t.st.Lang = o.data
				t.st.Step = StepNone
				t.audit("settings.language")
				t.reply("LanguageSaved", nil)
			},
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
				}
			},
			free: func(t *turn, text string) {
				if t.setTime(text, StepNone) {
					t.rescheduled("checkin_time")
				}
			},
		},
		StepSettingsContact: {
			prompt:    "AskContact",
			skippable: true,
			free: func(t *turn, text string) {
				if text == "" {
					t.st.Profile.TrustedContact = ""
					t.updated("trusted_contact")
				} else if v, ok := t.freeText(text, 200); ok {
					t.st.Profile.TrustedContact = v
					t.updated("trusted_contact")
				}
			},
		},
		StepSettingsKeywordOld: {
			prompt:    "AskKeywordOld",
			sensitive: true,
			// Right or wrong, the answer leads to the same next question
			// (DESIGN §3: no oracle); keywordOldAnswer explains what follows.
			free: func(t *turn, text string) {
				t.res.DeleteInbound = true
				t.keywordOldAnswer(text)
				t.ask(StepSettingsKeywordNew)
			},
		},
		StepSettingsKeywordNew: {
			prompt:    "AskKeyword",
			sensitive: true,
			free:      func(t *turn, text string) { t.takeKeyword(text, StepSettingsKeywordRepeat) },
		},
		StepSettingsKeywordRepeat: {
			prompt:    "AskKeywordRepeat",
			sensitive: true,
			free: func(t *turn, text string) {
				old := t.st.Keyword
				if !t.confirmKeyword(text, StepSettingsKeywordNew) {
					return
				}
				t.keywordChanged(old)
				t.st.Step = StepNone
				t.res.PurgeSensitive = true
				t.audit("settings.keyword")
				t.replySensitive("KeywordChanged")
			},
		},
		StepPauseLength: {
			prompt: "AskPause",
			options: func(t *turn) []option {
				var opts []option
				for _, days := range []int{1, 3, 7, 14} {
					d := time.Duration(days) * 24 * time.Hour
					if d > t.e.Policy.MaxPause {
						break
					}
					opts = append(opts, option{label: t.e.Catalog.Count(t.st.Lang, "Days", days, nil), data: shortDuration(d)})
				}
				return opts
			},
			choose: func(t *turn, o option) {
				d, _ := time.ParseDuration(o.data)
				t.pause(d)
			},
		},
		StepStopConfirm: {
			prompt:  "AskStop",
			options: (*turn).yesNo,
			choose: func(t *turn, o option) {
				if o.data == "yes" {
					t.stop()
					return
				}
				t.cancelReduction()
			},
		},
		StepDeleteConfirm: {
			prompt:  "AskDelete",
			options: (*turn).yesNo,
			choose: func(t *turn, o option) {
				if o.data == "yes" {
					t.erase()
					return
				}
				t.cancelReduction()
			},
		},
	}
}

// checkin records proof of life. Its visible outcome — reply, schedule,
// clean-up — depends only on the state and the time, never on the message,
// which is what lets a duress check-in look exactly like this one.
func (t *turn) checkin() {
	resumed := t.st.Overdue || t.st.Ladder >= ladderMissed
	wasOff := t.visible() != StatusActive
	t.st.Status, t.st.Shown, t.st.PausedUntil = StatusActive, "", time.Time{}
	t.st.Step, t.st.Editing, t.st.CovertFlow, t.st.PendingKeyword = StepNone, false, false, Keyword{}
	t.st.PendingCountry, t.st.ShownNextDue = "", time.Time{}
	t.st.LastCheckin, t.st.Overdue = t.now, false
	t.schedule()
	if resumed {
		t.escalate(EventCheckinResumed, SeverityInfo, CaseAppend, map[string]any{"overdue_since": t.st.LastCheckin})
	}
	t.audit("checkin")
	t.res.DeleteInbound = true
	id := "CheckinDone"
	if wasOff {
		id = "CheckinResumed"
	}
	t.reply(id, map[string]any{"When": t.when(t.st.NextDue)})
}

// start: for a stopped citizen /start turns monitoring back on.
func (t *turn) start() {
	if t.visible() == StatusStopped || t.visible() == StatusPaused {
		t.checkin()
		return
	}
	t.st.Step = StepNone
	t.reply("AlreadyRegistered", map[string]any{"When": t.when(t.shownNextDue())})
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

// updated finishes a status update: tell the embassy which fields changed.
func (t *turn) updated(fields ...string) {
	t.st.Step, t.st.PendingCountry = StepNone, ""
	t.escalate(EventRegistrationUpdated, SeverityInfo, CaseNone, map[string]any{"fields": fields})
	t.audit("registration.updated")
	t.reply("UpdateSaved", nil)
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

func (t *turn) myData() {
	d := t.summaryData()
	statusText := map[Status]string{StatusActive: "StatusActive", StatusPaused: "StatusPaused",
		StatusStopped: "StatusStopped", StatusDeleted: "StatusActive"}[t.visible()]
	d["Status"] = t.text(statusText, map[string]any{"Until": t.when(t.st.PausedUntil)})
	d["Phone"] = t.st.Profile.Phone
	if d["Phone"] == "" {
		d["Phone"] = t.text("ValueNone", nil)
	}
	d["Consent"] = t.when(t.st.ConsentAt)
	d["Version"] = t.st.NoticeVersion
	d["Last"] = t.when(t.st.LastCheckin)
	d["Next"] = t.when(t.shownNextDue())
	t.audit("mydata.shown")
	t.reply("MyData", d)
}

// startReduction opens the question before a pause, stop or delete. If a
// duress keyword came with the request, its completion will only pretend.
func (t *turn) startReduction(step Step) {
	t.st.CovertFlow = t.covert
	t.ask(step)
}

func (t *turn) cancelReduction() {
	t.st.Step, t.st.CovertFlow = StepNone, false
	t.reply("Cancelled", nil)
}

// monitorCovertly makes sure a registration under duress is monitored,
// whatever it showed before: a real pause or stop ends (silently; the phone
// keeps seeing what it is shown) and a fresh schedule starts if none runs.
func (t *turn) monitorCovertly() {
	if t.st.Status != StatusActive || t.st.Timer.IsZero() {
		t.st.Status, t.st.PausedUntil = StatusActive, time.Time{}
		t.schedule()
	}
}

// pretending reports whether this stop, pause or delete must only appear
// to happen (DESIGN §3).
// Only a registration can pretend: the phone of a covertly deleted one,
// which looks new, is monitored through State.Hidden whatever it does.
// While a duress case is open (do-not-contact, until the embassy resolves
// it) every stop, pause or delete only pretends, keyword or not: whoever
// forced one may force the next without it.
func (t *turn) pretending() bool {
	return (t.covert || t.st.CovertFlow || t.st.DoNotContact) && t.st.Registered()
}

func (t *turn) pause(d time.Duration) {
	until := t.now.Add(d)
	t.st.Step = StepNone
	if t.pretending() {
		shown := t.shownNextDue()
		t.monitorCovertly()
		t.st.Shown, t.st.ShownNextDue, t.st.PausedUntil, t.st.CovertFlow = StatusPaused, shown, until, false
		if t.st.Timer.IsZero() || until.Before(t.st.Timer) {
			t.st.Timer = until // the shown pause must end visibly, as a real one does
		}
		t.escalate(EventCaseUpdated, SeverityCritical, CaseOpen, map[string]any{"covert_action": "pause", "shown_until": until})
	} else {
		t.st.Status, t.st.Shown, t.st.PausedUntil, t.st.Ladder, t.st.Timer = StatusPaused, "", until, ladderWaiting, until
		t.escalate(EventProtectionReduced, SeverityInfo, CaseNone, map[string]any{"action": "pause", "until": until})
	}
	t.audit("pause")
	t.reply("Paused", map[string]any{"Until": t.when(until)})
}

func (t *turn) stop() {
	t.st.Step = StepNone
	if t.pretending() {
		shown := t.shownNextDue()
		t.monitorCovertly()
		t.st.Shown, t.st.ShownNextDue, t.st.CovertFlow = StatusStopped, shown, false
		t.escalate(EventCaseUpdated, SeverityCritical, CaseOpen, map[string]any{"covert_action": "stop"})
	} else {
		t.st.Status, t.st.Shown, t.st.Timer, t.st.Ladder = StatusStopped, "", time.Time{}, ladderWaiting
		t.escalate(EventProtectionReduced, SeverityInfo, CaseNone, map[string]any{"action": "stop"})
	}
	t.audit("stop")
	t.reply("Stopped", nil)
}

// erase deletes everything personal, or — under duress — pretends to: the
// phone sees a fresh start while the registration, its schedule and the
// keyword stay, and the embassy is told.
func (t *turn) erase() {
	t.st.Step = StepNone
	t.audit("delete")
	t.reply("Deleted", nil)
	if t.pretending() {
		t.monitorCovertly()
		t.escalate(EventCaseUpdated, SeverityCritical, CaseOpen, map[string]any{"covert_action": "delete"})
		st := t.st
		keywords := st.Keywords()
		if st.Hidden != nil {
			keywords = append(keywords, st.Hidden.Keywords...)
		}
		t.st = State{Key: st.Key, OpenCase: st.OpenCase, DoNotContact: true, Overdue: st.Overdue, Hidden: &Hidden{
			Profile: st.Profile, Channel: st.Channel, Address: st.Address, Handle: st.Handle, Lang: st.Lang,
			Keywords: keywords, Interval: t.interval(), CheckinTime: st.CheckinTime,
			LastCheckin: st.LastCheckin, NextDue: st.NextDue, Ladder: st.Ladder, Timer: st.Timer,
		}}
		return
	}
	t.escalate(EventRegistrationWithdrawn, SeverityInfo, CaseNone, nil)
	// Withdrawal carries only the pseudonymous id: the data is erased.
	last := &t.res.Escalations[len(t.res.Escalations)-1]
	last.Registrant = RegistrantView{ID: last.Registrant.ID, Channel: last.Registrant.Channel}
	t.st = t.fresh()
}

// rollCall asks for a check-in now on the embassy's behalf.
func (t *turn) rollCall() {
	if t.visible() != StatusActive || !t.st.Registered() {
		return
	}
	t.audit("rollcall.prompted")
	t.prompt("RollCall", map[string]any{"Area": t.in.Area})
}

// prompt asks "are you safe?" in the words of id, with the two answers as
// buttons. It opens StepDue unless another question is open, which keeps
// its place (the buttons still work there: their data is global). It marks
// the result as a prompt, so the runner reports its delivery
// (KindPromptDelivered), from which the missed check-in ladder runs.
func (t *turn) prompt(id string, data map[string]any) {
	t.res.Prompt = true
	if t.st.Step == StepNone || (t.st.Registered() && steps[t.st.Step].sensitive) {
		// A secret-word change left open is abandoned by the prompt: the
		// next message is read as an answer to "are you safe?", never
		// swallowed as a new secret word.
		t.st.Step, t.st.PendingKeyword = StepDue, Keyword{}
	}
	t.res.Replies = append(t.res.Replies, Reply{Text: t.text(id, data), Buttons: t.dueButtons()})
}

func (t *turn) dueButtons() []Button {
	return []Button{{Label: t.text("ButtonSafe", nil), Data: "checkin"}, {Label: t.text("ButtonHelp", nil), Data: "sos"}}
}
