package boltstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// The audit trail (DESIGN §8; issue 13 items 2, 4 and 5).
//
// Entries are hash-chained (each one's hash covers the previous one's) and,
// with an audit key, each carries an HMAC-SHA256 of its hash, and the head (the
// last seq and hash, in the meta bucket) carries one too: someone holding
// the file but not the key can neither edit an entry and re-chain the rest
// nor cut entries off the end and move the head back. What the key cannot
// stop — replacing the whole file by an older copy — the head logged at
// each start and exported as metrics catches (`audit verify --expect-head`).
//
// An entry's clear part is neutral (store.AuditRegistrantUpdated …): what
// changed, never why. The reason — the engine's actions, the escalations
// raised, a case's transition, the API token's label — is sealed under the
// audit key (AES-256-GCM, at one fixed size, bound to the entry's seq), or
// written nowhere when the store has no key: a key kept in the
// data file would protect nothing. Process writes one entry per event that
// the engine recorded an action for, and never one for an escalation, so a
// duress check-in writes exactly what a plain check-in writes.
//
// Entries are written in the compact form (audit_compact.go: a fixed
// binary layout of 147 bytes, the previous hash not stored); files of older
// versions hold JSON entries (the previous hash stored, the reason padded
// to a multiple of auditPad), which verify as they always did, and a trail
// may mix both: each entry's first byte says its form.
//
// CompactAudit bounds the trail's growth: entries older than the retention
// are replaced by one checkpoint carrying the last removed entry's seq,
// hash and MAC, signed itself, from which the chain still verifies.
//
// The audit key is derived from the service data key (HKDF-SHA256, info
// "checkinbot audit v2"), which is random, kept wrapped in meta and only
// re-wrapped by a master-key rotation: the trail verifies with whichever
// master key unwraps the service key, before and after a rotation alike.
// MACs made with it are tagged macV2. Untagged MACs are the legacy ones, of
// files written before v2, whose audit key was derived from the master key
// (seal.MasterKey.Derive("audit")): they are checked when that master key
// is given (CHECKIN_MASTER_KEY or _OLD); without it they are counted as
// unchecked, and stay covered by the hash chain up to the first entry or
// head signed with a key that is given (each hash includes the previous
// one, and a MAC covers its entry's hash), so an edit among them is still
// caught — only not named. A legacy MAC after a v2 one is refused: once a
// file is on v2 it never goes back. Open re-signs a legacy head under v2
// at once (resignAuditHead), so a rotation right after an upgrade leaves a
// trail the new key alone verifies.

var (
	// keyAuditHeadMAC is the signed head record, beside keyAuditHead (the
	// last hash, as before keys existed): the last seq (8 bytes), the
	// first seq (8 bytes: 1, or the checkpoint's after compaction) and,
	// with a key, the MAC of both and the hash (hex). The first seq is in
	// it so entries cut off at the start behind a forged checkpoint show.
	keyAuditHeadMAC = []byte("audit_head_mac")
)

// AuditKeySize is the size of Options.AuditKey.
const AuditKeySize = 32

// auditPurpose is the HKDF purpose the audit key is derived for from the
// service data key (seal.Key.Derive): "checkinbot audit v2".
const auditPurpose = "audit v2"

// legacyAuditPurpose is the pre-v2 derivation from the master key
// (seal.MasterKey.Derive): "checkinbot audit".
const legacyAuditPurpose = "audit"

// macV2 starts every MAC made with a v2 audit key (derived from the
// service key, or Options.AuditKey); legacy MACs are bare hex.
const macV2 = "v2:"

// auditPad is the size class of a JSON entry's sealed reason (the compact
// form seals at one size, auditReasonSize): a reason naming a duress
// escalation seals to the same length as one naming nothing.
const auditPad = 256

// compactBatch bounds the entries one compaction transaction removes, so
// writers never wait behind a long delete.
const compactBatch = 1000

// MAC domains: an entry's MAC cannot pass for the head's or a checkpoint's.
const (
	macEntry      = "entry"
	macHead       = "head"
	macCheckpoint = "checkpoint"
)

// Options.AuditKey (sealing.go, where the one Options type is) keys the
// audit trail; OpenWith (open.go) derives its keys with newAuditKeys.

// auditKeys are the two keys derived from an audit key, and the tag its
// MACs start with (macV2, or "" for a legacy key).
type auditKeys struct {
	aead cipher.AEAD
	mac  []byte
	tag  string
}

