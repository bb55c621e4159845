package storetest

// AuditKey is the audit key every engine under this suite is opened with
// (boltstore.Options.AuditKey): the suite reads the sealed reasons of the
// audit trail, which an engine without a key writes nowhere.
var AuditKey = []byte("storetest-audit-key-0123456789ab")
