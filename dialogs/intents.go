// Intents: what a command, a plain word or a global button asks for, and
// which flow it opens (intent). It declares no steps of its own.

package dialogs

import (
	"strings"
	"unicode/utf8"
)

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
	// intentSnooze: the "Remind me in 30 minutes" button, pressed under any
	// prompt, whatever question is open now (its data is global).
	intentSnooze
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

// parseCommand reads "/name" or "/name@botname" at the start of a message.
// Whatever follows is ignored (DESIGN §3: a command followed by words is
// that command), so "/stop blue mango" is a stop and a Telegram deep link
// "/start poster-kh" is a start.
func parseCommand(text string) intent {
	name, _, _ := strings.Cut(strings.TrimSpace(text), " ")
	name = strings.ToLower(name)
	if at := strings.IndexByte(name, '@'); at > 0 {
		name = name[:at]
	}
	for _, c := range commands {
		if c.name == name {
			return c.intent
		}
	}
	return intentNone
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

// leadingIntent recognises a message that begins with a plain word or
// phrase of the citizen's language or of English, whatever follows: "OK,
// blue mango" is a check-in, "stop please" a stop (DESIGN §3). The longest
// phrase that starts the message wins. It never looks at the duress
// keyword, which is what keeps the visible outcome keyword-blind.
func (t *turn) leadingIntent(norm string) intent {
	if norm == "" {
		return intentNone
	}
	idx := t.e.wordIndex()
	best, bestLen := intentNone, 0
	try := func(m map[string]intent) {
		for _, p := range leadingCandidates(norm, idx.longest) {
			if in, ok := m[p]; ok && len(p) > bestLen {
				best, bestLen = in, len(p)
			}
		}
	}
	try(idx.byLang[t.st.Lang])
	try(idx.byLang["en"])
	if best == intentNone && idx.language[strings.Fields(norm)[0]] {
		return intentLanguage
	}
	return best
}

// leadingCandidates lists the prefixes of a normalised message that a
// phrase may equal: its first one, two … words, and — where the next word
// is in a script written without spaces — those words followed by every
// run of that word's first characters (Thai "ปลอดภัยดีมาก" begins with
// "ปลอดภัย"; Khmer "ខ្ញុំ សុខសប្បាយ…" with "ខ្ញុំ សុខសប្បាយ").
func leadingCandidates(norm string, maxRunes int) []string {
	var out []string
	start := 0 // byte offset of the current word
	for start <= len(norm) {
		end := strings.IndexByte(norm[start:], ' ')
		if end < 0 {
			end = len(norm)
		} else {
			end += start
		}
		if r, _ := utf8.DecodeRuneInString(norm[start:]); unspacedScript(r) {
			n := 0
			for i := range norm[start:end] {
				if i > 0 {
					out = append(out, norm[:start+i])
				}
				if n++; n > maxRunes {
					break
				}
			}
		}
		out = append(out, norm[:end])
		if end == len(norm) || utf8.RuneCountInString(norm[:end]) > maxRunes {
			break
		}
		start = end + 1
	}
	return out
}

// hasPhrase reports whether norm contains phrase as whole words, or — for
// a phrase in a script written without spaces — anywhere.
func hasPhrase(norm, phrase string) bool {
	if phrase == "" {
		return false
	}
	if hasUnspaced(phrase) {
		return strings.Contains(norm, phrase)
	}
	for i := 0; ; {
		j := strings.Index(norm[i:], phrase)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(phrase)
		if (start == 0 || norm[start-1] == ' ') && (end == len(norm) || norm[end] == ' ') {
			return true
		}
		i = start + 1
	}
}

// beginsWith reports whether norm is phrase, or begins with phrase
// followed by a word break.
func beginsWith(norm, phrase string) bool {
	if phrase == "" || !strings.HasPrefix(norm, phrase) {
		return false
	}
	if len(norm) == len(phrase) || norm[len(phrase)] == ' ' {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(phrase)
	return unspacedScript(r)
}

// asksForHelp reports whether a help word or phrase of the citizen's
// language or of English appears anywhere in the message: help words
// anywhere raise an SOS (DESIGN §3).
func (t *turn) asksForHelp(norm string) bool {
	for _, lang := range []string{t.st.Lang, "en"} {
		for _, p := range t.e.Catalog.Words(lang).Help {
			if hasPhrase(norm, p) {
				return true
			}
		}
	}
	return false
}

// wordIndex maps every language's plain words to their intents. Where a
// word appears under two intents of one language, the earlier list below
// wins (check-in before help before stop …), as before the index existed.
type wordIndex struct {
	byLang   map[string]map[string]intent
	language map[string]bool // every language's words for "language"
	longest  int             // runes of the longest phrase
	vocab    vocabulary      // for the keyword refusal rules
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
					idx.longest = max(idx.longest, utf8.RuneCountInString(word))
				}
			}
			for _, word := range w.Language {
				idx.language[word] = true
			}
			idx.byLang[l.Tag] = m
		}
		idx.vocab = buildVocabulary(e.Catalog)
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
	case intentSnooze:
		t.snooze()
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
