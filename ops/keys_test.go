package ops_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/ops"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
)

func masterKey(t *testing.T, b byte) *seal.MasterKey {
	t.Helper()
	m, err := seal.NewMasterKey(bytes.Repeat([]byte{b}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const adminTok = "admin-token-0123456789abcdef"

// POST /admin/keys/rotate re-wraps a real store's data keys under the
// master key serve was started with, behind the admin token; a store
// written in clear has nothing to rotate, and says so in /readyz.
func TestRotateKeysEndpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	old, next := masterKey(t, 1), masterKey(t, 2)
	s, err := boltstore.OpenWith(path, boltstore.Options{Keyring: &seal.Keyring{Current: old}})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "b", "c"} {
		if _, err := s.Process(key, "", time.Now(), func(prev dialogs.State, _ bool) dialogs.Result {
			prev.Key = key
			return dialogs.Result{State: prev}
		}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err = boltstore.OpenWith(path, boltstore.Options{Keyring: &seal.Keyring{Current: next, Old: []*seal.MasterKey{old}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := ops.New(ops.Options{Store: s, Runner: &fakeRunner{}, BackupToken: adminTok}).Handler()
	post := func(tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/admin/keys/rotate", nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := post("wrong-token-0123456789abcdef"); w.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", w.Code)
	}
	w := post(adminTok)
	var res ops.RotateResult
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &res) != nil {
		t.Fatalf("rotate: %d %s", w.Code, w.Body)
	}
	if res.Rewrapped != 4 || len(res.ByKey) != 1 || res.ByKey[next.ID()] != 4 {
		t.Fatalf("rotate: %+v, want 3 registrant keys and the service key under %s", res, next.ID())
	}

	clear, err := boltstore.Open(filepath.Join(t.TempDir(), "clear.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer clear.Close()
	srv := ops.New(ops.Options{Store: clear, Runner: &fakeRunner{}, BackupToken: adminTok, Unencrypted: !clear.Encrypted()})
	w = httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/admin/keys/rotate", nil)
	r.Header.Set("Authorization", "Bearer "+adminTok)
	srv.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusConflict {
		t.Fatalf("rotate on a clear file: %d", w.Code)
	}
	w = httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if !strings.Contains(w.Body.String(), "encryption: off") {
		t.Fatalf("/readyz of a clear file does not say so: %s", w.Body)
	}
	w = httptest.NewRecorder()
	ops.New(ops.Options{Store: s, Runner: &fakeRunner{}}).Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if strings.Contains(w.Body.String(), "encryption") {
		t.Fatalf("/readyz of an encrypted file warns: %s", w.Body)
	}
}