// newAuditKeys makes the v2 keys of an audit key; nil for an empty key.
func newAuditKeys(key []byte) (*auditKeys, error) {
	k, err := deriveAuditKeys(key)
	if k != nil {
		k.tag = macV2
	}
	return k, err
}

// legacyAuditKeys are the pre-v2 audit keys of every master key of ring
// (the current one first): they check untagged MACs and open the reasons
// sealed with them.
func legacyAuditKeys(ring *seal.Keyring) []*auditKeys {
	if ring == nil {
		return nil
	}
	var out []*auditKeys
	for _, m := range append([]*seal.MasterKey{ring.Current}, ring.Old...) {
		if m == nil {
			continue
		}
		if k, err := deriveAuditKeys(m.Derive(legacyAuditPurpose)); err == nil && k != nil {
			out = append(out, k)
		}
	}
	return out
}

// serviceAuditKeys are the v2 audit keys of an open codec's service key.
func serviceAuditKeys(c *codec) (*auditKeys, error) {
	if c == nil || c.service == nil {
		return nil, nil
	}
	return newAuditKeys(c.service.Derive(auditPurpose))
}

func deriveAuditKeys(key []byte) (*auditKeys, error) {
	if len(key) == 0 {
		return nil, nil
	}
	if len(key) != AuditKeySize {
		return nil, fmt.Errorf("boltstore: the audit key is %d bytes, not %d", len(key), AuditKeySize)
	}
	sealKey, err := hkdf.Key(sha256.New, key, nil, "checkinbot audit seal v1", 32)
	if err != nil {
		return nil, err
	}
	macKey, err := hkdf.Key(sha256.New, key, nil, "checkinbot audit mac v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &auditKeys{aead: aead, mac: macKey}, nil
}

// sum is the MAC of (domain, hash, seqs) in hex, after the key's tag.
func (k *auditKeys) sum(domain, hash string, seqs ...uint64) string {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(hash))
	for _, n := range seqs {
		m.Write(u64(n))
	}
	return k.tag + hex.EncodeToString(m.Sum(nil))
}

// valid reports whether mac is the MAC of (domain, hash, seqs), in full
// or in the short form of a compact entry (audit_compact.go).
func (k *auditKeys) valid(mac, domain, hash string, seqs ...uint64) bool {
	if len(mac) == len(k.tag)+2*auditMACShort {
		return k.validShort(mac, domain, hash, seqs...)
	}
	return hmac.Equal([]byte(mac), []byte(k.sum(domain, hash, seqs...)))
}

// auditRing is the keys a verification checks MACs with: the v2 key (nil
// when the file has no service key, or its master key is not given) and
// the legacy keys of the master keys given.
type auditRing struct {
	cur    *auditKeys
	legacy []*auditKeys
}

// newAuditRing is nil when there is no key at all: only the hash chain is
// checked then.
func newAuditRing(cur *auditKeys, legacy []*auditKeys) *auditRing {
	if cur == nil && len(legacy) == 0 {
		return nil
	}
	return &auditRing{cur: cur, legacy: legacy}
}

// macCheck is what one MAC's check found.
type macCheck int

const (
	macOK        macCheck = iota // a v2 MAC, valid
	macLegacy                    // a legacy MAC, valid under a master key given
	macUnchecked                 // a legacy MAC no key given checks
	macBad                       // a v2 MAC that does not match
)

// check classifies mac as the MAC of (domain, hash, seqs).
func (r *auditRing) check(mac, domain, hash string, seqs ...uint64) macCheck {
	if strings.HasPrefix(mac, macV2) {
		if r.cur != nil && r.cur.valid(mac, domain, hash, seqs...) {
			return macOK
		}
		return macBad
	}
	for _, k := range r.legacy {
		if k.valid(mac, domain, hash, seqs...) {
			return macLegacy
		}
	}
	return macUnchecked
}

