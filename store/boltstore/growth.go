package boltstore

import bolt "go.etcd.io/bbolt"

// Bounded file growth (issue 15 item 4). bbolt splits a full leaf page at
// Bucket.FillPercent, 0.5 by default: right for keys that arrive in random
// order (the next insert may land in either half), wasteful for keys that
// only grow, where the left half is never written again and stays half
// empty for good. The buckets below get their keys in increasing order —
// a sequence, a case number or a time, over the whole bucket — so their
// write paths open them with appendBucket and their pages are left nearly
// full. Buckets keyed by an HMAC or a user key (registrants, keys,
// regindex, sendq, purge, rollcall_*) keep the default, and so does
// inbound: a Telegram update id grows, a WhatsApp message id is random.
// So do buckets where each embassy or endpoint appends behind its own
// prefix (event_index, event_unacked, case_index, case_status_index,
// pending): there the next key lands in the middle of a page another
// prefix shares, and a 0.95 split measured 29% fill against 60% at the
// default (docs/benchmarks.md "Growth").
// docs/benchmarks.md "Growth" has the measured page fill before and after.

// appendFill is the split point for append-only buckets: pages keep 5%
// headroom so an in-place update that grows a value (a case changing
// status) does not split a page at once.
const appendFill = 0.95

// appendFillPercent is appendFill, a variable only so the growth benchmark
// can measure the default side by side in one binary.
var appendFillPercent = appendFill

// appendBuckets are the buckets whose keys only grow, and so are written
// through appendBucket. growth_test.go checks every write path of each.
var appendBuckets = [][]byte{
	bucketOutbox, bucketAudit, bucketCases, bucketCaseEvents, bucketDelivered, bucketDue,
}

// appendBucket returns the bucket name of tx with its pages split at
// appendFillPercent. bbolt keeps one Bucket per name per write
// transaction, so the setting holds for every later write to that bucket
// in tx, whichever helper makes it, and is applied when tx commits.
func appendBucket(tx *bolt.Tx, name []byte) *bolt.Bucket {
	b := tx.Bucket(name)
	if b != nil {
		b.FillPercent = appendFillPercent
	}
	return b
}
