// Package seal is envelope encryption for the data file (DESIGN §8, issue
// 13): AES-256-GCM from the standard library, a master key that never
// touches the file, per-registrant data keys stored wrapped by it, and
// sealed values bound to where they are stored.
//
// A sealed value is opened only with the data key it was sealed under and
// the same additional data (in boltstore: bucket name and record key), so a
// value copied to another record or bucket fails to open instead of being
// read as someone else's. Values are padded to size classes before
// sealing, so stored lengths say little about what they hold. Destroying a
// wrapped data key (crypto-shredding) makes every value sealed under it
// unreadable, in the file, its freed pages and every backup alike.
//
// It imports only the standard library and knows nothing of buckets or
// registrants: callers choose the additional data.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

// IDSize is the length of a master key id in bytes (hex-encoded in ID).
const IDSize = 8

// format is the first byte of every sealed value and wrapped key, so a
// later format can be told apart.
const format = 1

// overhead is what sealing adds to the padded plaintext: the format byte,
// the nonce and the GCM tag.
const overhead = 1 + 12 + 16

// ErrOpen is the one answer for a value that does not open: wrong key,
// another record's value, or bytes changed. They are deliberately not told
// apart (GCM cannot, and an oracle would not help anyone honest).
var ErrOpen = errors.New("sealed value does not open with this key and place (wrong key, moved or altered)")

// MasterKey wraps data keys. It comes from the environment or a key file,
// never from the data file; only its id is stored there.
type MasterKey struct {
	aead cipher.AEAD
	raw  [KeySize]byte
	id   [IDSize]byte
}

// NewMasterKey makes a master key from 32 raw bytes.
func NewMasterKey(raw []byte) (*MasterKey, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("a master key is %d bytes, not %d", KeySize, len(raw))
	}
	m := &MasterKey{}
	copy(m.raw[:], raw)
	a, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	m.aead = a
	sum := sha256.Sum256(append([]byte("checkinbot master key id\x00"), raw...))
	copy(m.id[:], sum[:IDSize])
	return m, nil
}

// ParseMasterKey reads a master key written as base64 (standard or URL
// alphabet, padded or not) or hex. The error never repeats the input.
func ParseMasterKey(s string) (*MasterKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty: give 32 random bytes as base64 or hex (openssl rand -base64 32)")
	}
	for _, dec := range []func(string) ([]byte, error){
		hex.DecodeString,
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString,
	} {
		if raw, err := dec(s); err == nil && len(raw) == KeySize {
			return NewMasterKey(raw)
		}
	}
	return nil, fmt.Errorf("not %d bytes in base64 or hex (%d characters given): make one with openssl rand -base64 32", KeySize, len(s))
}

// LoadMasterKeyFile reads a master key file: the key as base64 or hex text
// (surrounding white space ignored), or exactly 32 raw bytes. A file that
// others may read is refused: the key is worth as much as the data.
func LoadMasterKeyFile(path string) (*MasterKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s: readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	if len(b) == KeySize {
		if k, err := ParseMasterKey(string(b)); err == nil {
			return k, nil // 32 characters that happen to decode
		}
		if printable(b) {
			// 32 random bytes are all printable once in 10^14: this is a
			// passphrase, which a thief with the file could guess (the
			// file names the key's id, a check for each guess).
			return nil, fmt.Errorf("master key file %s: 32 printable characters are a passphrase, not a key: "+
				"write 32 random bytes as base64 or hex (openssl rand -base64 32)", path)
		}
		return NewMasterKey(b)
	}
	k, err := ParseMasterKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return k, nil
}