// open opens a sealed reason with the key its entry's MAC names: the v2
// key for a v2 MAC, else whichever legacy key opens it. ok is false for a
// legacy reason no key given opens (its master key is not given).
func (r *auditRing) open(e auditRec) (reason string, ok bool, err error) {
	if r == nil || len(e.Sealed) == 0 {
		return "", false, nil
	}
	if e.compact || strings.HasPrefix(e.MAC, macV2) || e.MAC == "" && r.cur != nil {
		if r.cur == nil {
			return "", false, errors.New("the sealed reason does not open with this key")
		}
		if e.compact {
			reason, err = r.cur.openCompact(e.Seq, e.Sealed)
		} else {
			reason, err = r.cur.open(e.Seq, e.Sealed)
		}
		return reason, err == nil, err
	}
	for _, k := range r.legacy {
		if reason, err := k.open(e.Seq, e.Sealed); err == nil {
			return reason, true, nil
		}
	}
	return "", false, nil
}

// auditAD binds a sealed reason to its entry.
func auditAD(seq uint64) []byte { return append([]byte("checkinbot audit reason\x00"), u64(seq)...) }

// seal pads the reason to a multiple of auditPad (a 2-byte length first)
// and seals it: nonce ‖ ciphertext.
func (k *auditKeys) seal(seq uint64, reason string) []byte {
	if len(reason) > 0xffff-2 {
		reason = reason[:0xffff-2]
	}
	n := (2 + len(reason) + auditPad - 1) / auditPad * auditPad
	plain := make([]byte, n)
	binary.BigEndian.PutUint16(plain, uint16(len(reason)))
	copy(plain[2:], reason)
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plain, auditAD(seq))
}

// open is seal's inverse.
func (k *auditKeys) open(seq uint64, sealed []byte) (string, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < ns {
		return "", errors.New("sealed reason too short")
	}
	plain, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], auditAD(seq))
	if err != nil || len(plain) < 2 || int(binary.BigEndian.Uint16(plain)) > len(plain)-2 {
		return "", errors.New("the sealed reason does not open with this key")
	}
	return string(plain[2 : 2+binary.BigEndian.Uint16(plain)]), nil
}

// processReason is the sealed reason of one processed event: the engine's
// actions, then each escalation's type, id and case.
func processReason(actions []string, events []store.Event) string {
	var b strings.Builder
	b.WriteString(strings.Join(actions, " "))
	for _, e := range events {
		fmt.Fprintf(&b, "; %s %s", e.Type, e.ID)
		if e.CaseID != "" {
			fmt.Fprintf(&b, " %s", e.CaseID)
		}
	}
	return b.String()
}

// appendAudit adds one hash-chained entry with a neutral action (one of
// store's Audit* constants) and its reason, sealed when the store has an
// audit key and dropped otherwise. It must not depend on anything a
// duress path changes except through reason.
func (s *Store) appendAudit(tx *bolt.Tx, now time.Time, subject, action, reason string) error {
	audit, meta := appendBucket(tx, bucketAudit), tx.Bucket(bucketMeta)
	seq, err := audit.NextSequence()
	if err != nil {
		return err
	}
	e := store.AuditEntry{Seq: seq, At: now.UTC(), Subject: subject, Action: action, Prev: string(meta.Get(keyAuditHead))}
	k := s.audit
	if header, ok := compactHeader(e, k != nil); ok && auditCompactWrites && (k == nil || k.tag == macV2) {
		// The compact form (audit_compact.go): the same chain and MAC,
		// the reason sealed at one fixed size. (A legacy key, which only
		// tests still write with, writes JSON as it always did.)
		if k != nil {
			e.Sealed = k.sealCompact(seq, reason)
		}
		e.Hash = compactHash(seq, e.Prev, header, e.Sealed)
		if k != nil {
			e.MAC = k.shortMAC(macEntry, e.Hash, seq)
		}
		if err := audit.Put(u64(seq), compactValue(header, e.Hash, e.MAC, e.Sealed)); err != nil {
			return err
		}
	} else {
		if k != nil {
			e.Sealed = k.seal(seq, reason)
		}
		e.Hash = auditHash(e)
		if k != nil {
			e.MAC = k.sum(macEntry, e.Hash, seq)
		}
		if err := putJSON(audit, u64(seq), e); err != nil {
			return err
		}
	}
	if err := meta.Put(keyAuditHead, []byte(e.Hash)); err != nil {
		return err
	}
	return s.putAuditHeadMAC(tx, seq, e.Hash)
}

// putAuditHeadMAC writes the head record (keyAuditHeadMAC).
func (s *Store) putAuditHeadMAC(tx *bolt.Tx, last uint64, hash string) error {
	first := last
	if k, _ := tx.Bucket(bucketAudit).Cursor().First(); len(k) == 8 {
		first = binary.BigEndian.Uint64(k)
	}
	v := append(u64(last), u64(first)...)
	if s.audit != nil {
		v = append(v, s.audit.sum(macHead, hash, last, first)...)
	}
	return tx.Bucket(bucketMeta).Put(keyAuditHeadMAC, v)
}

