package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// Encryption at rest (DESIGN §8, issue 13). Every value that carries
// personal data, or anything that tells a duress registrant apart, is
// sealed (package seal: AES-256-GCM, padded to size classes) with
// additional data naming its bucket and record key, so a value moved to
// another record fails to open. Keys and indexes keep in clear only what
// queries need; docs/storage.md lists each bucket's clear parts.
//
// Two kinds of data key seal values:
//
//   - each registrant's own key, wrapped by the master key in the keys
//     bucket under the registrant's user key: their record, index row,
//     send-queue and purge rows, and the body of every event about them.
//     A real /delete destroys it (crypto-shredding): whatever it sealed, in
//     the file, in freed pages and in every backup, no longer opens.
//   - the service key, wrapped in meta: cases, delivery rows, roll calls,
//     and what must outlive a deleted registrant (see eraseKeys).
//
// A sealed value is one class byte — classService or classRegistrant,
// which key opens it — and the sealed bytes; classErased values (an
// erased registrant's rows still owed, erase.go) name their key after the
// class byte. An event's body is sealed
// twice: inside, under its registrant's key; outside, under the service
// key together with the name of that registrant, so the outbox shows no
// owner. Without a master key (Options.Keyring nil: `serve
// --insecure-no-encryption`) values are stored as clear JSON, as before.

const (
	classService    = 'S'
	classRegistrant = 'R'
	classErased     = 'E'
)

var (
	// bucketKeys: user key → the registrant's data key wrapped by the
	// master key (seal.MasterKey.Wrap, owner "registrant:" ‖ user key).
	bucketKeys = []byte("keys")
	// keyServiceKey (meta): the service data key, wrapped. Its presence
	// marks an encrypted file.
	keyServiceKey = []byte("service_key")
	// keySealing (meta): set while a file of clear records is being
	// sealed (Open with a key on a file written without one).
	keySealing = []byte("sealing")
)

func init() { allBuckets = append(allBuckets, bucketKeys) }

// errShredded: the value's registrant was erased and their data key
// destroyed. Readers of many records skip such values.
var errShredded = errors.New("sealed under a data key that was destroyed (the registrant was erased)")

// Options are how a data file is opened.
type Options struct {
	// Keyring holds the master key (and, during a rotation, the old ones).
	// Nil stores values in clear and refuses an encrypted file.
	Keyring *seal.Keyring
	// AuditKey (AuditKeySize bytes), for tests and stores without a
	// keyring, is the audit trail's key itself (audit.go): reasons are
	// sealed and entries and the head are MACed with keys derived from it
	// (HKDF-SHA256). Empty, the audit key is derived from the service data
	// key when Keyring is given (seal.Key.Derive("audit v2")), so it
	// survives master-key rotations; with neither, entries keep only their
	// neutral action and the trail is only hash-chained.
	AuditKey []byte
}

// codec is an open store's sealing state, reachable from any transaction
// of its database (codecs), so helpers that see only a *bolt.Tx seal and
// open with one-line changes.
type codec struct {
	ring    *seal.Keyring
	service *seal.Key

	// unwrapped caches data keys by their wrapped bytes: an entry can
	// never be stale (the same wrapped bytes always unwrap to the same
	// key, whatever transaction read them), and a destroyed key is never
	// looked up (its wrapped bytes are gone from the file). It saves an
	// unwrap per record inside the single writer's transaction.
	mu        sync.Mutex
	unwrapped map[string]*seal.Key
}

// maxUnwrapped bounds the cache of unwrapped data keys; when full it
// starts over.
const maxUnwrapped = 1 << 14

// unwrap opens the wrapped data key w of owner, from the cache if it can.
func (c *codec) unwrap(w []byte, owner string) (*seal.Key, error) {
	c.mu.Lock()
	k, ok := c.unwrapped[string(w)]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := c.ring.Unwrap(w, owner)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.unwrapped == nil || len(c.unwrapped) >= maxUnwrapped {
		c.unwrapped = map[string]*seal.Key{}
	}
	c.unwrapped[string(w)] = k
	c.mu.Unlock()
	return k, nil
}

