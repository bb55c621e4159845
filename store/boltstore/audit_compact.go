package boltstore

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/checkinbot/checkinbot/store"
)

// The compact audit entry (issue 15 item 4). An entry used to be JSON:
// the sealed reason in base64, the previous entry's hash, its own hash and
// its MAC in hex — ≈ 740 bytes, ≈ 890 on disk, two a day per registrant
// kept for [audit] retention. A compact entry is a fixed binary layout,
// 147 bytes with a key (≈ 188 on disk), each field raw:
//
//	0      version     auditCompactV1 (a JSON entry starts with '{')
//	1      action      index in auditActions (the clear, neutral action)
//	2      flags       bits 0–1 subject form (none, pseudonym, literal); bit 2 keyed
//	3..4   seq         its low 16 bits (the key is the seq: these show an entry moved)
//	5..12  at          Unix nanoseconds, big-endian
//	…      subject     pseudonym: "reg_" + 20 hex digits packed in 10 bytes;
//	                   literal: 1 length byte + the bytes
//	16     hash        the first 16 bytes of the entry's hash
//	keyed only:
//	16     MAC         the first 16 bytes of HMAC-SHA256 over the hash (macEntry)
//	108    sealed      nonce (12) ‖ AES-256-GCM of auditReasonSize bytes ‖ tag (16)
//
// What it leaves out, and why that is safe:
//
//   - The previous entry's hash is not stored: an entry's hash covers it
//     (compactHash), so verify recomputes the chain from the first entry
//     (or the checkpoint) and a changed link shows as a hash that does not
//     match. The full 32-byte hash is what chains, what the MAC covers,
//     what the head and a checkpoint record; an entry stores 16 bytes of it
//     only to name the first bad entry when verifying without the key.
//   - The MAC is HMAC-SHA256 truncated to 128 bits (RFC 2104 §5 allows
//     truncation to half the output and no less than 80 bits): forging one
//     takes 2^128 guesses on average, and an offline verifier answers no
//     guesses, so the attacker cannot even test them.
//   - The reason is sealed at one fixed size, auditReasonSize, whatever it
//     says: a reason naming a duress escalation and one naming nothing
//     seal to the same number of bytes, so every entry of one form has one
//     size. It is squeezed first — its common words one byte each, event
//     ids as their 16 bytes (a check-in with an escalation takes 24 of the
//     63 bytes, with two 46); a reason that does not fit even then is cut
//     at a rune boundary and ends in "…" (rare: an event with three
//     escalations or more; their ids stay in the outbox and the case).
//
// Each entry carries its version byte, so a trail mixes forms freely: the
// JSON entries of older files verify as they always did, and the chain
// runs through both (a compact entry's hash covers the previous entry's
// hash whichever form it had). An entry whose action or subject the compact
// form cannot carry (an action outside auditActions, a subject over 255
// bytes) is written as JSON: it still verifies, and the action is in clear
// either way. The checkpoint stays JSON: there is one per trail.

// auditCompactV1 is the version byte of the layout above.
const auditCompactV1 byte = 0x01

const (
	auditHashShort  = 16 // bytes of its hash a compact entry stores
	auditMACShort   = 16 // bytes of its MAC a compact entry stores
	auditReasonSize = 64 // plaintext bytes of a compact sealed reason
	auditSubjectLen = 10 // bytes of a packed pseudonym
)

// auditCompactWrites is false only in tests, to write entries in the JSON
// form of older versions and build old and mixed trails.
var auditCompactWrites = true

// auditActions are the clear actions a compact entry can carry, by code.
// Append only: a code, once written, means its action for good.
var auditActions = []string{"", store.AuditRegistrantUpdated, store.AuditCaseUpdated, store.AuditEventAcknowledged, store.AuditServiceResumed}

// Subject forms (flags bits 0–1).
const (
	subjectNone      = 0
	subjectPseudonym = 1
	subjectLiteral   = 2
	flagKeyed        = 1 << 2
)

