package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The index part of `checkinbot check`: every index is compared with the
// records it is built from, both ways. An entry the records call for but
// the index lacks is "missing" (a list or a pull would skip the record);
// an entry no record calls for, or one that disagrees with its record, is
// "dangling" (a list would show a stale or vanished record, or fail). Each
// index gets one line per kind, with the count and the first few entries
// by case id, event id or pseudonym — never by anything personal.

// maxNamed is how many entries a problem line names before "…".
const maxNamed = 3

// tally collects one index's missing and dangling entries.
type tally struct {
	index             string
	missing, dangling []string
	entries           int
}

func (t *tally) miss(format string, args ...any) {
	t.missing = append(t.missing, fmt.Sprintf(format, args...))
}

func (t *tally) dangle(format string, args ...any) {
	t.dangling = append(t.dangling, fmt.Sprintf(format, args...))
}

func named(s []string) string {
	slices.Sort(s)
	if len(s) <= maxNamed {
		return joinComma(s)
	}
	return joinComma(s[:maxNamed]) + ", …"
}

// report adds the tally's problems and its entry count.
func (c *checker) report(t *tally) {
	c.rep.Counts[t.index] = t.entries
	if n := len(t.missing); n > 0 {
		c.add("index "+t.index, "%d missing entries (%s): a list or pull would skip them; "+
			"restore from a backup, or report it", n, named(t.missing))
	}
	if n := len(t.dangling); n > 0 {
		c.add("index "+t.index, "%d dangling entries (%s): they name records that are gone or say otherwise", n, named(t.dangling))
	}
}

// indexes checks every index against its records.
func (c *checker) indexes(cases map[string]store.Case) {
	c.caseIndexes(cases)
	c.registrantIndex()
	c.eventIndexes(cases)
	c.statCounts()     // stats.go
	c.rollCallCounts() // rollcall_counts.go
	c.pendingDue()
	c.ownerRows()
}

// ownerRows checks the owner index (erase.go) of an encrypted file opened
// with its key: every outbox event sealed for a registrant or an erased
// key that still exists, and every send-queue or purge row sealed under an
// erased key, is listed under that key's tag. A missing entry is a row an
// erasure would leave under a destroyed key (an event owed, shredded) or
// the sweep would not wait for. An entry naming an event that is gone, or
// a row of another owner, is dangling; an erased key's entry of a reply
// sent or a purge done since is not (the sweep removes it).
func (c *checker) ownerRows() {
	meta, idx := c.tx.Bucket(bucketMeta), c.tx.Bucket(bucketOwnerRows)
	if c.sealed || codecOf(c.tx) == nil || meta == nil || idx == nil || meta.Get(keyOwnerRowsBuilt) == nil {
		return
	}
	t := &tally{index: string(bucketOwnerRows)}
	tags := map[string][]byte{} // owner → tag (nil: key destroyed)
	tagOf := func(owner string) []byte {
		tag, ok := tags[owner]
		if !ok {
			tag, _ = ownerTag(c.tx, owner)
			tags[owner] = tag
		}
		return tag
	}
	want := map[string]string{} // index key → what it lists
	if outbox := c.tx.Bucket(bucketOutbox); outbox != nil {
		outbox.ForEach(func(k, v []byte) error {
			_, owner, err := eventOf(c.tx, k, v)
			if err != nil || owner == "" || len(k) != 8 {
				return nil // under a destroyed key, or reported with the outbox
			}
			if tag := tagOf(owner); tag != nil {
				want[string(ownerRowKey(tag, rowEvent, k))] = fmt.Sprintf("event %d", binary.BigEndian.Uint64(k))
			}
			return nil
		})
	}
	for _, x := range []struct {
		name []byte
		kind byte
	}{{bucketSendq, rowSend}, {bucketPurge, rowPurge}} {
		if b := c.tx.Bucket(x.name); b != nil {
			b.ForEach(func(k, v []byte) error {
				if o := storedOwner(x.name, k, v); strings.HasPrefix(o, erasedPrefix) {
					if tag := tagOf(o); tag != nil {
						want[string(ownerRowKey(tag, x.kind, k))] = fmt.Sprintf("%s row of %s", x.name, o)
					}
				}
				return nil
			})
		}
	}
	idx.ForEach(func(k, _ []byte) error {
		t.entries++
		if _, ok := want[string(k)]; ok {
			delete(want, string(k))
			return nil
		}
		if len(k) > ownerTagSize && (k[ownerTagSize] == rowSend || k[ownerTagSize] == rowPurge) {
			b := bucketSendq
			if k[ownerTagSize] == rowPurge {
				b = bucketPurge
			}
			if c.tx.Bucket(b).Get(k[ownerTagSize+1:]) == nil {
				return nil // sent or done since the erasure: the sweep removes it
			}
		}
		if len(k) == ownerTagSize+9 && k[ownerTagSize] == rowEvent {
			t.dangle("event %d", binary.BigEndian.Uint64(k[ownerTagSize+1:]))
		} else {
			t.dangle("entry #%d", t.entries)
		}
		return nil
	})
	for _, name := range want {
		t.miss("%s", name)
	}
	c.report(t)
}

