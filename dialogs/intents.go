package dialogs

import "strings"

// intent is what a command, a plain word or a global button asks for.
type intent int

const (
	intentNone intent = iota
	intentStart
	intentCheckin
	intentSOS
	intentStatus
	intentSettings
	intentMyData
	intentPause
	intentStop
	intentDelete
	intentLanguage
	intentMenu
)

// commands are the Telegram commands of DESIGN §2. They are parsed here, not
// by the channel library (LIBRARIES.md: its matcher misfires after
// non-ASCII text).
var commands = []struct {
	name   string
	intent intent
}{
	{"/start", intentStart}, {"/checkin", intentCheckin}, {"/sos", intentSOS},
	{"/status", intentStatus}, {"/settings", intentSettings}, {"/mydata", intentMyData},
	{"/pause", intentPause}, {"/stop", intentStop}, {"/delete", intentDelete},
	{"/language", intentLanguage}, {"/help", intentMenu},
}

// parseCommand reads "/name" or "/name@botname". It returns the intent and
// whether the command stood alone; a known command followed by other words
// returns its intent and false, so the citizen can be told to send it alone.
func parseCommand(text string) (intent, bool) {
	fields := strings.Fields(text)
	if len(fields) == 0 {
		return intentNone, false
	}
	name := strings.ToLower(fields[0])
	if at := strings.IndexByte(name, '@'); at > 0 {
		name = name[:at]
	}
	for _, c := range commands {
		if c.name == name {
			return c.intent, len(fields) == 1
		}
	}
	return intentNone, false
}

func commandName(in intent) string {
	for _, c := range commands {
		if c.intent == in {
			return c.name
		}
	}
	return ""
}

// wordIntent recognises a message that is exactly one of the plain words
// of the citizen's language or of English. Words for "language" work in
// every language, so someone stuck in the wrong one can always get out.
func (t *turn) wordIntent(norm string) intent {
	if norm == "" {
		return intentNone
	}
	idx := t.e.wordIndex()
	if in, ok := idx.byLang[t.st.Lang][norm]; ok {
		return in
	}
	if in, ok := idx.byLang["en"][norm]; ok {
		return in
	}
	if idx.language[norm] {
		return intentLanguage
	}
	return intentNone
}

// wordIndex maps every language's plain words to their intents. Where a
// word appears under two intents of one language, the earlier list below
// wins (check-in before help before stop …), as before the index existed.
type wordIndex struct {
	byLang   map[string]map[string]intent
	language map[string]bool // every language's words for "language"
}

func (e *Engine) wordIndex() *wordIndex {
	e.wordsOnce.Do(func() {
		idx := &wordIndex{byLang: map[string]map[string]intent{}, language: map[string]bool{}}
		for _, l := range e.Catalog.Languages() {
			w := e.Catalog.Words(l.Tag)
			m := map[string]intent{}
			for _, c := range []struct {
				words  []string
				intent intent
			}{
				{w.Checkin, intentCheckin}, {w.Help, intentSOS}, {w.Stop, intentStop},
				{w.Pause, intentPause}, {w.Delete, intentDelete}, {w.Status, intentStatus},
				{w.Settings, intentSettings}, {w.MyData, intentMyData}, {w.Menu, intentMenu},
				{w.Start, intentStart}, {w.Language, intentLanguage},
			} {
				for _, word := range c.words {
					if _, dup := m[word]; !dup {
						m[word] = c.intent
					}
				}
			}
			for _, word := range w.Language {
				idx.language[word] = true
			}
			idx.byLang[l.Tag] = m
		}
		e.words = idx
	})
	return e.words
}

// intent carries out what a command or plain word asked for.
func (t *turn) intent(in intent) {
	if !t.st.Registered() {
		t.intentWhileRegistering(in)
		return
	}
	t.st.Editing = false
	switch in {
	case intentCheckin:
		t.checkin()
	case intentSOS:
		t.sos()
	case intentStart:
		t.start()
	case intentStatus:
		t.ask(StepUpdateMenu)
	case intentSettings:
		t.ask(StepSettingsMenu)
	case intentMyData:
		t.st.Step = StepNone
		t.myData()
	case intentPause:
		t.startReduction(StepPauseLength)
	case intentStop:
		t.startReduction(StepStopConfirm)
	case intentDelete:
		t.startReduction(StepDeleteConfirm)
	case intentLanguage:
		t.ask(StepSettingsLanguage)
	case intentMenu:
		t.st.Step = StepNone
		t.reply("Menu", nil)
	}
}

// intentWhileRegistering: before registration is confirmed only starting,
// the language, the menu and deleting make sense; everything else is told to
// finish registering first, and the open question is asked again.
func (t *turn) intentWhileRegistering(in intent) {
	switch {
	case in == intentDelete:
		t.st = t.fresh()
		t.audit("registration.abandoned")
		t.reply("Deleted", nil)
	case t.st.Step == StepNone:
		t.askFirstContact()
	case in == intentLanguage && t.st.Step != StepLanguage:
		t.st.Resume = t.st.Step
		t.ask(StepLanguage)
	case in == intentLanguage:
		t.reply("HintChoose", nil) // "language" at the language question: pick one
		t.reprompt()
	case in == intentStart:
		t.reply("RegistrationResume", nil)
		t.reprompt()
	case in == intentMenu:
		t.reply("MenuRegistering", nil)
		t.reprompt()
	default:
		t.reply("HintRegisterFirst", nil)
		t.reprompt()
	}
}