// auditRec is one stored entry, decoded: the entry, and for a compact one
// the bytes its hash covers and the hash prefix it stores. A compact
// entry's Prev and Hash are empty until chained (rec.chain).
type auditRec struct {
	store.AuditEntry
	compact bool
	header  []byte // compact: version … subject, as stored
	sum     []byte // compact: the stored prefix of its hash
}

// compactHeader encodes the clear part of e (version to subject), or
// false when the compact form cannot carry e's action or subject.
func compactHeader(e store.AuditEntry, keyed bool) ([]byte, bool) {
	code := -1
	for i, a := range auditActions {
		if i > 0 && a == e.Action {
			code = i
		}
	}
	if code < 0 {
		return nil, false
	}
	h := make([]byte, 3, 5+8+1+auditSubjectLen)
	h[0], h[1] = auditCompactV1, byte(code)
	if keyed {
		h[2] |= flagKeyed
	}
	h = binary.BigEndian.AppendUint16(h, uint16(e.Seq))
	h = binary.BigEndian.AppendUint64(h, uint64(e.At.UnixNano()))
	switch packed, ok := packPseudonym(e.Subject); {
	case e.Subject == "":
	case ok:
		h[2] |= subjectPseudonym
		h = append(h, packed...)
	case len(e.Subject) <= 255:
		h[2] |= subjectLiteral
		h = append(append(h, byte(len(e.Subject))), e.Subject...)
	default:
		return nil, false
	}
	return h, true
}

// packPseudonym packs "reg_" + 20 lower-case hex digits (dialogs.Pseudonym
// of a user key) into 10 bytes.
func packPseudonym(s string) ([]byte, bool) {
	hx, ok := strings.CutPrefix(s, "reg_")
	if !ok || len(hx) != 2*auditSubjectLen || strings.ToLower(hx) != hx {
		return nil, false
	}
	b, err := hex.DecodeString(hx)
	return b, err == nil
}

// compactHash is the full hash of a compact entry: its seq, the previous
// entry's hash (hex, as the head and JSON entries hold it), its clear part
// and its sealed reason.
func compactHash(seq uint64, prev string, header, sealed []byte) string {
	h := sha256.New()
	h.Write([]byte("checkinbot audit compact\x00"))
	h.Write(u64(seq))
	h.Write([]byte{byte(len(prev))})
	h.Write([]byte(prev))
	h.Write(header)
	h.Write(sealed)
	return hex.EncodeToString(h.Sum(nil))
}

// compactValue is the stored entry: header ‖ hash prefix ‖ MAC prefix ‖
// sealed (the last two only when keyed).
func compactValue(header []byte, hash string, mac string, sealed []byte) []byte {
	sum, _ := hex.DecodeString(hash[:2*auditHashShort])
	v := append(bytes.Clone(header), sum...)
	if mac != "" {
		m, _ := hex.DecodeString(strings.TrimPrefix(mac, macV2)[:2*auditMACShort])
		v = append(append(v, m...), sealed...)
	}
	return v
}

// shortMAC is the MAC a compact entry stores, in the form AuditEntry.MAC
// holds it: the tag and 16 bytes in hex.
func (k *auditKeys) shortMAC(domain, hash string, seqs ...uint64) string {
	return k.sum(domain, hash, seqs...)[:len(k.tag)+2*auditMACShort]
}

