package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testMaster(t *testing.T, b byte) *MasterKey {
	t.Helper()
	m, err := NewMasterKey(bytes.Repeat([]byte{b}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseMasterKeyForms(t *testing.T) {
	raw := bytes.Repeat([]byte{0xA5}, KeySize)
	want, _ := NewMasterKey(raw)
	for _, form := range []string{
		hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw),
		base64.URLEncoding.EncodeToString(raw), "  " + base64.StdEncoding.EncodeToString(raw) + "\n",
	} {
		m, err := ParseMasterKey(form)
		if err != nil {
			t.Fatalf("%q: %v", form, err)
		}
		if m.ID() != want.ID() {
			t.Errorf("%q: id %s, want %s", form, m.ID(), want.ID())
		}
	}
	for _, bad := range []string{"", "short", hex.EncodeToString(raw[:31]), base64.StdEncoding.EncodeToString(append(raw, 1))} {
		_, err := ParseMasterKey(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error repeats the key: %v", err)
		}
	}
}

func TestMasterKeyFile(t *testing.T) {
	dir := t.TempDir()
	m, text := GenerateMasterKey()
	p := filepath.Join(dir, "key")
	os.WriteFile(p, []byte(text+"\n"), 0o600)
	got, err := LoadMasterKeyFile(p)
	if err != nil || got.ID() != m.ID() {
		t.Fatalf("text file: %v, id %v want %s", err, got, m.ID())
	}
	os.WriteFile(p, m.raw[:], 0o600)
	if got, err := LoadMasterKeyFile(p); err != nil || got.ID() != m.ID() {
		t.Fatalf("raw file: %v", err)
	}
	os.Chmod(p, 0o644)
	if _, err := LoadMasterKeyFile(p); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable key file: %v", err)
	}
}

func TestIDsDiffer(t *testing.T) {
	a, b := testMaster(t, 1), testMaster(t, 2)
	if a.ID() == b.ID() || len(a.ID()) != 2*IDSize {
		t.Fatalf("ids %s %s", a.ID(), b.ID())
	}
}

// Every way of opening a sealed value other than the right key with the
// right additional data fails: another key, another place, any flipped
// byte, any truncation.
func TestSealRefusesEverythingButTheRightKeyAndPlace(t *testing.T) {
	k1, _ := NewKey(NewDataKey())
	k2, _ := NewKey(NewDataKey())
	ad := AD([]byte("registrants"), []byte("user-1"))
	for _, msg := range [][]byte{nil, []byte("x"), []byte(`{"name":"Siti"}`), bytes.Repeat([]byte("a"), 5000)} {
		s := k1.Seal(msg, ad)
		got, err := k1.Open(s, ad)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round trip of %d bytes: %v", len(msg), err)
		}
		if _, err := k2.Open(s, ad); err != ErrOpen {
			t.Errorf("another key opened it: %v", err)
		}
		for _, other := range [][]byte{AD([]byte("registrants"), []byte("user-2")), AD([]byte("sendq"), []byte("user-1")),
			AD([]byte("registrantsuser-1")), AD([]byte("registrants"), []byte("user-1"), nil)} {
			if _, err := k1.Open(s, other); err != ErrOpen {
				t.Errorf("opened at another place %x: %v", other, err)
			}
		}
		for i := range s {
			bad := bytes.Clone(s)
			bad[i] ^= 0x01
			if _, err := k1.Open(bad, ad); err != ErrOpen {
				t.Fatalf("byte %d flipped: opened (%v)", i, err)
			}
		}
		for n := 0; n < len(s); n += 1 + n/3 {
			if _, err := k1.Open(s[:n], ad); err != ErrOpen {
				t.Fatalf("cut to %d bytes: opened", n)
			}
		}
	}
}

// Stored lengths are size classes: every plaintext length in a class gives
// the same sealed length, and the class holds the plaintext.
func TestPaddingClasses(t *testing.T) {
	k, _ := NewKey(NewDataKey())
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		n := r.IntN(20000)
		s := k.Seal(make([]byte, n), nil)
		c := PaddedSize(4 + n)
		if len(s) != c+overhead {
			t.Fatalf("%d bytes sealed to %d, want class %d+%d", n, len(s), c, overhead)
		}
		if c < 4+n || (c <= 4096 && c%256 != 0) || (c > 4096 && c&(c-1) != 0) {
			t.Fatalf("class %d for %d bytes", c, n)
		}
	}
	if len(k.Seal(make([]byte, 10), nil)) != len(k.Seal(make([]byte, 200), nil)) {
		t.Fatal("10 and 200 bytes are told apart")
	}
	if got := len(k.SealFixed([]byte{3}, nil)); got != 1+overhead+4 {
		t.Fatalf("fixed seal of one byte is %d bytes", got)
	}
}

