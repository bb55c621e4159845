package dialogs

// NormalizeUnicode exposes the general path of Normalize to tests.
var NormalizeUnicode = normalizeUnicode

// KeywordProblem exposes the keyword refusal rules to tests.
func KeywordProblem(e *Engine, typed, name string) string { return e.keywordProblem(typed, name) }

// Detects reports whether keyword, as a citizen would have registered it,
// is found in text by the matcher the engine uses.
func Detects(e *Engine, key, keyword, text string) bool {
	mac := e.mac()
	defer e.macs.Put(mac)
	found, _ := matchKeyword(mac, key, NewKeyword(e.Pepper, key, keyword), Normalize(text))
	return found
}

// MatchKeyword exposes keyword matching to the benchmarks.
var MatchKeyword = matchKeyword

// SkippableSteps lists every step that offers Skip, so tests can check
// that they cover each one.
func SkippableSteps() []Step {
	var out []Step
	for _, step := range AllSteps {
		if steps()[step].skippable {
			out = append(out, step)
		}
	}
	return out
}