// decodeAuditAt reads the entry stored under seq pos, JSON or compact. A
// compact entry's seq is pos with the low 16 bits it stores: an entry
// moved to another key reads as the entry it is.
func decodeAuditAt(pos uint64, v []byte) (auditRec, error) {
	var r auditRec
	switch {
	case len(v) == 0:
		return r, errors.New("an empty entry")
	case v[0] == '{':
		err := json.Unmarshal(v, &r.AuditEntry)
		return r, err
	case v[0] != auditCompactV1:
		return r, fmt.Errorf("an entry of unknown form %#x (written by a newer checkinbot?)", v[0])
	}
	r.compact = true
	short := func(what string) (auditRec, error) {
		return r, fmt.Errorf("a compact entry of %d bytes, cut short in its %s", len(v), what)
	}
	if len(v) < 13 {
		return short("header")
	}
	code, flags := int(v[1]), v[2]
	r.Seq = pos + uint64(int64(int16(binary.BigEndian.Uint16(v[3:5])-uint16(pos))))
	if code == 0 || code >= len(auditActions) || flags&^(flagKeyed|3) != 0 {
		return r, fmt.Errorf("a compact entry with action code %d and flags %#x, which no checkinbot writes", code, flags)
	}
	r.Action, r.At = auditActions[code], time.Unix(0, int64(binary.BigEndian.Uint64(v[5:13]))).UTC()
	n := 13
	switch flags & 3 {
	case subjectPseudonym:
		if len(v) < n+auditSubjectLen {
			return short("subject")
		}
		r.Subject, n = "reg_"+hex.EncodeToString(v[n:n+auditSubjectLen]), n+auditSubjectLen
	case subjectLiteral:
		if len(v) < n+1 || len(v) < n+1+int(v[n]) {
			return short("subject")
		}
		r.Subject, n = string(v[n+1:n+1+int(v[n])]), n+1+int(v[n])
	case 3:
		return r, errors.New("a compact entry with an unknown subject form")
	}
	r.header = v[:n:n]
	want := n + auditHashShort
	if flags&flagKeyed != 0 {
		want += auditMACShort + sealedCompactSize
	}
	if len(v) != want {
		return r, fmt.Errorf("a compact entry of %d bytes, not %d", len(v), want)
	}
	r.sum, n = v[n:n+auditHashShort], n+auditHashShort
	if flags&flagKeyed != 0 {
		r.MAC = macV2 + hex.EncodeToString(v[n:n+auditMACShort])
		r.Sealed = v[n+auditMACShort:]
	}
	return r, nil
}

// chain fills a compact entry's Prev and Hash from the previous entry's
// hash and reports whether the hash prefix it stores matches; a JSON
// entry is left as stored (its Prev and Hash are its own).
func (r *auditRec) chain(prev string) bool {
	if !r.compact {
		return true
	}
	r.Prev, r.Hash = prev, compactHash(r.Seq, prev, r.header, r.Sealed)
	return r.Hash[:2*auditHashShort] == hex.EncodeToString(r.sum)
}

// endsAt reports whether the entry's hash can be head, the recorded head
// (`check` compares them without walking the chain: a compact entry is
// compared by the prefix it stores).
func (r auditRec) endsAt(head string) bool {
	if !r.compact {
		return r.Hash == head
	}
	return len(head) >= 2*auditHashShort && head[:2*auditHashShort] == hex.EncodeToString(r.sum)
}

// sealedCompactSize is the stored size of a compact sealed reason.
const sealedCompactSize = 12 + auditReasonSize + 16

// auditADCompact binds a compact sealed reason to its entry, apart from
// the padded JSON form's (auditAD).
func auditADCompact(seq uint64) []byte {
	return append([]byte("checkinbot audit reason compact\x00"), u64(seq)...)
}

// sealCompact seals reason at auditReasonSize bytes (packReason).
func (k *auditKeys) sealCompact(seq uint64, reason string) []byte {
	nonce := make([]byte, k.aead.NonceSize(), sealedCompactSize)
	_, _ = rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, packReason(reason), auditADCompact(seq))
}

// openCompact is sealCompact's inverse.
func (k *auditKeys) openCompact(seq uint64, sealed []byte) (string, error) {
	ns := k.aead.NonceSize()
	if len(sealed) != sealedCompactSize {
		return "", errors.New("sealed reason of the wrong size")
	}
	plain, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], auditADCompact(seq))
	if err != nil {
		return "", errors.New("the sealed reason does not open with this key")
	}
	return unpackReason(plain)
}

// reasonWords are the words reasons are made of (the engine's actions,
// event types, case transitions), each written as one byte: word i as
// reasonWord+i. Part of the compact format: append only, never reorder
// (a changed list needs a new version byte); at most 29 words.
var reasonWords = []string{
	"registration.updated", "registration.withdrawn", "registration.created", "duress.triggered",
	"checkin.missed", "sos.raised", "checkin", "ladder.", "; ", " case_0000", "case.", "event.ack ",
	" by CHECKIN_API_TOKEN_", " -> ", "resolved", "acked", "open", "settings.", "identity.", "rollcall.",
	"retention.", "pause", "service.resumed ", "consent.", "mydata.shown", "channel.unreachable",
	"location.shared", "protection.reduced", "delete",
}