// printable reports whether b is all printable ASCII or white space: text,
// not random bytes.
func printable(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// GenerateMasterKey makes a new random master key and its base64 text.
func GenerateMasterKey() (*MasterKey, string) {
	raw := make([]byte, KeySize)
	rand.Read(raw)
	k, _ := NewMasterKey(raw)
	return k, base64.StdEncoding.EncodeToString(raw)
}

// ID is the key's id: the first bytes of a hash of the key, in hex. The
// data file records it, so a wrong key is named at start and rotation can
// tell which key wrapped what; it reveals nothing of the key.
func (m *MasterKey) ID() string { return hex.EncodeToString(m.id[:]) }

// Derive returns a 32-byte key for purpose, derived from the master key
// with HKDF-SHA256, for secrets that must follow the master key (the audit
// trail's) without being it.
func (m *MasterKey) Derive(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, m.raw[:], nil, "checkinbot "+purpose, KeySize)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA256 cannot give; KeySize it can
	}
	return k
}

// Wrap seals a new data key's raw bytes for owner (a registrant key, or a
// name such as "service"). The result starts with this master key's id.
func (m *MasterKey) Wrap(raw []byte, owner string) []byte {
	out := make([]byte, 0, 1+IDSize+12+KeySize+16)
	out = append(out, format)
	out = append(out, m.id[:]...)
	nonce := make([]byte, 12)
	rand.Read(nonce)
	out = append(out, nonce...)
	return m.aead.Seal(out, nonce, raw, wrapAD(owner, m.id[:]))
}

// WrappedBy returns the id of the master key that wrapped w.
func WrappedBy(w []byte) (string, bool) {
	if len(w) < 1+IDSize || w[0] != format {
		return "", false
	}
	return hex.EncodeToString(w[1 : 1+IDSize]), true
}

// Unwrap opens a wrapped data key of owner.
func (m *MasterKey) Unwrap(w []byte, owner string) (*Key, error) {
	raw, err := m.unwrapRaw(w, owner)
	if err != nil {
		return nil, err
	}
	return NewKey(raw)
}

func (m *MasterKey) unwrapRaw(w []byte, owner string) ([]byte, error) {
	if len(w) != 1+IDSize+12+KeySize+16 || w[0] != format {
		return nil, ErrOpen
	}
	if !bytes.Equal(w[1:1+IDSize], m.id[:]) {
		return nil, fmt.Errorf("data key wrapped by master key %s, not %s", hex.EncodeToString(w[1:1+IDSize]), m.ID())
	}
	raw, err := m.aead.Open(nil, w[1+IDSize:1+IDSize+12], w[1+IDSize+12:], wrapAD(owner, m.id[:]))
	if err != nil {
		return nil, ErrOpen
	}
	return raw, nil
}

// wrapAD is "datakey" ‖ owner ‖ master key id, each length-prefixed.
func wrapAD(owner string, id []byte) []byte {
	return AD([]byte("datakey"), []byte(owner), id)
}

// Keyring is the master keys a store accepts: the current one, which
// wraps every new data key, and, during a rotation, the old ones still
// wrapping some.
type Keyring struct {
	Current *MasterKey
	Old     []*MasterKey
}

// Unwrap opens w with whichever key of the ring wrapped it.
func (r *Keyring) Unwrap(w []byte, owner string) (*Key, error) {
	id, ok := WrappedBy(w)
	if !ok {
		return nil, ErrOpen
	}
	for _, m := range append([]*MasterKey{r.Current}, r.Old...) {
		if m != nil && m.ID() == id {
			return m.Unwrap(w, owner)
		}
	}
	return nil, fmt.Errorf("data key wrapped by master key %s, which is not given", id)
}

// Rewrap opens w with whichever key of the ring wrapped it and wraps the
// same data key under the current master key (a rotation). The data key
// itself does not change, so nothing sealed with it needs re-sealing.
func (r *Keyring) Rewrap(w []byte, owner string) ([]byte, error) {
	id, ok := WrappedBy(w)
	if !ok {
		return nil, ErrOpen
	}
	for _, m := range append([]*MasterKey{r.Current}, r.Old...) {
		if m == nil || m.ID() != id {
			continue
		}
		raw, err := m.unwrapRaw(w, owner)
		if err != nil {
			return nil, err
		}
		return r.Current.Wrap(raw, owner), nil
	}
	return nil, fmt.Errorf("data key wrapped by master key %s, which is not given", id)
}

