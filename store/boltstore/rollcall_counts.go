package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// Roll-call counters (issue 12 item 3): how many members stand in each
// state, and how many prompts the platform accepted, kept in the
// transactions that move them — CreateRollCall, Process (trackRollCalls),
// CloseRollCall, AckSends — so GET /v1/rollcalls/{id} reads a handful of
// keys instead of every membership.
var (
	// bucketRCCounts: id ‖ 0x00 ‖ state byte → 8-byte count, and id ‖
	// 0x00 ‖ 'a' → 8-byte count of accepted prompts.
	bucketRCCounts = []byte("rollcall_counts")
	// bucketRCSends: user key ‖ 0x00 ‖ send seq → roll-call ids joined by
	// 0x00: the roll calls a queued prompt asks for, until it is settled.
	bucketRCSends = []byte("rollcall_sends")
	// bucketRCAccepted: id ‖ 0x00 ‖ user key → nothing: the member's
	// prompt was accepted by the platform (counted once).
	bucketRCAccepted = []byte("rollcall_accepted")

	keyRCCountsBuilt = []byte("rollcall_counts_built")
)

// rcAccepted is the counter key byte of accepted prompts (member states
// are small numbers, so it cannot clash).
const rcAccepted = 'a'

func init() { allBuckets = append(allBuckets, bucketRCCounts, bucketRCSends, bucketRCAccepted) }

func rcCountKey(id string, b byte) []byte { return append(memberKey(id, ""), b) }

// countMember moves one member of roll call id from state from to state
// to (0: none, for a new or an erased member).
func countMember(tx *bolt.Tx, id string, from, to store.MemberState) error {
	if from == to {
		return nil
	}
	b := tx.Bucket(bucketRCCounts)
	if from != 0 {
		if err := addCount(b, rcCountKey(id, byte(from)), -1); err != nil {
			return err
		}
	}
	if to != 0 {
		return addCount(b, rcCountKey(id, byte(to)), 1)
	}
	return nil
}

// rememberPromptSend records, in the transaction that queues it, which
// roll calls the prompt send item of key asks for.
func rememberPromptSend(tx *bolt.Tx, key string, sends []store.SendItem, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	for _, it := range sends {
		if err := tx.Bucket(bucketRCSends).Put(userSeqKey(key, it.Seq), []byte(joinNUL(ids))); err != nil {
			return err
		}
	}
	return nil
}

func joinNUL(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += "\x00"
		}
		out += id
	}
	return out
}

// settlePromptSend runs in the transaction of a send acknowledgement: a
// roll-call prompt the platform accepted is counted as prompted, once per
// member, for every roll call it asked for that the member still belongs
// to.
func settlePromptSend(tx *bolt.Tx, a store.SendAck) error {
	sends := tx.Bucket(bucketRCSends)
	k := userSeqKey(a.UserKey, a.Seq)
	v := sends.Get(k)
	if v == nil {
		return nil
	}
	ids := bytes.Split(bytes.Clone(v), []byte{0})
	if err := sends.Delete(k); err != nil {
		return err
	}
	if !a.Accepted {
		return nil
	}
	members, accepted := tx.Bucket(bucketRCMembers), tx.Bucket(bucketRCAccepted)
	for _, id := range ids {
		mk := memberKey(string(id), a.UserKey)
		if members == nil || members.Get(mk) == nil || accepted.Get(mk) != nil {
			continue
		}
		if err := accepted.Put(mk, nil); err != nil {
			return err
		}
		if err := addCount(tx.Bucket(bucketRCCounts), rcCountKey(string(id), rcAccepted), 1); err != nil {
			return err
		}
	}
	return nil
}

// forgetAccepted removes an erased member's accepted mark and count.
func forgetAccepted(tx *bolt.Tx, id, key string) error {
	accepted := tx.Bucket(bucketRCAccepted)
	mk := memberKey(id, key)
	if accepted.Get(mk) == nil {
		return nil
	}
	if err := accepted.Delete(mk); err != nil {
		return err
	}
	return addCount(tx.Bucket(bucketRCCounts), rcCountKey(id, rcAccepted), -1)
}

// scanRollCallCounts counts roll call id's members by state, from the
// memberships and accepted marks (the backfill and the check).
func scanRollCallCounts(tx *bolt.Tx, id string) (map[byte]uint64, error) {
	counts := map[byte]uint64{}
	if err := forMembers(tx, id, func(_ string, m store.MemberState) error {
		counts[byte(m)]++
		return nil
	}); err != nil {
		return nil, err
	}
	prefix := memberKey(id, "")
	c := tx.Bucket(bucketRCAccepted).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		counts[rcAccepted]++
	}
	return counts, nil
}