func auditHash(e store.AuditEntry) string {
	e.Hash, e.MAC, e.Checkpoint = "", "", ""
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// VerifyAudit walks the audit chain and reports the first broken link
// (a *store.AuditError), checking MACs when the store has an audit key.
func (s *Store) VerifyAudit() (entries int, err error) {
	var rep store.AuditReport
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		rep, err = verifyAudit(tx, newAuditRing(s.audit, s.auditLegacy), nil)
		return err
	})
	return rep.Entries, err
}

// AuditHead returns the trail's end (zero for an empty trail): what serve
// logs at start and exports as metrics.
func (s *Store) AuditHead() (store.AuditHead, error) {
	var h store.AuditHead
	err := s.db.View(func(tx *bolt.Tx) error {
		h = auditHeadOf(tx)
		return nil
	})
	return h, err
}

// auditHeadOf reads the head: the last entry's seq and the recorded hash.
func auditHeadOf(tx *bolt.Tx) store.AuditHead {
	h := store.AuditHead{Hash: string(tx.Bucket(bucketMeta).Get(keyAuditHead))}
	if k, _ := tx.Bucket(bucketAudit).Cursor().Last(); len(k) == 8 {
		h.Seq = binary.BigEndian.Uint64(k)
	}
	return h
}

// VerifyAuditFile verifies the audit trail of the data file at path
// offline and read-only (a stopped service's file, or a backup): the hash
// chain, and with a key every MAC; with expect (a head noted from serve's
// log or metrics) that the trail still reaches it unchanged. The key is
// opt's, as the store was opened with: opt.Keyring unwraps the file's
// service key, from which the audit key is derived (so a rotated master
// key verifies the entries written before the rotation), and its master
// keys check legacy MACs; opt.AuditKey, when set, is the audit key itself.
// A broken trail is a *store.AuditError naming the first bad entry; a file
// that cannot be read, or a master key that does not open it
// (store.ErrWrongKey, naming the key the file expects), is a
// *store.FileError.
func VerifyAuditFile(path string, opt Options, expect *store.AuditHead) (store.AuditReport, error) {
	cur, err := newAuditKeys(opt.AuditKey)
	if err != nil {
		return store.AuditReport{}, err
	}
	db, probs, err := examine(path, false)
	if err != nil {
		return store.AuditReport{}, err
	}
	if len(probs) > 0 {
		return store.AuditReport{}, &store.FileError{Path: path, Kind: store.ErrCorrupt, Reason: probs[0] +
			"; `checkinbot check` lists every problem; verify a backup instead"}
	}
	defer db.Close()
	var rep store.AuditReport
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketAudit) == nil {
				return &store.FileError{Path: path, Kind: store.ErrCorrupt, Reason: "no audit bucket"}
			}
			cur := cur
			if cur == nil && opt.Keyring != nil && opt.Keyring.Current != nil {
				if w := tx.Bucket(bucketMeta).Get(keyServiceKey); w != nil {
					c, err := unsealWith(bytes.Clone(w), opt.Keyring)
					if err != nil {
						return classify(path, err, "unseal")
					}
					if cur, err = serviceAuditKeys(c); err != nil {
						return err
					}
				}
			}
			var err error
			rep, err = verifyAudit(tx, newAuditRing(cur, legacyAuditKeys(opt.Keyring)), expect)
			return err
		})
	})
	return rep, err
}