// Key is a data key: it seals and opens values.
type Key struct {
	aead cipher.AEAD
	raw  [KeySize]byte
}

// NewDataKey returns the raw bytes of a new random data key.
func NewDataKey() []byte {
	raw := make([]byte, KeySize)
	rand.Read(raw)
	return raw
}

// NewKey makes a data key from its raw bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("a data key is %d bytes, not %d", KeySize, len(raw))
	}
	a, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	k := &Key{aead: a}
	copy(k.raw[:], raw)
	return k, nil
}

// Derive returns a 32-byte key for purpose, derived from the data key with
// HKDF-SHA256 (info "checkinbot " ‖ purpose), for secrets that must last
// as long as the data key does — through master-key rotations, which only
// re-wrap it — without being it: the audit trail's key is derived from the
// service key (boltstore).
func (k *Key) Derive(purpose string) []byte {
	d, err := hkdf.Key(sha256.New, k.raw[:], nil, "checkinbot "+purpose, KeySize)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA256 cannot give; KeySize it can
	}
	return d
}

func newAEAD(raw []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Seal pads plaintext to its size class (see PaddedSize) and seals it
// with ad, which must be given again to open it.
func (k *Key) Seal(plaintext, ad []byte) []byte {
	return k.seal(plaintext, ad, PaddedSize(4+len(plaintext)))
}

// SealAtLeast is Seal with the size class chosen as if plaintext were at
// least min bytes long: a record whose optional fields may grow (a flag, a
// case id) is stored at the size it has with them, whether it has them or
// not.
func (k *Key) SealAtLeast(plaintext, ad []byte, min int) []byte {
	return k.seal(plaintext, ad, PaddedSize(4+max(len(plaintext), min)))
}

// SealFixed seals plaintext padded only to its own length: for values
// whose length is the same for every record of their kind (a state byte),
// where padding would hide nothing and cost space.
func (k *Key) SealFixed(plaintext, ad []byte) []byte {
	return k.seal(plaintext, ad, 4+len(plaintext))
}

func (k *Key) seal(plaintext, ad []byte, size int) []byte {
	out := make([]byte, 1+12, 1+12+size+16)
	out[0] = format
	rand.Read(out[1:13])
	padded := make([]byte, size)
	binary.BigEndian.PutUint32(padded, uint32(len(plaintext)))
	copy(padded[4:], plaintext)
	return k.aead.Seal(out, out[1:13], padded, ad)
}

// Open returns the plaintext of a value Seal or SealFixed made with this
// key and ad; anything else is ErrOpen.
func (k *Key) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < overhead+4 || sealed[0] != format {
		return nil, ErrOpen
	}
	padded, err := k.aead.Open(nil, sealed[1:13], sealed[13:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	n := binary.BigEndian.Uint32(padded)
	if uint64(n) > uint64(len(padded)-4) {
		return nil, ErrOpen
	}
	return padded[4 : 4+n], nil
}

// Sealed reports whether b looks like a sealed value (its format byte and
// at least the overhead): how a store tells a clear record from a sealed
// one while migrating. JSON never starts with this byte.
func Sealed(b []byte) bool { return len(b) >= overhead+4 && b[0] == format }

// PaddedSize is the size class of an n-byte plaintext: the next multiple
// of 256 bytes up to 4 KiB, then the next power of two. Records whose
// lengths differ by a name or an optional field mostly land in the same
// class.
func PaddedSize(n int) int {
	const step, linear = 256, 4096
	if n <= linear {
		return (n + step - 1) / step * step
	}
	p := linear
	for p < n {
		p <<= 1
	}
	return p
}

// AD joins parts into additional data, each length-prefixed, so that no two
// different lists of parts give the same bytes ("ab","c" ≠ "a","bc").
func AD(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}
