package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	bolt "go.etcd.io/bbolt"
)

// The registrant counters behind /metrics (issue 12 item 6): how many
// registrants are in each real status, how many are overdue, and the
// latest check-in, kept in the transaction of every registrant write
// (Process) instead of counted by decoding every registrant at each
// scrape, so a scrape costs the same at 10,000 registrants as at
// 1,000,000. They are aggregates of every registrant: no person is in
// them, and a duress check-in moves them exactly as a normal one does.
var (
	// bucketStatCounts: "status:" ‖ name → 8-byte count; "overdue" →
	// 8-byte count; "last_checkin" → 8-byte Unix ns of the latest
	// check-in ever recorded (it never goes back, even when that
	// registrant is erased: "no check-in for an hour" is about the
	// service).
	bucketStatCounts = []byte("stat_counts")

	keyStatsBuilt = []byte("stat_counts_built")
	// statsVersion is keyStatsBuilt's value: a file whose counters were
	// built by another version has them counted again at open. Version 2
	// never counted a covertly deleted registration overdue; version 3
	// kept no slot counters.
	statsVersion = []byte{4}
	statStatus   = "status:"
	// statSlot ‖ channel ‖ ":" ‖ "HHMM" → 8-byte count of registrants
	// whose check-in prompts fall in that 15-minute UTC slot of the day
	// (promptSlots), for the time question's crowding advice.
	statSlot        = "slot:"
	statOverdue     = []byte("overdue")
	statLastCheckin = []byte("last_checkin")
)

func init() { allBuckets = append(allBuckets, bucketStatCounts) }

// regStat is what one registrant adds to the counters.
type regStat struct {
	status  string // "new" for a registration in progress
	overdue bool
	last    time.Time
}

func statOf(st dialogs.State) regStat {
	if st.Hidden != nil && !st.Registered() {
		// A covertly deleted registration is still monitored and listed
		// active (rowOf): counted as "new" it would stand out in the
		// clear counters and /metrics, and its hidden check-ins would not
		// move the latest check-in.
		// It goes overdue when its hidden ladder does (overdueOf).
		return regStat{status: string(dialogs.StatusActive), overdue: st.Hidden.Overdue(), last: st.Hidden.LastCheckin}
	}
	name := string(st.Status)
	if st.Status == dialogs.StatusNew {
		name = "new"
	}
	overdue, _ := overdueOf(st)
	return regStat{status: name, overdue: overdue, last: st.LastCheckin}
}

// The slot counters (issue 15 item 5): how many registrants' check-in
// prompts fall in each 15-minute slot of the UTC day, per channel, so the
// time question can tell a crowded time from a free one without reading a
// single record. Like the counters above they are aggregates kept in
// clear, and they follow statOf: a covertly deleted registration keeps
// the slot of its hidden, still monitored schedule, and a covertly
// stopped or paused one is still active, so a covert action moves them
// exactly as the same request answered No would (TestCovertActionsLookActive).
// A chosen time of day says nothing about duress.

// promptSlots is the counter keys of the slots st's prompts fall in: one
// per prompt a day (two for a 12-hour interval), from the next due time,
// so they follow daylight saving time at each registrant's next check-in.
// Registrations in progress and stopped ones are in none.
func promptSlots(st dialogs.State) []string {
	channel, next, interval, ok := slotBasis(st)
	if !ok {
		return nil
	}
	n := 1
	if day := 24 * time.Hour; interval >= time.Hour && interval < day && day%interval == 0 {
		n = int(day / interval)
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = slotKey(channel, dialogs.SlotOf(next.Add(time.Duration(i)*interval)))
	}
	return keys
}

// slotBasis is what st's slots follow from: its channel, next due time and
// interval (the hidden registration's after a covert delete); ok is false
// for a registration in none.
func slotBasis(st dialogs.State) (channel string, next time.Time, interval time.Duration, ok bool) {
	channel, next, interval = st.Channel, st.NextDue, st.Interval
	switch {
	case st.Hidden != nil && !st.Registered():
		h := st.Hidden
		channel, next, interval = h.Channel, h.NextDue, h.Interval
	case st.Status == dialogs.StatusActive || st.Status == dialogs.StatusPaused:
	default:
		return "", time.Time{}, 0, false
	}
	return channel, next, interval, !next.IsZero() && channel != ""
}

