package dialogs

// NormalizeUnicode exposes the general path of Normalize to tests.
var NormalizeUnicode = normalizeUnicode