var codecs sync.Map // *bolt.DB → *codec

func codecOf(tx *bolt.Tx) *codec {
	if v, ok := codecs.Load(tx.DB()); ok {
		return v.(*codec)
	}
	return nil
}

func registrantOwner(key string) string { return "registrant:" + key }

// ownerOf is the registrant a record of bucket name under k belongs to
// (its data key seals the record), or "" for the service key.
func ownerOf(name, k []byte) string {
	switch {
	case bytes.Equal(name, bucketRegistrants):
		return string(k)
	case bytes.Equal(name, bucketSendq), bytes.Equal(name, bucketPurge):
		if len(k) > 9 && k[len(k)-9] == 0 {
			return string(k[:len(k)-9])
		}
	case bytes.Equal(name, bucketRegIndex):
		return regIndexUser(k)
	}
	return ""
}

// regIndexUser reads the user key at the end of a registrant index key:
// embassy ‖ 0x00 ‖ status ‖ [8 bytes when overdue] ‖ user key.
func regIndexUser(k []byte) string {
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(k) < i+3 {
		return ""
	}
	rest := k[i+2:]
	if k[i+1] == 'o' {
		if len(rest) <= 8 {
			return ""
		}
		rest = rest[8:]
	}
	return string(rest)
}

func valueAD(name, k []byte, class byte) []byte { return seal.AD(name, k, []byte{class}) }

// dataKey returns the data key of owner ("" is the service key), making
// a registrant's key if create and there is none yet.
func (c *codec) dataKey(tx *bolt.Tx, owner string, create bool) (*seal.Key, error) {
	if owner == "" {
		return c.service, nil
	}
	keys := tx.Bucket(bucketKeys)
	if w := keys.Get([]byte(owner)); w != nil {
		k, err := c.unwrap(w, registrantOwner(owner))
		if err != nil {
			return nil, fmt.Errorf("data key of %s: %w", pseudo(owner), err)
		}
		return k, nil
	}
	if !create {
		return nil, errShredded
	}
	raw := seal.NewDataKey()
	if err := keys.Put([]byte(owner), c.ring.Current.Wrap(raw, registrantOwner(owner))); err != nil {
		return nil, err
	}
	return seal.NewKey(raw)
}

// pseudo names a registrant in errors without their key.
func pseudo(key string) string {
	if len(key) > 8 {
		key = key[:8]
	}
	return key + "…"
}

// sealValue seals plain for the record k of bucket name under owner's key
// ("" the service key).
func (c *codec) sealValue(tx *bolt.Tx, name, k []byte, owner string, plain []byte, min int) ([]byte, error) {
	key, err := c.dataKey(tx, owner, true)
	if err != nil {
		return nil, err
	}
	return sealWith(key, name, k, owner, plain, min), nil
}

// sealWith is sealValue with owner's data key in hand: what a write
// prepared outside the commit (prepare.go) seals with, byte for byte the
// format sealValue stores.
func sealWith(key *seal.Key, name, k []byte, owner string, plain []byte, min int) []byte {
	class := byte(classRegistrant)
	var head []byte
	switch {
	case owner == "":
		class = classService
	case owner != ownerOf(name, k):
		class = classErased
		head = binary.AppendUvarint(nil, uint64(len(owner)))
		head = append(head, owner...)
	}
	var s []byte
	if min < 0 {
		s = key.SealFixed(plain, valueAD(name, k, class))
	} else {
		s = key.SealAtLeast(plain, valueAD(name, k, class), min)
	}
	return append(append([]byte{class}, head...), s...)
}

// storedOwner is whose key seals the stored value v of record k in bucket
// name: "" for the service key. Rewriting a row keeps it under the same key.
func storedOwner(name, k, v []byte) string {
	owner, _, _ := splitValue(name, k, v)
	return owner
}