// sameSlots reports, without building a key, whether a and b count in the
// same slots — the common case: a check-in moves the next due by a day.
func sameSlots(a, b dialogs.State) bool {
	ca, na, ia, oka := slotBasis(a)
	cb, nb, ib, okb := slotBasis(b)
	if !oka || !okb {
		return oka == okb
	}
	return ca == cb && ia == ib && dialogs.SlotOf(na) == dialogs.SlotOf(nb)
}

func slotKey(channel string, slot int) string {
	m := slot * int(dialogs.SlotLength/time.Minute)
	return fmt.Sprintf("%s%s:%02d%02d", statSlot, channel, m/60, m%60)
}

// parseSlotKey reads a slot counter's key back.
func parseSlotKey(k []byte) (channel string, slot int, ok bool) {
	rest, ok := strings.CutPrefix(string(k), statSlot)
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 || len(rest)-i != 5 {
		return "", 0, false
	}
	hhmm, err := time.Parse("1504", rest[i+1:])
	if err != nil {
		return "", 0, false
	}
	return rest[:i], dialogs.SlotOf(hhmm), true
}

// countSlots moves the slot counters from prev (when had) to next (unless
// erased), in the transaction of the write.
func countSlots(b *bolt.Bucket, prev dialogs.State, had bool, next dialogs.State, erased bool) error {
	if had && !erased && sameSlots(prev, next) {
		return nil // a check-in: the next due moved a day, the slots did not
	}
	var from, to []string
	if had {
		from = promptSlots(prev)
	}
	if !erased {
		to = promptSlots(next)
	}
	if slices.Equal(from, to) {
		return nil
	}
	for _, k := range from {
		if err := addCount(b, []byte(k), -1); err != nil {
			return err
		}
	}
	for _, k := range to {
		if err := addCount(b, []byte(k), 1); err != nil {
			return err
		}
	}
	return nil
}

// SlotLoads is the slot counters by channel: how many registrants'
// prompts fall in each 15-minute UTC slot of the day (bot's crowding
// cache reads it at most once a minute). One read transaction over at most
// 96 keys per channel.
func (s *Store) SlotLoads() (map[string][dialogs.SlotsPerDay]int, error) {
	out := map[string][dialogs.SlotsPerDay]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketStatCounts).Cursor()
		prefix := []byte(statSlot)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			channel, slot, ok := parseSlotKey(k)
			if !ok || len(v) != 8 {
				return fmt.Errorf("slot counter %q is malformed", k)
			}
			load := out[channel]
			load[slot] = int(binary.BigEndian.Uint64(v))
			out[channel] = load
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: slot loads: %w", err)
	}
	return out, nil
}

// addCount adds d to the counter under key (never below zero: a drift is
// `checkinbot check`'s to report, not a citizen's write to fail on).
func addCount(b *bolt.Bucket, key []byte, d int64) error {
	var n uint64
	if v := b.Get(key); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	switch {
	case d < 0 && n < uint64(-d):
		n = 0
	default:
		n = uint64(int64(n) + d)
	}
	return b.Put(key, u64(n))
}

// countRegistrant moves the counters from prev (when had) to next (unless
// erased), in the transaction of the write.
func countRegistrant(tx *bolt.Tx, prev dialogs.State, had bool, next dialogs.State, erased bool) error {
	b := tx.Bucket(bucketStatCounts)
	if err := countSlots(b, prev, had, next, erased); err != nil {
		return err
	}
	var from, to *regStat
	if had {
		s := statOf(prev)
		from = &s
	}
	if !erased {
		s := statOf(next)
		to = &s
	}
	if from != nil && to != nil && from.status == to.status && from.overdue == to.overdue && !to.last.After(from.last) {
		return nil // nothing moved: no write
	}
	if from != nil {
		if err := addCount(b, []byte(statStatus+from.status), -1); err != nil {
			return err
		}
		if from.overdue {
			if err := addCount(b, statOverdue, -1); err != nil {
				return err
			}
		}
	}
	if to == nil {
		return nil
	}
	if err := addCount(b, []byte(statStatus+to.status), 1); err != nil {
		return err
	}
	if to.overdue {
		if err := addCount(b, statOverdue, 1); err != nil {
			return err
		}
	}
	return raiseLastCheckin(b, to.last)
}

