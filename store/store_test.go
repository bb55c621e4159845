package store_test

import (
	"strings"
	"testing"

	"github.com/checkinbot/checkinbot/store"
)

func TestUserKeyHidesIdentity(t *testing.T) {
	a := store.UserKey([]byte("pepper-one-0123456789abcdef012345"), "telegram", "1001")
	b := store.UserKey([]byte("pepper-two-0123456789abcdef012345"), "telegram", "1001")
	c := store.UserKey([]byte("pepper-one-0123456789abcdef012345"), "whatsapp", "1001")
	if a == b || a == c || strings.Contains(a, "1001") || len(a) != 64 {
		t.Errorf("keys %s %s %s", a, b, c)
	}
}