// splitValue reads a stored sealed value: its owner ("" the service key)
// and the sealed bytes.
func splitValue(name, k, v []byte) (owner string, sealed []byte, ok bool) {
	if len(v) < 1 {
		return "", nil, false
	}
	switch v[0] {
	case classService:
		return "", v[1:], true
	case classRegistrant:
		owner = ownerOf(name, k)
		return owner, v[1:], owner != ""
	case classErased:
		n, w := binary.Uvarint(v[1:])
		if w <= 0 || uint64(len(v)-1-w) < n || n == 0 {
			return "", nil, false
		}
		return string(v[1+w : 1+w+int(n)]), v[1+w+int(n):], true
	}
	return "", nil, false
}

// openValue opens the stored value v of record k in bucket name.
func (c *codec) openValue(tx *bolt.Tx, name, k, v []byte) ([]byte, error) {
	owner, sealed, ok := splitValue(name, k, v)
	if !ok || !seal.Sealed(sealed) {
		return nil, fmt.Errorf("%s record is not sealed (written without encryption, or altered)", name)
	}
	key, err := c.dataKey(tx, owner, false)
	if err != nil {
		return nil, err
	}
	plain, err := key.Open(sealed, valueAD(name, k, v[0]))
	if err != nil {
		return nil, fmt.Errorf("%s record: %w", name, err)
	}
	return plain, nil
}

// putSealed stores v as JSON under k in bucket name, sealed under the key
// of the record's owner (ownerOf). It replaces putJSON wherever a value
// carries personal data or a detail that could tell duress apart.
func putSealed(tx *bolt.Tx, name, k []byte, v any) error {
	return putSealedAs(tx, name, k, v, ownerOf(name, k))
}

// putSealedAs is putSealed with the owner given: "" seals a registrant's
// record under the service key (what must outlive their erasure).
func putSealedAs(tx *bolt.Tx, name, k []byte, v any, owner string) error {
	enc, min, err := encodeValue(v)
	if err != nil {
		return err
	}
	return putPadded(tx, name, k, enc, owner, min)
}

// encodeValue is v's JSON and the size it is padded to at least
// (reservedSize): what putSealedAs seals, and prepare.go ahead of the commit.
func encodeValue(v any) ([]byte, int, error) {
	enc, err := json.Marshal(v)
	if err != nil {
		return nil, 0, err
	}
	return enc, reservedSize(v, len(enc)), nil
}

// duressReserve is room every registrant record is stored with for the
// fields an escalation or a duress signal adds — the do_not_contact flag,
// the shown status and its next due time, the open case — so their
// presence does not move a record to a larger size class (at most about
// 125 bytes of JSON with all of them).
const duressReserve = 160

// rowReserve is the same room in a registrant index row, whose only such
// field is the open case (`"open_case":"case_0000001",`).
const rowReserve = 32

// eventReserve is the room every event body is stored with for its type,
// severity, case and details (an SOS's, a duress signal's, a missed
// check-in's): details longer than that (a long message) can still move
// it to a larger class.
const eventReserve = 512

// reservedSize is the length v, whose JSON is n bytes long, is stored as
// if it had: for a registrant record or index row, its length without
// those fields plus duressReserve (rowReserve); for an event, its length without its
// type, severity, case and details plus eventReserve; 0 for anything else.
func reservedSize(v any, n int) int {
	reserve := duressReserve
	var skel any
	switch x := v.(type) {
	case *dialogs.State:
		// The fields' own JSON, not the record again: this runs in the
		// single writer's transaction for every event.
		skel = struct {
			DoNotContact bool           `json:"do_not_contact,omitempty"`
			Shown        dialogs.Status `json:"shown,omitempty"`
			ShownNextDue time.Time      `json:"shown_next_due,omitzero"`
			OpenCase     string         `json:"open_case,omitempty"`
		}{x.DoNotContact, x.Shown, x.ShownNextDue, x.OpenCase}
	case dialogs.State:
		return reservedSize(&x, n)
	case store.RegistrantRow:
		reserve = rowReserve
		skel = struct {
			OpenCase string `json:"open_case,omitempty"`
		}{x.OpenCase}
	case store.Event:
		// Every kind of event about a registrant is stored at one size:
		// the type, its details and its case do not show.
		skel = struct {
			Type         string         `json:"type"`
			CaseID       string         `json:"case_id,omitempty"`
			CaseSeq      int            `json:"case_seq,omitempty"`
			Severity     string         `json:"severity"`
			DoNotContact bool           `json:"do_not_contact"`
			Details      map[string]any `json:"details"`
		}{string(x.Type), x.CaseID, x.CaseSeq, string(x.Severity), x.DoNotContact, x.Details}
		reserve = eventReserve
	default:
		return 0
	}
	extra, err := json.Marshal(skel)
	if err != nil {
		return 0
	}
	// In the record each present field adds its JSON and one comma: the
	// small object's length less its braces, plus one.
	if len(extra) > 2 {
		n -= len(extra) - 1
	}
	return n + reserve
}