func raiseLastCheckin(b *bolt.Bucket, at time.Time) error {
	if at.IsZero() {
		return nil
	}
	if v := b.Get(statLastCheckin); len(v) == 8 && int64(binary.BigEndian.Uint64(v)) >= at.UnixNano() {
		return nil
	}
	return b.Put(statLastCheckin, u64(uint64(at.UnixNano())))
}

// scanStatCounts is the counters as a scan of the registrants finds them (the
// backfill and `checkinbot check`). Undecodable records are skipped (the
// check reports them).
func scanStatCounts(regs *bolt.Bucket) (counts map[string]uint64, last time.Time) {
	counts = map[string]uint64{}
	regs.ForEach(func(k, v []byte) error {
		var st dialogs.State
		if getSealed(regs.Tx(), bucketRegistrants, k, v, &st) != nil {
			return nil
		}
		s := statOf(st)
		counts[statStatus+s.status]++
		for _, k := range promptSlots(st) {
			counts[k]++
		}
		if s.overdue {
			counts[string(statOverdue)]++
		}
		if s.last.After(last) {
			last = s.last
		}
		return nil
	})
	return counts, last
}

// backfillStatCounts builds the counters of a file written before they
// existed, once, from its registrants.
func backfillStatCounts(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyStatsBuilt) != nil {
		return nil
	}
	return buildStatCounts(tx, []byte{1})
}

// buildStatCounts counts the registrants again (every counter but the
// latest check-in, which never goes back) and marks the counters built
// by version.
func buildStatCounts(tx *bolt.Tx, version []byte) error {
	b := tx.Bucket(bucketStatCounts)
	var stale [][]byte
	b.ForEach(func(k, _ []byte) error {
		if !bytes.Equal(k, statLastCheckin) {
			stale = append(stale, bytes.Clone(k))
		}
		return nil
	})
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	counts, last := scanStatCounts(tx.Bucket(bucketRegistrants))
	for k, n := range counts {
		if err := b.Put([]byte(k), u64(n)); err != nil {
			return err
		}
	}
	if err := raiseLastCheckin(b, last); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyStatsBuilt, version)
}

// recountStatCounts counts the registrants again, once, in a file whose
// counters an earlier version built (version 1 counted a covertly
// deleted registration as "new"). Open calls it after initKeys: the
// records must open.
func (s *Store) recountStatCounts() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if bytes.Equal(tx.Bucket(bucketMeta).Get(keyStatsBuilt), statsVersion) {
			return nil
		}
		return buildStatCounts(tx, statsVersion)
	})
}

func readStatCounts(tx *bolt.Tx) (byStatus map[string]int, overdue int, last time.Time, err error) {
	byStatus = map[string]int{}
	err = tx.Bucket(bucketStatCounts).ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("registrant counter %q is malformed", k)
		}
		n := binary.BigEndian.Uint64(v)
		switch {
		case bytes.Equal(k, statOverdue):
			overdue = int(n)
		case bytes.Equal(k, statLastCheckin):
			last = time.Unix(0, int64(n)).UTC()
		case strings.HasPrefix(string(k), statStatus) && n > 0:
			byStatus[strings.TrimPrefix(string(k), statStatus)] = int(n)
		}
		return nil
	})
	return byStatus, overdue, last, err
}

// statCounts compares the counters with a scan of the registrants.
func (c *checker) statCounts() {
	regs, b := c.tx.Bucket(bucketRegistrants), c.tx.Bucket(bucketStatCounts)
	if regs == nil || b == nil {
		return
	}
	want, last := scanStatCounts(regs)
	b.ForEach(func(k, v []byte) error {
		if bytes.Equal(k, statLastCheckin) {
			if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < last.UnixNano() {
				c.add("counter last_checkin", "earlier than a registrant's last check-in")
			}
			return nil
		}
		var n uint64
		if len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		if n != want[string(k)] {
			c.add("counter "+string(k), "says %d, the registrants say %d: /metrics would be wrong", n, want[string(k)])
		}
		delete(want, string(k))
		return nil
	})
	for k, n := range want {
		c.add("counter "+k, "missing, the registrants say %d", n)
	}
}
