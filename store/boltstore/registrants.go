package boltstore

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// The registrant index (issue 12 item 2). Its buckets are created on first
// write, so files written before it exist keep opening; IndexWith builds it.
var (
	// bucketRegIndex: embassy ‖ 0x00 ‖ status byte ‖ [overdue-since, 8
	// bytes big-endian Unix ns, overdue only] ‖ user key → RegistrantRow
	// JSON. A page is one cursor seek and limit reads.
	bucketRegIndex = []byte("regindex")
	// bucketRegIndexUser: user key → its current regindex key, so the old
	// entry is found without trusting that the engine's state still says
	// where it was.
	bucketRegIndexUser = []byte("regindex_user")

	keyRegIndexFP = []byte("regindex_fingerprint")
	// regIndexLayout is part of the stored fingerprint: an index whose
	// rows an earlier version filed (before "2", a covertly deleted
	// registration was never overdue) is rebuilt at the next IndexWith.
	regIndexLayout = "rows2:"
)

var statusByte = map[store.RegistrantStatus]byte{
	store.StatusOverdue: 'o', store.StatusActive: 'a', store.StatusPaused: 'p', store.StatusStopped: 's',
}

// IndexWith sets the router the registrant index files people under
// (normally dialogs.Directory.EmbassyFor) and, when fingerprint differs
// from the one the index was built with (a first start, or embassies that
// changed in the config), rebuilds the index from every registrant in one
// transaction. Call it once after Open, before serving; until then rows
// are filed under the embassy "".
func (s *Store) IndexWith(route store.Router, fingerprint string) error {
	s.route.Store(&route)
	fingerprint = regIndexLayout + fingerprint
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if string(meta.Get(keyRegIndexFP)) == fingerprint && tx.Bucket(bucketRegIndex) != nil {
			return nil
		}
		// Carry each overdue registrant's overdue-since across the rebuild.
		since := map[string]time.Time{}
		if idx := tx.Bucket(bucketRegIndex); idx != nil {
			if err := tx.Bucket(bucketRegIndexUser).ForEach(func(k, ik []byte) error {
				if t, ok := overdueSince(ik, len(k)); ok {
					since[string(k)] = t
				}
				return nil
			}); err != nil {
				return err
			}
			for _, b := range [][]byte{bucketRegIndex, bucketRegIndexUser} {
				if err := tx.DeleteBucket(b); err != nil {
					return err
				}
			}
		}
		idx, err := tx.CreateBucket(bucketRegIndex)
		if err != nil {
			return err
		}
		users, err := tx.CreateBucket(bucketRegIndexUser)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketRegistrants).ForEach(func(k, v []byte) error {
			var st dialogs.State
			if err := getSealed(tx, bucketRegistrants, k, v, &st); err != nil {
				return fmt.Errorf("registrant record %.8s… is corrupt: %w", k, err)
			}
			return putIndex(idx, users, route, string(k), st, since[string(k)])
		}); err != nil {
			return err
		}
		return meta.Put(keyRegIndexFP, []byte(fingerprint))
	})
}

func (s *Store) router() store.Router {
	if r := s.route.Load(); r != nil {
		return *r
	}
	return nil
}

// indexRegistrant keeps the registrant index and the roll-call memberships
// exact for one event, inside Process's transaction.
// pre, when not nil, is the new row sealed ahead of the commit from the
// same old entry (prepare.go): it is written as it is.
func (s *Store) indexRegistrant(tx *bolt.Tx, key string, prev dialogs.State, res dialogs.Result, events []store.Event, now time.Time,
	pre *preparedRow) error {
	idx, err := tx.CreateBucketIfNotExists(bucketRegIndex)
	if err != nil {
		return err
	}
	users, err := tx.CreateBucketIfNotExists(bucketRegIndexUser)
	if err != nil {
		return err
	}
	if pre != nil && pre.same && !res.Erase {
		// The stored entry is this one already (prepare.go checked, and
		// current that it is still what was read): nothing to rewrite.
		return trackRollCalls(tx, key, prev, res, events)
	}
	var since time.Time
	if old := users.Get([]byte(key)); old != nil {
		old = bytes.Clone(old)
		since, _ = overdueSince(old, len(key))
		if err := idx.Delete(old); err != nil {
			return err
		}
		if err := users.Delete([]byte(key)); err != nil {
			return err
		}
	}
	if since.IsZero() {
		since = now.UTC()
	}
	switch {
	case res.Erase:
	case pre != nil:
		if pre.k != nil {
			if err := idx.Put(pre.k, pre.v); err != nil {
				return err
			}
			if err := users.Put([]byte(key), pre.k); err != nil {
				return err
			}
		}
	default:
		if err := putIndex(idx, users, s.router(), key, res.State, since); err != nil {
			return err
		}
	}
	return trackRollCalls(tx, key, prev, res, events)
}

// putIndex files st (if it is listed at all) under its embassy and status.
func putIndex(idx, users *bolt.Bucket, route store.Router, key string, st dialogs.State, since time.Time) error {
	k, row, ok := indexEntry(route, key, st, since)
	if !ok {
		return nil
	}
	if err := putSealed(idx.Tx(), bucketRegIndex, k, row); err != nil {
		return err
	}
	return users.Put([]byte(key), k)
}