// pendingDue checks the due index of pending deliveries (pending_due.go):
// one entry per pending row, at the row's next attempt; and the heartbeat
// due index: the same, for the endpoint.heartbeat rows only. A missing
// entry is a delivery no round (or no prober tick) would ever attempt; a
// dangling one a round would stop on ("not pending"). An index not yet
// built (a file written by an older binary, checked before serve opened
// it, or whose build at open was interrupted) is not checked.
func (c *checker) pendingDue() {
	meta, pending := c.tx.Bucket(bucketMeta), c.tx.Bucket(bucketPending)
	if meta == nil || pending == nil {
		return
	}
	for _, x := range []struct {
		index, built []byte
		beats        bool
	}{{bucketPendingDue, keyPendingDueBuilt, false}, {bucketPendingBeat, keyPendingBeatBuilt, true}} {
		idx := c.tx.Bucket(x.index)
		if idx == nil || meta.Get(x.built) == nil {
			continue
		}
		t := &tally{index: string(x.index)}
		want := map[string]string{} // index key → endpoint/seq
		pending.ForEach(func(k, v []byte) error {
			var d store.Delivery
			if getSealed(c.tx, bucketPending, k, v, &d) != nil {
				return nil // reported with the pending rows
			}
			if !x.beats || d.Type == escalation.TypeEndpointHeartbeat {
				want[string(pendingDueKey(d.Endpoint, d.NextAt, d.Seq))] = fmt.Sprintf("delivery %s/%d", d.Endpoint, d.Seq)
			}
			return nil
		})
		idx.ForEach(func(k, _ []byte) error {
			t.entries++
			if _, ok := want[string(k)]; ok {
				delete(want, string(k))
				return nil
			}
			if ep, at, seq, ok := parseDueKey(k); ok {
				t.dangle("delivery %s/%d at %s", ep, seq, stamp(uint64(at)))
			} else {
				t.dangle("entry #%d", t.entries)
			}
			return nil
		})
		for _, name := range want {
			t.miss("%s", name)
		}
		c.report(t)
	}
}

// caseIndexes checks the case index and the case status index.
func (c *checker) caseIndexes(cases map[string]store.Case) {
	byCase, byStatus := c.tx.Bucket(bucketCaseIndex), c.tx.Bucket(bucketCaseStatusIndex)
	if byCase == nil || byStatus == nil {
		return // reported as a missing bucket
	}
	ci, si := &tally{index: string(bucketCaseIndex)}, &tally{index: string(bucketCaseStatusIndex)}
	wantCase, wantStatus := map[string]string{}, map[string]string{}
	for id, cs := range cases {
		n, ok := caseNumber(id)
		if !ok {
			c.add("case "+id, "its id has no number")
			continue
		}
		wantCase[string(caseIndexKey(cs.EmbassyID, n))] = id
		wantStatus[string(caseStatusKey(cs.EmbassyID, cs.Status, n))] = id
	}
	for _, x := range []struct {
		b    *bolt.Bucket
		t    *tally
		want map[string]string
	}{{byCase, ci, wantCase}, {byStatus, si, wantStatus}} {
		x.b.ForEach(func(k, v []byte) error {
			x.t.entries++
			id, ok := x.want[string(k)]
			switch {
			case !ok:
				x.t.dangle("%s", printable(v, x.t.entries))
			case id != string(v):
				x.t.dangle("%s names %s", id, printable(v, x.t.entries))
			}
			delete(x.want, string(k))
			return nil
		})
		for _, id := range x.want {
			x.t.miss("case %s", id)
		}
		c.report(x.t)
	}
}