// verifyAudit walks the trail in key order and returns the first problem.
func verifyAudit(tx *bolt.Tx, k *auditRing, expect *store.AuditHead) (store.AuditReport, error) {
	rep := store.AuditReport{Keyed: k != nil}
	bad := func(seq uint64, p store.AuditProblem, format string, args ...any) (store.AuditReport, error) {
		return rep, &store.AuditError{Seq: seq, Problem: p, Detail: fmt.Sprintf(format, args...)}
	}
	var (
		prev     string // hash of the previous entry
		last     uint64 // its seq
		firstPos uint64 // the first entry's seq
		signed   bool   // a signed entry was seen: every later one must be
		v2       bool   // a v2-signed entry was seen: no legacy MAC may follow
		legacy   bool   // a legacy MAC was checked: no unchecked one may follow
		expected string // the hash at expect.Seq, once reached
	)
	c := tx.Bucket(bucketAudit).Cursor()
	for key, v := c.First(); key != nil; key, v = c.Next() {
		if len(key) != 8 {
			return bad(last+1, store.AuditUnreadable, "a key of %d bytes in the audit bucket", len(key))
		}
		pos := binary.BigEndian.Uint64(key)
		r, err := decodeAuditAt(pos, v)
		if err != nil {
			return bad(pos, store.AuditUnreadable, "%v", err)
		}
		e := &r.AuditEntry
		first := rep.Entries == 0
		rep.Entries++
		if first {
			firstPos = pos
		}
		switch {
		case e.Seq != pos:
			return bad(pos, store.AuditReordered, "the entry stored at %d is entry %d", pos, e.Seq)
		case !first && pos != last+1:
			return bad(last+1, store.AuditRemoved, "entries %d to %d are missing", last+1, pos-1)
		case first && pos != 1 && e.Action != store.AuditCheckpoint:
			return bad(1, store.AuditRemoved, "the trail starts at entry %d without a checkpoint: entries 1 to %d are missing", pos, pos-1)
		}
		if first && e.Action == store.AuditCheckpoint {
			// Compacted: the checkpoint stands for entries 1..Seq.
			rep.Checkpoint = e.Seq
			if k != nil {
				switch {
				case e.Checkpoint == "" && e.MAC == "":
					rep.Unsigned++ // entries written and compacted while the service had no key
				case e.Checkpoint == "":
					return bad(e.Seq, store.AuditUnsigned, "the checkpoint of signed entries carries no MAC of its own: it was not written with the key")
				default:
					// Its own MAC (made when compacting) and the MAC of
					// the last entry it stands for, which alone says
					// whether the trail had reached v2 there.
					own, last := k.check(e.Checkpoint, macCheckpoint, e.Hash, e.Seq), macLegacy
					if e.MAC != "" {
						last = k.check(e.MAC, macEntry, e.Hash, e.Seq)
					}
					switch {
					case own == macBad || last == macBad:
						return bad(e.Seq, store.AuditEdited, "the checkpoint's MAC does not match: it was forged or moved")
					case own == macUnchecked:
						rep.LegacyUnchecked++
					default:
						rep.Signed++
						if own == macLegacy {
							rep.Legacy++
						}
					}
					signed, v2 = true, last == macOK
				}
			}
			prev, last = e.Hash, e.Seq
			if expect != nil && e.Seq == expect.Seq {
				expected = e.Hash
			}
			continue
		}
		if e.Action == store.AuditCheckpoint {
			return bad(e.Seq, store.AuditEdited, "a checkpoint in the middle of the trail")
		}
		if r.compact {
			// A compact entry stores no link: its hash covers the previous
			// hash, so a changed entry, or one that follows a changed
			// entry rehashed, no longer matches the 16 bytes it stores.
			// With the key, the MAC of the rehashed one fails first.
			if !r.chain(prev) {
				return bad(e.Seq, store.AuditEdited, "its content does not match its hash (or the entry before it was changed and rehashed)")
			}
		} else if auditHash(*e) != e.Hash {
			return bad(e.Seq, store.AuditEdited, "its content does not match its hash")
		}
		if e.Prev != prev {
			if first {
				return bad(e.Seq, store.AuditEdited, "the first entry links to a predecessor")
			}
			// This entry is intact, so the previous one changed (it was
			// edited and its own hash recomputed).
			return bad(last, store.AuditEdited, "entry %d links to another hash: this entry was changed and rehashed", e.Seq)
		}
		if k != nil {
			switch {
			case e.MAC == "" && signed:
				return bad(e.Seq, store.AuditUnsigned, "no MAC after signed entries: MACs were stripped, or the service ran without its key")
			case e.MAC == "":
				rep.Unsigned++
			default:
				switch c := k.check(e.MAC, macEntry, e.Hash, e.Seq); {
				case c == macBad:
					return bad(e.Seq, store.AuditEdited, "its MAC does not match: changed and re-chained without the key, or this is not the key it was written with")
				case c != macOK && v2:
					return bad(e.Seq, store.AuditEdited, "a MAC of the old, master-key kind after entries signed with the service key: forged, or its tag was stripped")
				case c == macOK:
					v2 = true
					rep.Signed++
				case c == macLegacy:
					legacy = true
					rep.Signed++
					rep.Legacy++
				case legacy:
					// Master keys sign in turn, and the newest is the one
					// given: after an entry one checked, every legacy MAC
					// must check too.
					return bad(e.Seq, store.AuditEdited, "its MAC matches none of the master keys given, after entries one of them signed: "+
						"changed and re-chained without the key, or signed with a master key not given (give each one used since)")
				default:
					rep.LegacyUnchecked++
				}
				signed = true
			}
		}
		prev, last = e.Hash, e.Seq
		if expect != nil && e.Seq == expect.Seq {
			expected = e.Hash
		}
	}
	rep.Head = store.AuditHead{Seq: last, Hash: prev}
	meta := tx.Bucket(bucketMeta)
	head := string(meta.Get(keyAuditHead))
	switch {
	case rep.Entries == 0 && head != "":
		return bad(1, store.AuditTruncated, "the trail is empty but its head is recorded: every entry was removed")
	case head != prev:
		if hm := meta.Get(keyAuditHeadMAC); len(hm) >= 16 && binary.BigEndian.Uint64(hm) == last {
			return bad(last, store.AuditEdited, "the last entry's hash is not the recorded head: it was changed and rehashed")
		}
		return bad(last+1, store.AuditTruncated, "the recorded head is not entry %d's hash: entries after %d were removed, or the head was rewritten", last, last)
	}
	if hm := meta.Get(keyAuditHeadMAC); len(hm) >= 16 && rep.Entries > 0 {
		seq, from := binary.BigEndian.Uint64(hm), binary.BigEndian.Uint64(hm[8:])
		switch {
		case seq != last:
			return bad(min(seq, last)+1, store.AuditTruncated, "the head was entry %d, the trail ends at %d", seq, last)
		case from != firstPos:
			return bad(min(from, firstPos), store.AuditRemoved, "the trail starts at entry %d, its head record at %d: entries were removed from the start", firstPos, from)
		}
		if k != nil && signed {
			mac := string(hm[16:])
			if mac == "" {
				return bad(last, store.AuditUnsigned, "the head carries no MAC after signed entries")
			}
			switch k.check(mac, macHead, prev, last, from) {
			case macBad:
				return bad(last+1, store.AuditTruncated, "the head's MAC does not match: the head record was rewritten (entries cut off at the end or the start)")
			case macUnchecked:
				// The head anchors the legacy entries no key checked: it
				// must be checked itself.
				return bad(last+1, store.AuditTruncated, "the head's MAC matches no key given: the head record was rewritten, or it was signed "+
					"with a master key not given (a file not opened since before the audit key moved to the service key: give that master key too)")
			case macLegacy:
				if v2 {
					return bad(last+1, store.AuditTruncated, "the head carries a MAC of the old, master-key kind after entries signed with the service key: it was rewritten")
				}
			}
		}
	} else if k != nil && signed {
		return bad(last, store.AuditUnsigned, "the head carries no MAC after signed entries")
	}
	if k != nil && rep.Entries > 0 && rep.Signed == 0 && rep.LegacyUnchecked == 0 {
		return bad(1, store.AuditUnsigned, "no entry is signed: the file was written without this key, or every MAC was stripped")
	}
	if expect != nil {
		switch {
		case expect.Seq > last:
			return bad(last+1, store.AuditTruncated, "the trail ends at entry %d, but entry %d was its head before: entries were cut off, or this is an older copy", last, expect.Seq)
		case expect.Seq < rep.Checkpoint:
			return bad(expect.Seq, store.AuditUncheckable, "entry %d was compacted into the checkpoint at %d", expect.Seq, rep.Checkpoint)
		case expected != expect.Hash:
			return bad(expect.Seq, store.AuditEdited, "its hash is not the expected head's: the trail was rewritten from here")
		}
	}
	return rep, nil
}

