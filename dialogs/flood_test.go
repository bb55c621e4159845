package dialogs_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// floodWorld is world for a message that arrived flooded (mark), the probe
// after it not flooded: all the phone saw, and whether duress.triggered
// was recorded.
func floodWorld(e *dialogs.Engine, st dialogs.State, text string, mark dialogs.Flood, now time.Time) (string, bool) {
	var b strings.Builder
	duress := false
	step := func(in dialogs.Input, at time.Time) {
		res := e.Handle(st, in, at)
		b.WriteString(phoneView(res))
		for _, esc := range res.Escalations {
			duress = duress || esc.Type == dialogs.EventDuressTriggered
		}
		st = res.State
		if res.Erase {
			st = dialogs.State{}
		}
	}
	in := textInput(text)
	in.Flood = mark
	step(in, now)
	for _, p := range probe {
		step(p.in, now.Add(p.after))
	}
	return b.String(), duress
}

// TestFloodedKeywordBlindEveryStateEveryLanguage is the keyword-blindness
// property for flooded messages: in every language, registration
// situation and step, a message arriving in a flood (as the one that
// starts it, or inside it) shows the phone exactly the same — now and
// after the probe — whether it holds the keyword or random words of the
// same script; and the keyword is detected exactly where it would be
// outside a flood: a flood never suppresses the scan.
func TestFloodedKeywordBlindEveryStateEveryLanguage(t *testing.T) {
	e := newEngine(t)
	base := registered(t, e)
	later := testNow.Add(5 * time.Hour)
	rng := rand.New(rand.NewPCG(13, 5))
	checked := 0
	for _, lang := range e.Catalog.Languages() {
		kw := blindKeywords[lang.Tag]
		checkinWords := e.Catalog.Words(lang.Tag).Checkin
		hint := e.Catalog.Text(lang.Tag, "HintFlood", nil)
		for name, st0 := range blindStatuses(t, e, base, later) {
			for _, step := range dialogs.AllSteps {
				st := st0
				st.Lang, st.Step = lang.Tag, step
				if st.Registered() {
					st.Keyword = dialogs.NewKeyword(transcriptPepper, st.Key, kw)
				} else {
					st.Hidden.Keywords = []dialogs.Keyword{dialogs.NewKeyword(transcriptPepper, st.Key, kw)}
				}
				if step == dialogs.StepKeywordRepeat || step == dialogs.StepSettingsKeywordRepeat {
					st.PendingKeyword = dialogs.NewKeyword(transcriptPepper, st.Key, "green apple tree")
				}
				tpl := templates[rng.IntN(len(templates))]
				ci := checkinWords[rng.IntN(len(checkinWords))]
				other := standIn(rng, e, lang.Tag, kw)
				mark := []dialogs.Flood{dialogs.FloodStart, dialogs.FloodSilent}[rng.IntN(2)]
				withKeyword, withOther := fmt.Sprintf(tpl, kw, ci), fmt.Sprintf(tpl, other, ci)
				where := fmt.Sprintf("%s/%s/%s flood=%d %q", lang.Tag, name, step, mark, withKeyword)

				seenK, duressK := floodWorld(e, st, withKeyword, mark, later)
				seenW, duressW := floodWorld(e, st, withOther, mark, later)
				if got := substitute(seenW, other, kw); got != seenK {
					t.Errorf("%s: the phone sees a difference when the keyword is replaced by %q\n%s", where, other, diff(seenK, got))
				}
				if duressW {
					t.Errorf("%s: duress raised by stand-in words %q", where, other)
				}
				_, outside := world(e, st, withKeyword, later)
				if duressK != outside {
					t.Errorf("%s: duress detected %v in a flood, %v outside it", where, duressK, outside)
				}
				// The flooded message itself shows the hint (when it starts
				// the flood) and nothing else, unless it belongs to the SOS
				// flow.
				in := textInput(withKeyword)
				in.Flood = mark
				res := e.Handle(st, in, later)
				if !res.Urgent && !strings.HasPrefix(string(step), "sos") {
					var texts []string
					for _, r := range res.Replies {
						texts = append(texts, r.Text)
					}
					want := 0
					if mark == dialogs.FloodStart {
						want = 1
					}
					if len(texts) != want || (want == 1 && texts[0] != hint) {
						t.Errorf("%s: a flooded message was answered %q", where, texts)
					}
				}
				checked++
			}
		}
	}
	t.Logf("%d flooded messages compared", checked)
}