// printable names an index value that should be a case id, or
// by position when it is not one (it could be anything).
func printable(v []byte, i int) string {
	if _, ok := caseNumber(string(v)); ok && len(v) < 64 {
		return "case " + string(v)
	}
	return fmt.Sprintf("entry #%d", i)
}

// registrantIndex checks the registrant index (built by IndexWith; a file
// never served has none yet) against the registrants: the embassy part of
// its keys comes from the configuration's directory, which an offline
// check does not have, so it checks everything else — each listed
// registrant is filed once, under its status, with the two buckets
// pointing at each other.
func (c *checker) registrantIndex() {
	meta, regs := c.tx.Bucket(bucketMeta), c.tx.Bucket(bucketRegistrants)
	idx, users := c.tx.Bucket(bucketRegIndex), c.tx.Bucket(bucketRegIndexUser)
	if meta == nil || regs == nil || idx == nil || users == nil || meta.Get(keyRegIndexFP) == nil {
		return
	}
	t := &tally{index: string(bucketRegIndex)}
	listed := map[string]byte{} // user key → the status byte it should be filed under
	regs.ForEach(func(k, v []byte) error {
		var st dialogs.State
		if c.sealed || getSealed(c.tx, bucketRegistrants, k, v, &st) != nil {
			return nil // reported with the registrants (or sealed, no key)
		}
		if row, _, ok := rowOf(string(k), st, nil); ok {
			listed[string(k)] = statusByte[row.Status]
		}
		return nil
	})
	idx.ForEach(func(k, _ []byte) error {
		t.entries++
		i := bytes.IndexByte(k, 0)
		if i < 0 || i+2 > len(k) {
			t.dangle("entry #%d (malformed key)", t.entries)
			return nil
		}
		key := k[i+2:]
		if k[i+1] == statusByte[store.StatusOverdue] && len(key) >= 8 {
			key = key[8:]
		}
		want, ok := listed[string(key)]
		switch {
		case !ok:
			t.dangle("%s (not a listed registrant)", who(key, t.entries))
		case want != k[i+1]:
			t.dangle("%s (filed under another status)", who(key, t.entries))
		case !bytes.Equal(users.Get(key), k):
			t.dangle("%s (its back-reference names another entry)", who(key, t.entries))
		}
		return nil
	})
	j := 0
	users.ForEach(func(k, v []byte) error {
		j++
		if _, ok := listed[string(k)]; !ok {
			t.dangle("%s (back-reference of a registrant not listed)", who(k, j))
		} else if idx.Get(v) == nil {
			t.miss("%s (its back-reference names no entry)", who(k, j))
		}
		return nil
	})
	for key := range listed {
		if users.Get([]byte(key)) == nil {
			t.miss("%s", who([]byte(key), 0))
		}
	}
	c.report(t)
}

