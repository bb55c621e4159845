// Flooded messages (issue 13 item 6): what the engine does with a message
// that arrived while its sender was sending faster than the runner's flood
// limit (bot/flood.go counts; the engine only reads Input.Flood).
//
// A flooded message is not applied to the conversation: no answer, no
// question moves on, nothing is recorded as a check-in. Only its silent
// effects happen — the duress keyword is looked for in every one, exactly
// as outside a flood. The SOS flow is the one exception: a flooded message
// that raises an SOS, or answers one of the SOS questions, is handled in
// full, reply included, because a citizen who asks for help must learn that
// the alarm went out (silence would make them keep pressing, or give up),
// and because an SOS is visible anyway. Whether a message is one is decided
// from what the phone would see (dispatch, which never reads the keyword),
// so a duress flood and a normal flood look the same.

package dialogs

import "time"

// Flood is where an input stands in its sender's flood.
type Flood uint8

// The flood marks the runner gives citizen inputs.
const (
	// FloodNone: the sender is within the limit; the message is handled
	// as usual.
	FloodNone Flood = iota
	// FloodStart: the first message over the limit. It is handled like
	// FloodSilent, and the one hint (HintFlood) is sent.
	FloodStart
	// FloodSilent: a later message of the same flood: silent effects only
	// (and the SOS flow).
	FloodSilent
)

// handleFlooded is Handle for a message marked FloodStart or FloodSilent.
func (e *Engine) handleFlooded(st State, in Input, now time.Time) Result {
	mark := in.Flood
	in.Flood = FloodNone
	full := e.Handle(st, in, now)
	var res Result
	if full.Urgent || (sosStep(st.Step) && full.State.Step != st.Step) {
		res = full // the SOS flow is never silenced
	} else {
		t := e.newTurn(st, in, now)
		t.silent()
		res = t.finish(st)
		// A check-in's message is removed whether or not it was flooded:
		// what is done to one check-in message is done to every one.
		res.DeleteInbound = full.DeleteInbound
	}
	if mark == FloodStart {
		lang := res.State.Lang
		if lang == "" {
			lang = e.SuggestLanguage(in.LangHint)
		}
		hint := Reply{Text: e.Catalog.Text(lang, "HintFlood", nil)}
		res.Replies = append([]Reply{hint}, res.Replies...)
	}
	return res
}

// TryLater is the answer to someone with no record when the runner's
// registration limits (bot/flood.go) allow no new record now: one hint in
// the language their platform suggests, and nothing kept.
func (e *Engine) TryLater(in Input) Result {
	lang := e.SuggestLanguage(in.LangHint)
	return Result{Erase: true, Replies: []Reply{{Text: e.Catalog.Text(lang, "RegistrationLater", nil)}}}
}
