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