// Audit returns every audit entry in order, with Reason opened when the
// store has the audit key (a legacy entry's reason opens only when the
// master key that sealed it is given; otherwise Reason stays empty).
func (s *Store) Audit() ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		prev, ring := "", newAuditRing(s.audit, s.auditLegacy)
		return tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("audit: a key of %d bytes", len(k))
			}
			e, err := decodeAuditAt(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return fmt.Errorf("audit entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			e.chain(prev) // compact: Prev and Hash as verify computes them
			prev = e.Hash
			r, _, err := ring.open(e)
			if err != nil {
				return fmt.Errorf("audit entry %d: %w", e.Seq, err)
			}
			e.Reason = r
			out = append(out, e.AuditEntry)
			return nil
		})
	})
	return out, err
}

// resignAuditHead runs in Open once the v2 key is known: a head record
// still signed with a legacy (master-key-derived) key that a master key
// given checks is signed again with the v2 key, which anchors every entry
// before it. Without it, a rotation right after an upgrade, before any new
// entry, would leave a head only the old master key verifies. A head no
// key given checks is left as it is: the service never blesses what it
// cannot check.
func (s *Store) resignAuditHead() error {
	if s.audit == nil || len(s.auditLegacy) == 0 {
		return nil
	}
	// legacyHead reports whether the head needs re-signing, and its end.
	legacyHead := func(tx *bolt.Tx) (bool, store.AuditHead) {
		hm := tx.Bucket(bucketMeta).Get(keyAuditHeadMAC)
		if len(hm) <= 16 || strings.HasPrefix(string(hm[16:]), macV2) {
			return false, store.AuditHead{}
		}
		last, first := binary.BigEndian.Uint64(hm), binary.BigEndian.Uint64(hm[8:])
		head := auditHeadOf(tx)
		return head.Seq == last && newAuditRing(nil, s.auditLegacy).check(string(hm[16:]), macHead, head.Hash, last, first) == macLegacy, head
	}
	var need bool
	if err := s.db.View(func(tx *bolt.Tx) error { need, _ = legacyHead(tx); return nil }); err != nil || !need {
		return err // the usual case: nothing to write, no commit at every start
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if ok, head := legacyHead(tx); ok {
			return s.putAuditHeadMAC(tx, head.Seq, head.Hash)
		}
		return nil
	})
}

