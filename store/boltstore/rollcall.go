package boltstore

import (
	"bytes"
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// Roll-call buckets, created on first write.
var (
	// bucketRollCalls: id → RollCall JSON (members aside).
	bucketRollCalls = []byte("rollcalls")
	// bucketRCMembers: id ‖ 0x00 ‖ user key → one MemberState byte.
	bucketRCMembers = []byte("rollcall_members")
	// bucketRCUser: user key ‖ 0x00 ‖ id → nothing, while the member is
	// listed or prompted: what Process looks at for each event.
	bucketRCUser = []byte("rollcall_user")
	// bucketRCDue: deadline (8 bytes Unix ns) ‖ id → nothing, while open.
	bucketRCDue = []byte("rollcall_due")
)

func memberKey(id, key string) []byte { return append(append([]byte(id), 0), key...) }

// CreateRollCall records a roll call and its members (all Listed) in one
// transaction. An id already used is refused.
func (s *Store) CreateRollCall(rc store.RollCall) error {
	if rc.ID == "" || bytes.IndexByte([]byte(rc.ID), 0) >= 0 {
		return fmt.Errorf("store: roll call: bad id %q", rc.ID)
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := rollCallBuckets(tx)
		if err != nil {
			return err
		}
		if b[0].Get([]byte(rc.ID)) != nil {
			return fmt.Errorf("store: roll call %s exists", rc.ID)
		}
		if err := putSealed(tx, bucketRollCalls, []byte(rc.ID), rc); err != nil {
			return err
		}
		if err := tx.Bucket(bucketRCCounts).Put(rcCountKey(rc.ID, byte(store.MemberListed)), u64(uint64(len(rc.Members)))); err != nil {
			return err
		}
		for _, k := range rc.Members {
			if err := putState(tx, bucketRCMembers, memberKey(rc.ID, k), byte(store.MemberListed)); err != nil {
				return err
			}
			if err := listMember(tx, rc.ID, k, 0, store.MemberListed); err != nil { // rollcall_counts.go
				return err
			}
			if err := b[2].Put(memberKey(k, rc.ID), nil); err != nil {
				return err
			}
		}
		return b[3].Put(append(u64(uint64(rc.Deadline.UnixNano())), rc.ID...), nil)
	})
}

func rollCallBuckets(tx *bolt.Tx) ([4]*bolt.Bucket, error) {
	var out [4]*bolt.Bucket
	for i, name := range [][]byte{bucketRollCalls, bucketRCMembers, bucketRCUser, bucketRCDue} {
		b, err := tx.CreateBucketIfNotExists(name)
		if err != nil {
			return out, err
		}
		out[i] = b
	}
	return out, nil
}

// trackRollCalls moves the registrant's open memberships on, inside
// Process's transaction: a committed roll-call prompt makes Listed
// Prompted; a check-in (any, duress or not: the visible outcome is the
// same) or an SOS makes them Responded; a rollcall.missed event naming the
// roll call makes it Missed; an erasure removes them.
func trackRollCalls(tx *bolt.Tx, key string, prev dialogs.State, res dialogs.Result, events []store.Event) error {
	users := tx.Bucket(bucketRCUser)
	if users == nil {
		return nil
	}
	prefix := memberKey(key, "")
	var ids []string
	c := users.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, string(k[len(prefix):]))
	}
	if len(ids) == 0 {
		return nil
	}
	members := tx.Bucket(bucketRCMembers)
	responded := answered(prev, res.State)
	prompted := false
	for _, a := range res.Audit {
		prompted = prompted || a == store.AuditRollCallPrompted
	}
	for _, e := range events {
		responded = responded || e.Type == escalation.TypeSOSRaised
	}
	for _, id := range ids {
		mk := memberKey(id, key)
		if res.Erase {
			if m, ok, err := getState(tx, bucketRCMembers, mk, members.Get(mk)); err != nil {
				return err
			} else if ok {
				if err := countMember(tx, id, key, store.MemberState(m), 0); err != nil { // rollcall_counts.go
					return err
				}
			}
			if err := forgetAccepted(tx, id, key); err != nil {
				return err
			}
			if err := members.Delete(mk); err != nil {
				return err
			}
			if err := users.Delete(memberKey(key, id)); err != nil {
				return err
			}
			continue
		}
		cur := store.MemberState(0)
		if b, ok, err := getState(tx, bucketRCMembers, mk, members.Get(mk)); err != nil {
			return err
		} else if ok {
			cur = store.MemberState(b)
		}
		next := cur
		switch {
		case responded:
			next = store.MemberResponded
		case missedIn(events, id):
			next = store.MemberMissed
		case prompted && cur == store.MemberListed:
			next = store.MemberPrompted
		}
		if next == cur {
			continue
		}
		if err := putState(tx, bucketRCMembers, mk, byte(next)); err != nil {
			return err
		}
		if err := countMember(tx, id, key, cur, next); err != nil {
			return err
		}
		if next == store.MemberResponded || next == store.MemberMissed {
			if err := users.Delete(memberKey(key, id)); err != nil {
				return err
			}
		}
	}
	return nil
}

// answered: the event was a check-in — of the registration or of a
// covertly deleted one still monitored — or the citizen paused or stopped
// (as the phone shows it, so a covert stop answers exactly as a real one).
func answered(prev, st dialogs.State) bool {
	if st.LastCheckin.After(prev.LastCheckin) {
		return true
	}
	if shown(prev) == dialogs.StatusActive && (shown(st) == dialogs.StatusPaused || shown(st) == dialogs.StatusStopped) {
		return true
	}
	return st.Hidden != nil && (prev.Hidden == nil || st.Hidden.LastCheckin.After(prev.Hidden.LastCheckin))
}