func putBytes(tx *bolt.Tx, name, k, plain []byte, owner string, fixed bool) error {
	if fixed {
		return putPadded(tx, name, k, plain, owner, -1)
	}
	return putPadded(tx, name, k, plain, owner, 0)
}

// putPadded seals plain under owner's key padded to the size class of at
// least min bytes (-1: no padding at all, for fixed-length values).
func putPadded(tx *bolt.Tx, name, k, plain []byte, owner string, min int) error {
	b := tx.Bucket(name)
	if b == nil {
		return fmt.Errorf("bucket %s is missing", name)
	}
	c := codecOf(tx)
	if c == nil {
		return b.Put(k, plain)
	}
	s, err := c.sealValue(tx, name, k, owner, plain, min)
	if err != nil {
		return err
	}
	return b.Put(k, s)
}

// plainOf is the clear bytes of the stored value v of record k in bucket
// name (v itself when the file is not encrypted).
func plainOf(tx *bolt.Tx, name, k, v []byte) ([]byte, error) {
	c := codecOf(tx)
	if c == nil {
		return v, nil
	}
	return c.openValue(tx, name, k, v)
}

// getSealed decodes the stored value v (read by the caller, by Get or a
// cursor) of record k in bucket name into dst.
func getSealed(tx *bolt.Tx, name, k, v []byte, dst any) error {
	plain, err := plainOf(tx, name, k, v)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, dst)
}

// putEvent writes an outbox event about owner (a user key; "" for events
// about no registrant or that must outlive one).
func putEvent(tx *bolt.Tx, seq uint64, owner string, ev store.Event) error {
	enc, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	k := u64(seq)
	c := codecOf(tx)
	if c == nil {
		return tx.Bucket(bucketOutbox).Put(k, enc)
	}
	inner := enc
	if owner != "" {
		key, err := c.dataKey(tx, owner, true)
		if err != nil {
			return err
		}
		inner = key.SealFixed(enc, seal.AD(bucketOutbox, k, []byte("body")))
	}
	// The outer layer also keeps what the event indexes are keyed by (no
	// type, no registrant): Prune can unindex an erased registrant's
	// event whose body no longer opens.
	meta, err := json.Marshal(indexFields{ID: ev.ID, EmbassyID: ev.EmbassyID, CaseID: ev.CaseID})
	if err != nil {
		return err
	}
	payload := binary.AppendUvarint(nil, uint64(len(owner)))
	payload = append(payload, owner...)
	payload = binary.AppendUvarint(payload, uint64(len(meta)))
	payload = append(append(payload, meta...), inner...)
	return putPadded(tx, bucketOutbox, k, payload, "", len(payload)-len(enc)+reservedSize(ev, len(enc)))
}

// retireEvent rewrites the outer layer of the stored outbox value v under
// k to name shreddedOwner, keeping its index fields and its body (sealed
// under a key being destroyed) as they are.
func retireEvent(tx *bolt.Tx, k, v []byte) error {
	c := codecOf(tx)
	if c == nil {
		return nil
	}
	_, meta, inner, err := outerOf(c, tx, k, v)
	if err != nil {
		return err
	}
	payload := binary.AppendUvarint(nil, uint64(len(shreddedOwner)))
	payload = append(payload, shreddedOwner...)
	payload = binary.AppendUvarint(payload, uint64(len(meta)))
	payload = append(append(payload, meta...), inner...)
	return putPadded(tx, bucketOutbox, k, payload, "", len(payload))
}

