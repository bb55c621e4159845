package dialogs

// NormalizeUnicode exposes the general path of Normalize to tests.
var NormalizeUnicode = normalizeUnicode

// KeywordProblem exposes the keyword refusal rules to tests.
func KeywordProblem(e *Engine, typed, name string) string { return e.keywordProblem(typed, name) }