// CompactAudit replaces every entry recorded before the cutoff by one
// checkpoint entry (store.AuditCheckpoint) carrying the last removed
// entry's seq, hash and MAC, signed itself with the audit key, so the
// chain verifies from it. It works in transactions of at most
// compactBatch deletions, each leaving a verifiable trail, and returns how
// many entries it removed. The newest entry is never removed: the head
// always has an entry.
func (s *Store) CompactAudit(before time.Time) (int, error) {
	total := 0
	for {
		n, more, err := s.compactOnce(before)
		total += n
		if err != nil {
			return total, fmt.Errorf("store: compact the audit trail: %w", err)
		}
		if !more || n == 0 {
			return total, nil
		}
	}
}

// compactOnce is one transaction of CompactAudit: it removes up to
// compactBatch entries (a previous checkpoint among them) and writes the
// new checkpoint and head record. more: entries before the cutoff remain.
func (s *Store) compactOnce(before time.Time) (n int, more bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		n, more = 0, false
		b := tx.Bucket(bucketAudit)
		c := b.Cursor()
		lastKey, _ := c.Last()
		var drop [][]byte
		var end store.AuditEntry
		prev := ""
		for k, v := c.First(); k != nil && !bytes.Equal(k, lastKey); k, v = c.Next() {
			r, err := decodeAuditAt(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return fmt.Errorf("audit entry %d is unreadable: %w", binary.BigEndian.Uint64(k), err)
			}
			// A compact entry's hash is computed along the chain; the
			// checkpoint carries it, and its MAC covers it, so an entry
			// edited before compaction still fails at the checkpoint.
			r.chain(prev)
			e := r.AuditEntry
			prev = e.Hash
			if !e.At.Before(before) {
				break
			}
			if len(drop) == compactBatch {
				more = true
				break
			}
			drop = append(drop, append([]byte(nil), k...))
			end = e
			if e.Action != store.AuditCheckpoint {
				n++
			}
		}
		if n == 0 {
			return nil
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		cp := store.AuditEntry{Seq: end.Seq, At: end.At, Action: store.AuditCheckpoint, Hash: end.Hash, MAC: end.MAC}
		if s.audit != nil {
			cp.Checkpoint = s.audit.sum(macCheckpoint, cp.Hash, cp.Seq)
		}
		if err := putJSON(b, u64(cp.Seq), cp); err != nil {
			return err
		}
		head := auditHeadOf(tx)
		return s.putAuditHeadMAC(tx, head.Seq, head.Hash)
	})
	if err != nil {
		n, more = 0, false
	}
	return n, more, err
}