// A squeezed reason is the reason's bytes with each of reasonWords as one
// byte, each event id ("evt_" and 26 base32 digits, as newEventID makes
// them) as reasonID and its 16 bytes (its random digits squeeze no other
// way), and the reason's own bytes below reasonWord after reasonEsc.
const (
	reasonEsc  = 0x00
	reasonID   = 0x01
	reasonWord = 0x02
)

var idDigits = base32.StdEncoding.WithPadding(base32.NoPadding)

// squeeze encodes s as above, taking the longest word at each place.
func squeeze(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "evt_") && i+30 <= len(s) {
			digits := s[i+4 : i+30]
			if b, err := idDigits.DecodeString(strings.ToUpper(digits)); err == nil && len(b) == 16 && strings.ToLower(idDigits.EncodeToString(b)) == digits {
				out = append(append(out, reasonID), b...)
				i += 30
				continue
			}
		}
		best := -1
		for w, word := range reasonWords {
			if strings.HasPrefix(s[i:], word) && (best < 0 || len(word) > len(reasonWords[best])) {
				best = w
			}
		}
		if best >= 0 {
			out = append(out, reasonWord+byte(best))
			i += len(reasonWords[best])
			continue
		}
		if s[i] < reasonWord+byte(len(reasonWords)) {
			out = append(out, reasonEsc)
		}
		out = append(out, s[i])
		i++
	}
	return out
}

// unsqueeze is squeeze's inverse.
func unsqueeze(b []byte) (string, error) {
	var out strings.Builder
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == reasonEsc:
			if i+1 == len(b) {
				return "", errors.New("a sealed reason cut after an escape")
			}
			i++
			out.WriteByte(b[i])
		case c == reasonID:
			if i+17 > len(b) {
				return "", errors.New("a sealed reason cut inside an event id")
			}
			out.WriteString("evt_" + strings.ToLower(idDigits.EncodeToString(b[i+1:i+17])))
			i += 16
		case int(c-reasonWord) < len(reasonWords):
			out.WriteString(reasonWords[c-reasonWord])
		default:
			out.WriteByte(c)
		}
	}
	return out.String(), nil
}

// packReason is reason in auditReasonSize bytes: its squeezed length, the
// squeezed reason, zeros. A reason that does not fit is cut, at a rune
// boundary, to the longest prefix that fits with "…" after it.
func packReason(reason string) []byte {
	b := squeeze(reason)
	if len(b) > auditReasonSize-1 {
		// Halving: lo always fits (a lone "…" does). A longer prefix can
		// squeeze shorter (it completes a word), so the cut found fits
		// but is not always the longest that would.
		lo, hi := 0, len(reason)
		for lo < hi {
			mid := (lo + hi + 1) / 2
			if len(squeeze(cutRunes(reason, mid)+"…")) <= auditReasonSize-1 {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		b = squeeze(cutRunes(reason, lo) + "…")
	}
	out := make([]byte, auditReasonSize)
	out[0] = byte(len(b))
	copy(out[1:], b)
	return out
}

// cutRunes is s's first n bytes, less a rune cut in two.
func cutRunes(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// unpackReason is packReason's inverse.
func unpackReason(plain []byte) (string, error) {
	if len(plain) != auditReasonSize || int(plain[0]) > len(plain)-1 {
		return "", errors.New("a sealed reason of an unknown form")
	}
	return unsqueeze(plain[1 : 1+int(plain[0])])
}

// validShort reports whether mac is the short (compact entry) MAC of
// (domain, hash, seqs).
func (k *auditKeys) validShort(mac, domain, hash string, seqs ...uint64) bool {
	return k.tag == macV2 && hmac.Equal([]byte(mac), []byte(k.shortMAC(domain, hash, seqs...)))
}