// eventOf opens the stored outbox value v under k: the event's JSON and
// the registrant it is sealed for ("" when under the service key). A body
// whose registrant was erased is errShredded.
func eventOf(tx *bolt.Tx, k, v []byte) (body []byte, owner string, err error) {
	c := codecOf(tx)
	if c == nil {
		return v, "", nil
	}
	owner, _, inner, err := outerOf(c, tx, k, v)
	if err != nil {
		return nil, "", err
	}
	if owner == "" {
		return inner, "", nil
	}
	key, err := c.dataKey(tx, owner, false)
	if err != nil {
		return nil, owner, err
	}
	body, err = key.Open(inner, seal.AD(bucketOutbox, k, []byte("body")))
	if err != nil {
		return nil, owner, fmt.Errorf("outbox event %d: %w", binary.BigEndian.Uint64(k), err)
	}
	return body, owner, nil
}

// indexFields are what the event indexes are keyed by, kept in an
// event's outer layer.
type indexFields struct {
	ID        string `json:"id"`
	EmbassyID string `json:"embassy_id,omitempty"`
	CaseID    string `json:"case_id,omitempty"`
}

// outerOf opens an outbox value's outer layer: the registrant the body is
// sealed for, the index fields, and the body (sealed when owner is set).
func outerOf(c *codec, tx *bolt.Tx, k, v []byte) (owner string, meta, inner []byte, err error) {
	payload, err := c.openValue(tx, bucketOutbox, k, v)
	if err != nil {
		return "", nil, nil, err
	}
	bad := fmt.Errorf("outbox event %d: malformed sealed body", binary.BigEndian.Uint64(k))
	n, w := binary.Uvarint(payload)
	if w <= 0 || uint64(len(payload)-w) < n {
		return "", nil, nil, bad
	}
	owner, payload = string(payload[w:w+int(n)]), payload[w+int(n):]
	n, w = binary.Uvarint(payload)
	if w <= 0 || uint64(len(payload)-w) < n {
		return "", nil, nil, bad
	}
	return owner, payload[w : w+int(n)], payload[w+int(n):], nil
}

// eventIndexFields returns the event stored at k with at least the
// fields its index entries are keyed by: the whole event when it opens,
// the index fields alone (type empty) when its registrant was erased.
func eventIndexFields(tx *bolt.Tx, k, v []byte) (store.Event, error) {
	var ev store.Event
	err := getEvent(tx, k, v, &ev)
	if !errors.Is(err, errShredded) {
		return ev, err
	}
	_, meta, _, err := outerOf(codecOf(tx), tx, k, v)
	if err != nil {
		return ev, err
	}
	var f indexFields
	if err := json.Unmarshal(meta, &f); err != nil {
		return ev, err
	}
	return store.Event{ID: f.ID, EmbassyID: f.EmbassyID, CaseID: f.CaseID}, nil
}

// getEvent decodes the stored outbox value v under k.
func getEvent(tx *bolt.Tx, k, v []byte, ev *store.Event) error {
	body, _, err := eventOf(tx, k, v)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, ev)
}

// putState writes a one-byte state (a roll-call member's) sealed, without
// padding: every such value has the same length.
func putState(tx *bolt.Tx, name, k []byte, b byte) error {
	return putBytes(tx, name, k, []byte{b}, "", true)
}

// getState reads a one-byte state written by putState.
func getState(tx *bolt.Tx, name, k, v []byte) (byte, bool, error) {
	if v == nil {
		return 0, false, nil
	}
	p, err := plainOf(tx, name, k, v)
	if err != nil {
		return 0, false, err
	}
	if len(p) != 1 {
		return 0, false, fmt.Errorf("%s: a state entry is corrupt", name)
	}
	return p[0], true, nil
}

const serviceOwner = "service"