// indexEntry is st's index key and row (not ok: it is not listed), with
// since its overdue-since when overdue.
func indexEntry(route store.Router, key string, st dialogs.State, since time.Time) ([]byte, store.RegistrantRow, bool) {
	row, embassy, ok := rowOf(key, st, route)
	if !ok {
		return nil, row, false
	}
	k := append([]byte(embassy), 0, statusByte[row.Status])
	if row.Status == store.StatusOverdue {
		if since.IsZero() {
			_, since = overdueOf(st)
		}
		s := since.UTC()
		row.OverdueSince = &s
		k = append(k, u64(uint64(s.UnixNano()))...)
	}
	return append(k, key...), row, true
}

// overdueSince reads the overdue-since time of an index key whose user key
// has keyLen bytes.
func overdueSince(ik []byte, keyLen int) (time.Time, bool) {
	n := len(ik) - keyLen - 8
	if n < 2 || ik[n-1] != 'o' || ik[n-2] != 0 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(ik[n:n+8]))).UTC(), true
}

// overdueOf reports whether st is listed (and counted) overdue, and the due
// it is overdue from (the overdue-since of an index rebuilt without one).
// A covertly deleted registration is overdue when its hidden ladder is
// (dialogs.Hidden.Overdue): it is monitored like an active one, so it must
// go overdue after the same timers — in the embassy's list, where it is
// the person most at risk, and in the clear index and counters, where an
// active row whose ladder runs and never goes overdue would single it out.
// A registration made again over a covertly deleted one is overdue while
// either ladder is: the hidden one still escalates.
func overdueOf(st dialogs.State) (bool, time.Time) {
	h := st.Hidden
	switch {
	case h != nil && !st.Registered():
		return h.Overdue(), h.NextDue
	case st.Status != dialogs.StatusActive:
		return false, time.Time{}
	case st.Overdue:
		return true, st.NextDue
	case h.Overdue():
		return true, h.NextDue
	}
	return false, time.Time{}
}

// rowOf is the line the embassy sees for st, and the embassy it belongs
// to. Registrations not yet complete are not listed; a covertly deleted
// registration is listed under its hidden profile, active or overdue
// (overdueOf), since it is still monitored. The status is the real one,
// never the one shown.
func rowOf(key string, st dialogs.State, route store.Router) (store.RegistrantRow, string, bool) {
	p, last := st.Profile, st.LastCheckin
	overdue, _ := overdueOf(st)
	var status store.RegistrantStatus
	switch {
	case st.Hidden != nil && !st.Registered():
		p, last, status = st.Hidden.Profile, st.Hidden.LastCheckin, store.StatusActive
		if overdue {
			status = store.StatusOverdue
		}
	case overdue:
		status = store.StatusOverdue
	case st.Status == dialogs.StatusActive:
		status = store.StatusActive
	case st.Status == dialogs.StatusPaused:
		status = store.StatusPaused
	case st.Status == dialogs.StatusStopped:
		status = store.StatusStopped
	default:
		return store.RegistrantRow{}, "", false
	}
	row := store.RegistrantRow{ID: dialogs.Pseudonym(key), Key: key, Status: status, Country: p.Country,
		City: p.City, LastLocation: p.LastLocation, OpenCase: st.OpenCase}
	if !last.IsZero() {
		l := last.UTC()
		row.LastCheckin = &l
	}
	identityRow(&row, st) // identity.go
	embassy := ""
	if route != nil {
		embassy = route(p.Nationality, p.Country)
	}
	return row, embassy, true
}

// Registrants returns one page of an embassy's registrants in status:
// overdue ones longest overdue first, the others by key. It reads one
// cursor seek and at most limit+1 entries, whatever the number of
// registrants. cursor is "" for the first page or a RegistrantPage.Next.
func (s *Store) Registrants(embassy string, status store.RegistrantStatus, cursor string, limit int) (store.RegistrantPage, error) {
	var page store.RegistrantPage
	if !status.Valid() {
		return page, fmt.Errorf("store: registrants: unknown status %q (want overdue, active, paused or stopped)", status)
	}
	if limit <= 0 || limit > store.MaxPage {
		limit = store.MaxPage
	}
	after, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return page, store.ErrBadCursor
	}
	prefix := append([]byte(embassy), 0, statusByte[status])
	err = s.db.View(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketRegIndex)
		if idx == nil {
			return nil
		}
		c := idx.Cursor()
		start := append(bytes.Clone(prefix), after...)
		k, v := c.Seek(start)
		if len(after) > 0 && bytes.Equal(k, start) {
			k, v = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(page.Rows) == limit {
				page.Next = base64.RawURLEncoding.EncodeToString(bytes.TrimPrefix(start, prefix))
				return nil
			}
			var row store.RegistrantRow
			if err := getSealed(tx, bucketRegIndex, k, v, &row); err != nil {
				return fmt.Errorf("store: registrant index entry is corrupt: %w", err)
			}
			row.Key = string(k[len(prefix):])
			if status == store.StatusOverdue {
				row.Key = row.Key[8:]
			}
			page.Rows = append(page.Rows, row)
			start = bytes.Clone(k)
		}
		return nil
	})
	return page, err
}

func init() {
	allBuckets = append(allBuckets, bucketRegIndex, bucketRegIndexUser,
		bucketRollCalls, bucketRCMembers, bucketRCUser, bucketRCDue)
}
