package store

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// The audit trail's vocabulary (DESIGN §8, issue 13 items 2 and 4). An
// entry's clear part says what changed — which record, when — never why:
// the reason (the engine's action, the event types an escalation raised, a
// case's old and new status, the API token's label) is sealed under the
// audit key, or not written at all without one. The clear actions are few
// on purpose: a duress check-in, a covert stop or a covert delete writes
// exactly the entries the same visible action writes without duress, and
// nothing in an action's name tells a keyword change, a hidden status or an
// escalation apart.
const (
	// AuditRegistrantUpdated: one event of a registrant was processed and
	// the engine recorded an action (a check-in, a setting, a stop …): one
	// entry per processed event, however many actions or escalations it had.
	AuditRegistrantUpdated = "registrant.updated"
	// AuditCaseUpdated: an embassy changed a case (ack, note, resolve …).
	AuditCaseUpdated = "case.updated"
	// AuditEventAcknowledged: an embassy acknowledged a pulled event.
	AuditEventAcknowledged = "event.acknowledged"
	// AuditServiceResumed: the service recorded a downtime or clock step.
	AuditServiceResumed = "service.resumed"
	// AuditCheckpoint stands for every entry compacted away before it: it
	// carries the last removed entry's seq, hash and MAC, so the chain
	// still verifies from it.
	AuditCheckpoint = "audit.checkpoint"
)

// AuditHead names the end of the trail: the last entry's seq and hash.
// `serve` logs it at start and exports it as metrics; `audit verify
// --expect-head SEQ:HASH` checks a file against one noted earlier, which
// catches a trail cut short or a file rolled back to an older copy.
type AuditHead struct {
	Seq  uint64
	Hash string
}

// String is the SEQ:HASH form --expect-head takes.
func (h AuditHead) String() string { return strconv.FormatUint(h.Seq, 10) + ":" + h.Hash }

// ParseAuditHead reads SEQ:HASH (the hash in hex, as logged).
func ParseAuditHead(s string) (AuditHead, error) {
	seq, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil || n == 0 {
		return AuditHead{}, fmt.Errorf("audit head %q: want SEQ:HASH, as serve logs it (audit head seq=N hash=H)", s)
	}
	if _, err := hex.DecodeString(hash); err != nil || len(hash) != 64 {
		return AuditHead{}, fmt.Errorf("audit head %q: the hash is not 64 hex digits", s)
	}
	return AuditHead{Seq: n, Hash: strings.ToLower(hash)}, nil
}

// AuditProblem is what is wrong with the first bad entry of a trail.
type AuditProblem string

// The problems verification tells apart, as precisely as the file allows.
const (
	// AuditEdited: an entry's content no longer matches its hash or MAC
	// (changed, or changed and re-chained without the key).
	AuditEdited AuditProblem = "edited"
	// AuditRemoved: entries are missing from the middle or the start.
	AuditRemoved AuditProblem = "removed"
	// AuditReordered: an entry is stored out of its place.
	AuditReordered AuditProblem = "reordered"
	// AuditTruncated: the trail ends before its recorded or expected head:
	// entries were cut off at the end, or the file is an older copy.
	AuditTruncated AuditProblem = "truncated or rolled back"
	// AuditUnsigned: an entry, the head or a checkpoint carries no MAC
	// where the key requires one (MACs stripped, or the key was dropped).
	AuditUnsigned AuditProblem = "unsigned"
	// AuditUnreadable: an entry cannot be decoded at all.
	AuditUnreadable AuditProblem = "unreadable"
	// AuditUncheckable: the expected head lies before the checkpoint, in
	// the compacted part, and can no longer be compared.
	AuditUncheckable AuditProblem = "not checkable"
)

// AuditError is the first bad entry of a trail, by seq, with the reason.
type AuditError struct {
	Seq     uint64
	Problem AuditProblem
	Detail  string
}

func (e *AuditError) Error() string {
	return fmt.Sprintf("audit entry %d: %s: %s", e.Seq, e.Problem, e.Detail)
}

// AuditReport is what a verification found in a trail that holds.
type AuditReport struct {
	// Entries counts the entries read, a checkpoint included.
	Entries int
	// Keyed: a key was given, so MACs (entries, head, checkpoint) were
	// checked; without one only the hash chain was.
	Keyed bool
	// Signed counts entries whose MAC was checked; Unsigned those before
	// the first signed one, written while the service ran without a key
	// (their hash chain is checked, and any change to them breaks the
	// first signed entry's link).
	Signed, Unsigned int
	// Legacy counts the signed entries whose MAC was made with the audit
	// key of before v2, derived from a master key (given, so checked).
	// LegacyUnchecked counts entries with such a MAC whose master key was
	// not given: not counted in Signed, their hash chain is checked and
	// anchored by the next MAC that is (a later entry's, or the head's).
	Legacy, LegacyUnchecked int
	// Checkpoint is the seq the chain starts from after compaction (0:
	// never compacted).
	Checkpoint uint64
	// Head is the trail's end as verified.
	Head AuditHead
}
