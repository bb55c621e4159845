// Keyword change (DESIGN §2 flow 8, §3): the settings menu's secret-word
// choice, with its three steps (keywordChangeSteps, at the end), kept apart
// from settings.go because answering them must reveal nothing.

package dialogs

import (
	"crypto/hmac"
	"strings"
	"time"
)

// Changing the keyword without an oracle (DESIGN §3). The current keyword is
// asked for, but a wrong answer looks exactly like a right one: the same
// next question, the same replies, the same clean-up. What differs is
// silent:
//
//   - right answer: the new keyword becomes the current one, and the old one
//     keeps working as a former keyword;
//   - wrong answer: the new keyword is added as a former keyword and the
//     current one stays; a citizen who mistyped is never left without a
//     working keyword, and someone probing with guesses cannot replace it;
//   - at most maxFormerKeywords former keywords are kept, the oldest dropped
//     (a wrong answer never drops the current one);
//   - from the keywordMissAlert-th miss in a day, the embassy is told, once
//     per day, with keyword.change_failed (severity info);
//   - past maxKeywordAttempts answers in a day, every answer counts as
//     wrong, right or not — an invisible rate limit on guessing.
const (
	maxFormerKeywords  = 3
	keywordMissAlert   = 3
	maxKeywordAttempts = 5
	keywordWindow      = 24 * time.Hour
	// keywordStepTimeout closes a secret-word change left open: after it,
	// the next message is read as if no question were open — a check-in,
	// an SOS, the duress keyword — never as a new secret word.
	keywordStepTimeout = 10 * time.Minute
)

// closeStaleKeywordChange abandons a secret-word change whose question
// has waited longer than keywordStepTimeout (leaving it purges its
// messages).
func (t *turn) closeStaleKeywordChange() {
	if t.st.Registered() && steps()[t.st.Step].sensitive && t.now.Sub(t.st.KeywordChange.AskedAt) > keywordStepTimeout {
		t.st.Step, t.st.PendingKeyword = StepNone, Keyword{}
	}
}

// answersKeywordQuestion reports whether this message will be read as the
// new secret word (or its repeat) of a registered citizen: not a command,
// no help words, not a plain word, not beginning with a check-in word.
// Only then is a keyword inside it the answer rather than a signal.
func (t *turn) answersKeywordQuestion() bool {
	if !t.st.Registered() || (t.st.Step != StepSettingsKeywordNew && t.st.Step != StepSettingsKeywordRepeat) {
		return false
	}
	norm := t.normalized()
	return !strings.HasPrefix(t.in.Text, "/") && !t.asksForHelp(norm) && t.wordIntent(norm) == intentNone &&
		t.leadingIntent(norm) != intentCheckin
}

// keywordOldAnswer weighs the answer to "type your current word", silently.
func (t *turn) keywordOldAnswer(text string) {
	kc := &t.st.KeywordChange
	if t.now.Sub(kc.WindowStart) >= keywordWindow {
		*kc = KeywordChange{WindowStart: t.now}
	}
	kc.Attempts++
	typed := NewKeyword(t.e.Pepper, t.st.Key, text)
	matched := false
	for _, k := range t.st.Keywords() {
		// Compared with every keyword, whatever matched before.
		if hmac.Equal(typed.Hash, k.Hash) && k.Set() {
			matched = true
		}
	}
	kc.OldMatched = matched && kc.Attempts <= maxKeywordAttempts
	if kc.OldMatched {
		return
	}
	kc.Misses++
	if kc.Misses == keywordMissAlert {
		t.escalate(EventKeywordChangeFailed, SeverityInfo, CaseNone,
			map[string]any{"misses": kc.Misses, "attempts": kc.Attempts, "within": shortDuration(keywordWindow)})
	}
}

// keywordChanged files the keyword just confirmed (now in t.st.Keyword)
// according to whether the current one was proven; old is the keyword that
// was current before.
func (t *turn) keywordChanged(old Keyword) {
	added := t.st.Keyword
	formers := t.st.FormerKeywords
	if t.st.KeywordChange.OldMatched {
		if old.Set() {
			formers = append([]Keyword{old}, formers...)
		}
	} else {
		t.st.Keyword = old
		formers = append([]Keyword{added}, formers...)
	}
	if len(formers) > maxFormerKeywords {
		formers = formers[:maxFormerKeywords]
	}
	t.st.FormerKeywords = formers
	t.st.KeywordChange.OldMatched = false
}

// keywordChangeSteps are the secret-word change of a registered citizen:
// the current word, the new one, the new one again. All are sensitive: their
// prompts and answers are removed from the chat when the exchange ends.
func keywordChangeSteps() map[Step]stepSpec {
	return map[Step]stepSpec{
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
	}
}