func TestWrapBindsOwnerAndMasterKey(t *testing.T) {
	m1, m2 := testMaster(t, 1), testMaster(t, 2)
	raw := NewDataKey()
	w := m1.Wrap(raw, "user-1")
	k, err := m1.Unwrap(w, "user-1")
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := NewKey(raw)
	if got, err := k.Open(k1.Seal([]byte("hi"), nil), nil); err != nil || string(got) != "hi" {
		t.Fatalf("unwrapped key differs: %v", err)
	}
	if _, err := m1.Unwrap(w, "user-2"); err != ErrOpen {
		t.Errorf("unwrapped for another owner: %v", err)
	}
	if _, err := m2.Unwrap(w, "user-1"); err == nil || !strings.Contains(err.Error(), m1.ID()) {
		t.Errorf("other master key: %v", err)
	}
	// The id in the wrapped key is covered by the additional data: relabelling fails.
	relabel := bytes.Clone(w)
	copy(relabel[1:1+IDSize], m2.id[:])
	if _, err := m2.Unwrap(relabel, "user-1"); err != ErrOpen {
		t.Errorf("relabelled key opened: %v", err)
	}
	ring := &Keyring{Current: m2, Old: []*MasterKey{m1}}
	if _, err := ring.Unwrap(w, "user-1"); err != nil {
		t.Errorf("keyring with the old key: %v", err)
	}
	if _, err := (&Keyring{Current: m2}).Unwrap(w, "user-1"); err == nil || !strings.Contains(err.Error(), "not given") {
		t.Errorf("keyring without the old key: %v", err)
	}
}

func TestDeriveDiffersByPurpose(t *testing.T) {
	m := testMaster(t, 7)
	a, b := m.Derive("audit"), m.Derive("other")
	if bytes.Equal(a, b) || len(a) != KeySize || bytes.Equal(a, m.raw[:]) {
		t.Fatal("derived keys not distinct")
	}
	if !bytes.Equal(a, m.Derive("audit")) {
		t.Fatal("derivation not stable")
	}
}

// TestDataKeyDeriveSurvivesRewrap: a data key re-wrapped under a new
// master key (a rotation) derives the same keys, and they are neither the
// data key nor either master key's derivation.
func TestDataKeyDeriveSurvivesRewrap(t *testing.T) {
	oldM, newM := testMaster(t, 7), testMaster(t, 8)
	raw := NewDataKey()
	w := oldM.Wrap(raw, "service")
	before, err := oldM.Unwrap(w, "service")
	if err != nil {
		t.Fatal(err)
	}
	w2, err := (&Keyring{Current: newM, Old: []*MasterKey{oldM}}).Rewrap(w, "service")
	if err != nil {
		t.Fatal(err)
	}
	after, err := newM.Unwrap(w2, "service")
	if err != nil {
		t.Fatal(err)
	}
	a := before.Derive("audit v2")
	switch {
	case !bytes.Equal(a, after.Derive("audit v2")):
		t.Fatal("the derivation changed with the re-wrap")
	case len(a) != KeySize || bytes.Equal(a, raw) || bytes.Equal(a, before.Derive("other")):
		t.Fatal("derived key not distinct")
	case bytes.Equal(a, oldM.Derive("audit v2")) || bytes.Equal(a, newM.Derive("audit v2")):
		t.Fatal("derived from the master key, not the data key")
	}
}

func TestADIsInjective(t *testing.T) {
	if bytes.Equal(AD([]byte("ab"), []byte("c")), AD([]byte("a"), []byte("bc"))) {
		t.Fatal("AD is ambiguous")
	}
}

func BenchmarkSealOpen(b *testing.B) {
	k, _ := NewKey(NewDataKey())
	msg := make([]byte, 700)
	ad := AD([]byte("registrants"), make([]byte, 64))
	for b.Loop() {
		if _, err := k.Open(k.Seal(msg, ad), ad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrap(b *testing.B) {
	m, _ := GenerateMasterKey()
	w := m.Wrap(NewDataKey(), "user")
	for b.Loop() {
		if _, err := m.Unwrap(w, "user"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMasterKeyFileRefusesPassphrase: a key file of exactly 32 bytes is
// read as raw key bytes, so a 32-character passphrase written without a
// newline would become a guessable master key. Every such text is refused
// without repeating it; random bytes are still taken.
func TestMasterKeyFileRefusesPassphrase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	for _, pass := range []string{
		"correct horse battery staple 123", "checkinbot-master-key-2026-prod!", strings.Repeat("a", KeySize),
		"Tab\tand newline\nare text too....",
	} {
		if len(pass) != KeySize {
			t.Fatalf("%q is %d bytes, not %d: the case tests nothing", pass, len(pass), KeySize)
		}
		os.WriteFile(p, []byte(pass), 0o600)
		_, err := LoadMasterKeyFile(p)
		if err == nil || !strings.Contains(err.Error(), "passphrase") {
			t.Errorf("%q: %v, want a refusal naming a passphrase", pass, err)
		}
		if err != nil && strings.Contains(err.Error(), pass) {
			t.Errorf("the error repeats the passphrase: %v", err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		raw := make([]byte, KeySize)
		for i := range raw {
			raw[i] = byte(r.UintN(256))
		}
		raw[0] = 0x80 // not text
		os.WriteFile(p, raw, 0o600)
		if _, err := LoadMasterKeyFile(p); err != nil {
			t.Fatalf("random key bytes refused: %v", err)
		}
	}
}