// backfillRollCallCounts builds the counters of the roll calls of a file
// written before they existed, once. Prompts accepted before then were
// not recorded: those roll calls count none as prompted.
func backfillRollCallCounts(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyRCCountsBuilt) != nil {
		return nil
	}
	if rcs := tx.Bucket(bucketRollCalls); rcs != nil {
		if err := rcs.ForEach(func(k, _ []byte) error {
			counts, err := scanRollCallCounts(tx, string(k))
			if err != nil {
				return err
			}
			for b, n := range counts {
				if err := tx.Bucket(bucketRCCounts).Put(rcCountKey(string(k), b), u64(n)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return meta.Put(keyRCCountsBuilt, []byte{1})
}

// RollCallCounts returns a roll call and its counts, reading its record
// and a few counters — not its memberships — or found false.
func (s *Store) RollCallCounts(id string) (rc store.RollCall, counts store.RollCallCounts, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		rcs := tx.Bucket(bucketRollCalls)
		if rcs == nil {
			return nil
		}
		raw := rcs.Get([]byte(id))
		if raw == nil {
			return nil
		}
		found = true
		if err := json.Unmarshal(raw, &rc); err != nil {
			return fmt.Errorf("store: roll call %s is corrupt: %w", id, err)
		}
		get := func(b byte) int {
			if v := tx.Bucket(bucketRCCounts).Get(rcCountKey(id, b)); len(v) == 8 {
				return int(binary.BigEndian.Uint64(v))
			}
			return 0
		}
		counts = store.RollCallCounts{Responded: get(byte(store.MemberResponded)), Missed: get(byte(store.MemberMissed)),
			Unprompted: get(byte(store.MemberUnprompted)), Pending: get(byte(store.MemberListed)) + get(byte(store.MemberPrompted)),
			Prompted: get(rcAccepted)}
		counts.Members = counts.Responded + counts.Pending + counts.Missed + counts.Unprompted
		return nil
	})
	return rc, counts, found, err
}

// rollCallCounts compares every roll call's counters with its
// memberships (`checkinbot check`).
func (c *checker) rollCallCounts() {
	rcs, counts := c.tx.Bucket(bucketRollCalls), c.tx.Bucket(bucketRCCounts)
	if rcs == nil || counts == nil || c.tx.Bucket(bucketRCMembers) == nil || c.tx.Bucket(bucketRCAccepted) == nil {
		return
	}
	c.rep.Counts[string(bucketRCAccepted)] = c.tx.Bucket(bucketRCAccepted).Stats().KeyN
	n := 0
	rcs.ForEach(func(k, _ []byte) error {
		n++
		want, err := scanRollCallCounts(c.tx, string(k))
		if err != nil {
			c.add("roll call "+printableID(k, n), "%v", err)
			return nil
		}
		for _, b := range []byte{byte(store.MemberListed), byte(store.MemberPrompted), byte(store.MemberResponded),
			byte(store.MemberMissed), byte(store.MemberUnprompted), rcAccepted} {
			var got uint64
			if v := counts.Get(rcCountKey(string(k), b)); len(v) == 8 {
				got = binary.BigEndian.Uint64(v)
			}
			if got != want[b] {
				name := "prompted (accepted)"
				if b != rcAccepted {
					name = store.MemberState(b).String()
				}
				c.add("roll call "+printableID(k, n), "counts %d %s, its members say %d", got, name, want[b])
			}
		}
		return nil
	})
}

// printableID names a roll call by id, or by position when the key is
// not one of ours.
func printableID(k []byte, i int) string {
	if bytes.HasPrefix(k, []byte("rc_")) && len(k) < 40 {
		return string(k)
	}
	return fmt.Sprintf("#%d", i)
}

// rememberRollCallPrompt runs in Process's transaction after the sends
// are queued: when the result is a roll-call prompt, the queued item is
// remembered with the roll calls the member is now prompted for, so its
// acceptance can be counted (settlePromptSend).
func rememberRollCallPrompt(tx *bolt.Tx, key string, res dialogs.Result, sends []store.SendItem) error {
	if len(sends) == 0 || !slices.Contains(res.Audit, store.AuditRollCallPrompted) {
		return nil
	}
	users, members := tx.Bucket(bucketRCUser), tx.Bucket(bucketRCMembers)
	if users == nil || members == nil {
		return nil
	}
	var ids []string
	prefix := memberKey(key, "")
	c := users.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := string(k[len(prefix):])
		if v := members.Get(memberKey(id, key)); len(v) == 1 && store.MemberState(v[0]) == store.MemberPrompted {
			ids = append(ids, id)
		}
	}
	return rememberPromptSend(tx, key, sends, ids)
}