// initKeys unwraps the service key of an encrypted file, or makes one and
// seals every clear record when a file without one is opened with a key
// (a new file, or one written before encryption or without it). It runs
// in Open, before anything else uses the store.
func (s *Store) initKeys(ring *seal.Keyring) error {
	var wrapped []byte
	sealing := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		wrapped = bytes.Clone(meta.Get(keyServiceKey))
		sealing = meta.Get(keySealing) != nil
		return nil
	}); err != nil {
		return err
	}
	switch {
	case wrapped == nil && ring == nil:
		return nil // a file in clear, opened in clear
	case ring == nil:
		id, _ := seal.WrappedBy(wrapped)
		return &store.FileError{Kind: store.ErrNeedKey, Reason: fmt.Sprintf("its records are sealed with master key %s: "+
			"give that key (CHECKIN_MASTER_KEY or storage.master_key_file)", id)}
	case ring.Current == nil:
		return errors.New("store: a keyring without a current master key")
	}
	c := &codec{ring: ring}
	if wrapped != nil {
		var err error
		if c, err = unsealWith(wrapped, ring); err != nil {
			return err
		}
	} else {
		raw := seal.NewDataKey()
		k, err := seal.NewKey(raw)
		if err != nil {
			return err
		}
		c.service = k
		if err := s.db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if err := meta.Put(keySealing, []byte{1}); err != nil {
				return err
			}
			return meta.Put(keyServiceKey, ring.Current.Wrap(raw, serviceOwner))
		}); err != nil {
			return err
		}
		sealing = true
	}
	codecs.Store(s.db, c)
	if sealing {
		if err := s.sealAll(); err != nil {
			return fmt.Errorf("sealing the records written in clear: %w", err)
		}
	}
	return nil
}

// unsealWith makes the codec of a file whose wrapped service key is
// wrapped, or says which master key the file expects.
func unsealWith(wrapped []byte, ring *seal.Keyring) (*codec, error) {
	k, err := ring.Unwrap(wrapped, serviceOwner)
	if err != nil {
		id, _ := seal.WrappedBy(wrapped)
		return nil, &store.FileError{Kind: store.ErrWrongKey, Reason: fmt.Sprintf("the file expects master key %s; the key given is %s "+
			"(a wrong CHECKIN_MASTER_KEY or key file; during a rotation give the old key too)", id, ring.Current.ID())}
	}
	return &codec{ring: ring, service: k}, nil
}

// sealedBuckets are the buckets whose values are sealed, and how.
var sealedBuckets = []struct {
	name []byte
	kind int // sealJSON, sealEvent or sealState
}{
	{bucketRegistrants, sealJSON}, {bucketSendq, sealJSON}, {bucketPurge, sealJSON}, {bucketRegIndex, sealJSON},
	{bucketCases, sealJSON}, {bucketPending, sealJSON}, {bucketDelivered, sealJSON}, {bucketRollCalls, sealJSON},
	{bucketOutbox, sealEvent}, {bucketRCMembers, sealState}, {bucketIDLinks, sealJSON}, {bucketIDFlows, sealJSON},
}

const (
	sealJSON = iota
	sealEvent
	sealState
)

// sealBatch bounds how many records one transaction of sealAll or
// RotateMasterKey rewrites, so neither holds the writer for long.
var sealBatch = 1000 // a variable only so tests can make batches small

