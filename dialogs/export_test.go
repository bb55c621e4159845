package dialogs

// NormalizeUnicode exposes the general path of Normalize to tests.
var NormalizeUnicode = normalizeUnicode

// MatchKeyword exposes keyword matching to the benchmarks.
var MatchKeyword = matchKeyword
