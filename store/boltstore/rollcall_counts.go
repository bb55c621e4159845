package boltstore

import (
	"bytes"
	"encoding/binary"
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
	// bucketRCLists: id ‖ 0x00 ‖ list byte ‖ pseudonymous id ‖ 0x00 ‖
	// user key → nothing: each roll call's four lists in the order the API
	// pages them (by pseudonymous id; the user key keeps two members whose
	// pseudonyms collide apart), so a page is one seek and its size, not a
	// read of every membership.
	bucketRCLists = []byte("rollcall_lists")

	keyRCCountsBuilt = []byte("rollcall_counts_built")
	keyRCListsBuilt  = []byte("rollcall_lists_built")
)

// rcAccepted is the counter key byte of accepted prompts (member states
// are small numbers, so it cannot clash).
const rcAccepted = 'a'

func init() {
	allBuckets = append(allBuckets, bucketRCCounts, bucketRCSends, bucketRCAccepted, bucketRCLists)
}

// The lists the API pages, by the byte that files them: pending holds
// both the listed and the prompted.
var rcListByte = map[store.MemberState]byte{
	store.MemberListed: 'p', store.MemberPrompted: 'p', store.MemberResponded: 'r',
	store.MemberMissed: 'm', store.MemberUnprompted: 'u',
}

// RollCallLists names the lists a roll call pages, with their bytes.
var rollCallLists = map[string]byte{"pending": 'p', "responded": 'r', "missed": 'm', "unprompted": 'u'}

func rcListKey(id string, list byte, key string) []byte {
	return append(append(append(append(memberKey(id, ""), list), dialogs.Pseudonym(key)...), 0), key...)
}

// listMember moves one member between a roll call's lists (from or to 0:
// none).
func listMember(tx *bolt.Tx, id, key string, from, to store.MemberState) error {
	lf, lt := rcListByte[from], rcListByte[to]
	if lf == lt {
		return nil
	}
	b := tx.Bucket(bucketRCLists)
	if lf != 0 {
		if err := b.Delete(rcListKey(id, lf, key)); err != nil {
			return err
		}
	}
	if lt == 0 {
		return nil
	}
	return b.Put(rcListKey(id, lt, key), nil)
}

// RollCallPage returns one page of a roll call's list ("pending",
// "responded", "missed" or "unprompted"): up to limit pseudonymous ids in
// ascending order after cursor ("" for the first page), and the cursor
// of the next page ("" when none follows; it holds a store key: hand it
// to no one unsealed) — one seek and the page, whatever the roll call's
// size.
func (s *Store) RollCallPage(id, list, cursor string, limit int) (ids []string, next string, err error) {
	lb, ok := rollCallLists[list]
	if !ok {
		return nil, "", fmt.Errorf("store: roll call list %q: want pending, responded, missed or unprompted", list)
	}
	after := cursor
	prefix := append(memberKey(id, ""), lb)
	ids = []string{}
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRCLists).Cursor()
		start := append(bytes.Clone(prefix), after...)
		k, _ := c.Seek(start)
		if after != "" && bytes.Equal(k, start) {
			k, _ = c.Next()
		}
		last := ""
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(ids) == limit {
				next = last
				return nil
			}
			rest := k[len(prefix):]
			i := bytes.IndexByte(rest, 0)
			if i < 0 {
				return fmt.Errorf("store: roll call %s: a list entry is malformed", id)
			}
			ids = append(ids, string(rest[:i]))
			last = string(rest)
		}
		return nil
	})
	return ids, next, err
}

func rcCountKey(id string, b byte) []byte { return append(memberKey(id, ""), b) }

// countMember moves one member (key) of roll call id from state from to
// state to (0: none, for an erased member), in its counters and its lists.
func countMember(tx *bolt.Tx, id, key string, from, to store.MemberState) error {
	if from == to {
		return nil
	}
	if err := listMember(tx, id, key, from, to); err != nil {
		return err
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

// backfillRollCallLists files the members of the roll calls of a file
// written before the lists existed, once.
func backfillRollCallLists(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyRCListsBuilt) != nil {
		return nil
	}
	if rcs := tx.Bucket(bucketRollCalls); rcs != nil {
		if err := rcs.ForEach(func(k, _ []byte) error {
			return forMembers(tx, string(k), func(key string, m store.MemberState) error {
				return listMember(tx, string(k), key, 0, m)
			})
		}); err != nil {
			return err
		}
	}
	return meta.Put(keyRCListsBuilt, []byte{1})
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
		if err := getSealed(tx, bucketRollCalls, []byte(id), raw, &rc); err != nil {
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
		listed := 0
		lists := c.tx.Bucket(bucketRCLists)
		forMembers(c.tx, string(k), func(key string, m store.MemberState) error {
			listed++
			if lists == nil || lists.Get(rcListKey(string(k), rcListByte[m], key)) == nil {
				c.add("roll call "+printableID(k, n), "a %s member is missing from its list", m)
			}
			return nil
		})
		if lists != nil {
			prefix, entries := memberKey(string(k), ""), 0
			lc := lists.Cursor()
			for lk, _ := lc.Seek(prefix); lk != nil && bytes.HasPrefix(lk, prefix); lk, _ = lc.Next() {
				entries++
			}
			if entries != listed {
				c.add("roll call "+printableID(k, n), "its lists hold %d entries for %d members", entries, listed)
			}
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
		mk := memberKey(id, key)
		if m, ok, err := getState(tx, bucketRCMembers, mk, members.Get(mk)); err != nil {
			return err
		} else if ok && store.MemberState(m) == store.MemberPrompted {
			ids = append(ids, id)
		}
	}
	return rememberPromptSend(tx, key, sends, ids)
}