func shown(st dialogs.State) dialogs.Status {
	if st.Shown != "" {
		return st.Shown
	}
	return st.Status
}

func missedIn(events []store.Event, id string) bool {
	for _, e := range events {
		if e.Type == escalation.TypeRollcallMissed && e.Details[store.DetailRollCallID] == id {
			return true
		}
	}
	return false
}

// RollCall returns a roll call and where each member stands (pseudonymous
// ids), or found false.
func (s *Store) RollCall(id string) (rep store.RollCallReport, found bool, err error) {
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
		if err := getSealed(tx, bucketRollCalls, []byte(id), raw, &rep.RollCall); err != nil {
			return fmt.Errorf("store: roll call %s is corrupt: %w", id, err)
		}
		rep.Responded, rep.Pending, rep.Missed, rep.Unprompted = []string{}, []string{}, []string{}, []string{}
		return forMembers(tx, id, func(key string, m store.MemberState) error {
			pid := dialogs.Pseudonym(key)
			rep.Members = append(rep.Members, key)
			switch m {
			case store.MemberResponded:
				rep.Responded = append(rep.Responded, pid)
			case store.MemberMissed:
				rep.Missed = append(rep.Missed, pid)
			case store.MemberUnprompted:
				rep.Unprompted = append(rep.Unprompted, pid)
			default:
				rep.Pending = append(rep.Pending, pid)
			}
			return nil
		})
	})
	return rep, found, err
}

func forMembers(tx *bolt.Tx, id string, fn func(key string, m store.MemberState) error) error {
	members := tx.Bucket(bucketRCMembers)
	if members == nil {
		return nil
	}
	prefix := memberKey(id, "")
	c := members.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		b, _, err := getState(tx, bucketRCMembers, k, v)
		if err != nil {
			return fmt.Errorf("store: roll call %s: a member entry is corrupt: %w", id, err)
		}
		if err := fn(string(k[len(prefix):]), store.MemberState(b)); err != nil {
			return err
		}
	}
	return nil
}

// RollCallMember returns where one member of a roll call stands.
func (s *Store) RollCallMember(id, key string) (m store.MemberState, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRCMembers); b != nil {
			v, ok, err := getState(tx, bucketRCMembers, memberKey(id, key), b.Get(memberKey(id, key)))
			if err != nil {
				return err
			}
			m, found = store.MemberState(v), ok
		}
		return nil
	})
	return m, found, err
}

// RollCallMembers returns the keys of a roll call's members in state m.
func (s *Store) RollCallMembers(id string, m store.MemberState) ([]string, error) {
	var keys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return forMembers(tx, id, func(key string, got store.MemberState) error {
			if got == m {
				keys = append(keys, key)
			}
			return nil
		})
	})
	return keys, err
}

// DueRollCalls returns the open roll calls whose deadline is at or before
// now, earliest first.
func (s *Store) DueRollCalls(now time.Time) ([]store.RollCall, error) {
	var out []store.RollCall
	limit := u64(uint64(now.UnixNano()))
	err := s.db.View(func(tx *bolt.Tx) error {
		due, rcs := tx.Bucket(bucketRCDue), tx.Bucket(bucketRollCalls)
		if due == nil || rcs == nil {
			return nil
		}
		c := due.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
			var rc store.RollCall
			if err := getSealed(tx, bucketRollCalls, k[8:], rcs.Get(k[8:]), &rc); err != nil {
				return fmt.Errorf("store: roll call %s is corrupt: %w", k[8:], err)
			}
			out = append(out, rc)
		}
		return nil
	})
	return out, err
}

// CloseRollCall ends a roll call after its deadline was worked: members
// still Listed (never prompted: they had stopped or paused) become
// Unprompted, any still Prompted (no escalation could be made for them)
// Missed, and it leaves the due list.
func (s *Store) CloseRollCall(id string) error {
	return s.update(func(tx *bolt.Tx) error {
		b, err := rollCallBuckets(tx)
		if err != nil {
			return err
		}
		var rc store.RollCall
		raw := b[0].Get([]byte(id))
		if raw == nil {
			return fmt.Errorf("%w: %s", store.ErrNoRollCall, id)
		}
		if err := getSealed(tx, bucketRollCalls, []byte(id), raw, &rc); err != nil {
			return err
		}
		if rc.Closed {
			return nil
		}
		type change struct {
			key string
			m   store.MemberState
		}
		var changes []change
		if err := forMembers(tx, id, func(key string, m store.MemberState) error {
			switch m {
			case store.MemberListed:
				changes = append(changes, change{key, store.MemberUnprompted})
			case store.MemberPrompted:
				changes = append(changes, change{key, store.MemberMissed})
			}
			return nil
		}); err != nil {
			return err
		}
		for _, ch := range changes {
			if err := putState(tx, bucketRCMembers, memberKey(id, ch.key), byte(ch.m)); err != nil {
				return err
			}
			from := store.MemberListed
			if ch.m == store.MemberMissed {
				from = store.MemberPrompted
			}
			if err := countMember(tx, id, ch.key, from, ch.m); err != nil {
				return err
			}
			if err := b[2].Delete(memberKey(ch.key, id)); err != nil {
				return err
			}
		}
		if err := b[3].Delete(append(u64(uint64(rc.Deadline.UnixNano())), id...)); err != nil {
			return err
		}
		rc.Closed = true
		return putSealed(tx, bucketRollCalls, []byte(id), rc)
	})
}