// sealAll seals every clear value of the sealed buckets, sealBatch per
// transaction; values sealed already (a sealing interrupted by a crash)
// are left alone. Events recorded in clear are sealed under the service
// key: which registrant they were about is not recorded outside them.
func (s *Store) sealAll() error {
	for _, sb := range sealedBuckets {
		var from []byte
		for done := false; !done; {
			err := s.db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(sb.name)
				if b == nil {
					done = true
					return nil
				}
				type kv struct{ k, v []byte }
				var todo []kv
				c := b.Cursor()
				k, v := c.Seek(from)
				if from != nil && bytes.Equal(k, from) {
					k, v = c.Next()
				}
				n := 0
				for ; k != nil && n < sealBatch; k, v = c.Next() {
					n++
					from = bytes.Clone(k)
					if _, sealed, ok := splitValue(sb.name, k, v); v == nil || (ok && seal.Sealed(sealed)) {
						continue // a nested bucket, or sealed already
					}
					todo = append(todo, kv{bytes.Clone(k), bytes.Clone(v)})
				}
				done = k == nil
				for _, e := range todo {
					var err error
					switch sb.kind {
					case sealEvent:
						var ev store.Event
						if err = json.Unmarshal(e.v, &ev); err == nil {
							err = putEvent(tx, binary.BigEndian.Uint64(e.k), "", ev)
						}
					case sealState:
						if len(e.v) != 1 {
							return fmt.Errorf("%s: a state entry is corrupt", sb.name)
						}
						err = putState(tx, sb.name, e.k, e.v[0])
					default:
						err = putBytes(tx, sb.name, e.k, e.v, ownerOf(sb.name, e.k), false)
					}
					if err != nil {
						return fmt.Errorf("%s: %w", sb.name, err)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keySealing) })
}

// Encrypted reports whether the store seals its records (it was opened
// with a master key).
func (s *Store) Encrypted() bool { _, ok := codecs.Load(s.db); return ok }

// MasterKeyIDs returns the ids of the master keys wrapping the file's data
// keys, with how many each wraps: one id, except during a rotation.
func (s *Store) MasterKeyIDs() (map[string]int, error) {
	out := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if w := tx.Bucket(bucketMeta).Get(keyServiceKey); w != nil {
			id, _ := seal.WrappedBy(w)
			out[id]++
		}
		return tx.Bucket(bucketKeys).ForEach(func(_, w []byte) error {
			id, _ := seal.WrappedBy(w)
			out[id]++
			return nil
		})
	})
	return out, err
}

// RotateMasterKey re-wraps every data key not wrapped by the keyring's
// current master key under it, sealBatch keys per write, through the
// single writer: citizens' writes go on between batches, and a data key
// made meanwhile is wrapped by the current key already. Records are not
// re-sealed (the data keys do not change). The old key is needed until it
// returns; it reports how many keys it re-wrapped.
func (s *Store) RotateMasterKey() (int, error) {
	cv, _ := codecs.Load(s.db)
	if cv == nil {
		return 0, errors.New("store: rotate: the store was opened without a master key")
	}
	ring := cv.(*codec).ring
	cur := ring.Current.ID()
	total := 0
	err := s.update(func(tx *bolt.Tx) error {
		total = 0
		meta := tx.Bucket(bucketMeta)
		w := meta.Get(keyServiceKey)
		if id, _ := seal.WrappedBy(w); id == cur {
			return nil
		}
		nw, err := ring.Rewrap(w, serviceOwner)
		if err != nil {
			return fmt.Errorf("service key: %w", err)
		}
		total = 1
		return meta.Put(keyServiceKey, nw)
	})
	if err != nil {
		return 0, fmt.Errorf("store: rotate: %w", err)
	}
	var from []byte
	for done := false; !done; {
		start := from
		var next []byte
		end, n := false, 0
		err := s.update(func(tx *bolt.Tx) error {
			keys := tx.Bucket(bucketKeys)
			c := keys.Cursor()
			k, w := c.Seek(start)
			if start != nil && bytes.Equal(k, start) {
				k, w = c.Next()
			}
			type kv struct{ k, w []byte }
			var todo []kv
			next = start
			for seen := 0; k != nil && seen < sealBatch; k, w = c.Next() {
				seen++
				next = bytes.Clone(k)
				if id, _ := seal.WrappedBy(w); id == cur {
					continue
				}
				nw, err := ring.Rewrap(w, registrantOwner(string(k)))
				if err != nil {
					return fmt.Errorf("data key of %s: %w", pseudo(string(k)), err)
				}
				todo = append(todo, kv{bytes.Clone(k), nw})
			}
			for _, e := range todo {
				if err := keys.Put(e.k, e.w); err != nil {
					return err
				}
			}
			end, n = k == nil, len(todo)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("store: rotate: %w", err)
		}
		from, done, total = next, end, total+n
	}
	return total, nil
}

// getEventAs decodes the stored outbox value v under k into any shape
// (a few fields of the event).
func getEventAs(tx *bolt.Tx, k, v []byte, dst any) error {
	body, _, err := eventOf(tx, k, v)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, dst)
}