// eventIndexes checks the per-embassy event index, the unacknowledged
// index, the event ids and the per-case event lists against the outbox
// and the acknowledgements.
func (c *checker) eventIndexes(cases map[string]store.Case) {
	outbox := c.tx.Bucket(bucketOutbox)
	b := map[string]*bolt.Bucket{}
	for _, name := range [][]byte{bucketEventIndex, bucketEventUnacked, bucketEventSeq, bucketEventIDs, bucketCaseEvents, bucketEventAcks} {
		if b[string(name)] = c.tx.Bucket(name); b[string(name)] == nil || outbox == nil {
			return // reported as a missing bucket
		}
	}
	byEmb, unacked := &tally{index: string(bucketEventIndex)}, &tally{index: string(bucketEventUnacked)}
	ids, byCase := &tally{index: string(bucketEventIDs)}, &tally{index: string(bucketCaseEvents)}
	type want struct {
		id, embassy string
		seq         uint64
		acked       bool
	}
	wantEmb := map[string]want{}    // embassy key → the event it must name
	wantCase := map[string]string{} // case key → event id
	wantIDs := map[string]uint64{}  // event id → outbox seq
	outbox.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return nil // reported with the outbox
		}
		ev, err := eventIndexFields(c.tx, k, v)
		if err != nil {
			return nil // reported with the outbox
		}
		seq := binary.BigEndian.Uint64(k)
		if ev.CaseID != "" {
			wantCase[string(caseEventKey(ev.CaseID, seq))] = ev.ID
		}
		if ev.EmbassyID == "" || !pulled(ev.EmbassyID, ev) {
			return nil
		}
		wantIDs[ev.ID] = seq
		v2 := b[string(bucketEventIDs)].Get([]byte(ev.ID))
		if len(v2) != 16 || binary.BigEndian.Uint64(v2) != seq {
			return nil // missing from the ids: counted below
		}
		ek := embassyEventKey(ev.EmbassyID, binary.BigEndian.Uint64(v2[8:]))
		wantEmb[string(ek)] = want{ev.ID, ev.EmbassyID, seq, b[string(bucketEventAcks)].Get(ackKey(ev.EmbassyID, ev.ID)) != nil}
		return nil
	})
	b[string(bucketEventIDs)].ForEach(func(k, v []byte) error {
		ids.entries++
		seq, ok := wantIDs[string(k)]
		switch {
		case !ok:
			ids.dangle("event %s", printableEvent(k, ids.entries))
		case len(v) != 16 || binary.BigEndian.Uint64(v) != seq:
			ids.dangle("event %s (names another outbox row)", printableEvent(k, ids.entries))
		}
		delete(wantIDs, string(k))
		return nil
	})
	for id := range wantIDs {
		ids.miss("event %s", id)
	}
	last := map[string]uint64{} // embassy → highest sequence in its index
	for _, x := range []struct {
		b *bolt.Bucket
		t *tally
	}{{b[string(bucketEventIndex)], byEmb}, {b[string(bucketEventUnacked)], unacked}} {
		isUnacked := x.t == unacked
		seen := map[string]bool{}
		x.b.ForEach(func(k, v []byte) error {
			x.t.entries++
			w, ok := wantEmb[string(k)]
			switch {
			case !ok:
				x.t.dangle("entry #%d", x.t.entries)
				return nil
			case len(v) != 8 || binary.BigEndian.Uint64(v) != w.seq:
				x.t.dangle("event %s (names another outbox row)", w.id)
			case isUnacked && w.acked:
				x.t.dangle("event %s (acknowledged)", w.id)
			}
			seen[string(k)] = true
			if n := binary.BigEndian.Uint64(k[len(k)-8:]); n > last[w.embassy] {
				last[w.embassy] = n
			}
			return nil
		})
		for k, w := range wantEmb {
			if !seen[k] && (!isUnacked || !w.acked) {
				x.t.miss("event %s", w.id)
			}
		}
	}
	for emb, n := range last {
		v := b[string(bucketEventSeq)].Get([]byte(emb))
		if len(v) != 8 || binary.BigEndian.Uint64(v) < n {
			c.add("index "+string(bucketEventSeq), "embassy %q's sequence is behind its events (%d): new events would reuse cursors", emb, n)
		}
	}
	b[string(bucketCaseEvents)].ForEach(func(k, _ []byte) error {
		byCase.entries++
		id, ok := wantCase[string(k)]
		if !ok {
			byCase.dangle("entry #%d", byCase.entries)
			return nil
		}
		if i := bytes.IndexByte(k, 0); i > 0 && cases[string(k[:i])].ID == "" {
			byCase.dangle("event %s (its case is gone)", id)
		}
		delete(wantCase, string(k))
		return nil
	})
	for _, id := range wantCase {
		byCase.miss("event %s", id)
	}
	for _, t := range []*tally{byEmb, unacked, ids, byCase} {
		c.report(t)
	}
}

// printableEvent names an event id key, or by position when it is not
// one.
func printableEvent(k []byte, i int) string {
	if bytes.HasPrefix(k, []byte("evt_")) && len(k) < 64 {
		return string(k)
	}
	return fmt.Sprintf("#%d", i)
}
