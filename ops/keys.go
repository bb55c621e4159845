package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// KeyRotator is a store that can re-wrap its data keys under a new master
// key while serving (boltstore.Store.RotateMasterKey).
type KeyRotator interface {
	RotateMasterKey() (int, error)
	MasterKeyIDs() (map[string]int, error)
}

// RotateResult is the answer of POST /admin/keys/rotate: how many data
// keys were re-wrapped, and how many each master key now wraps (one id
// when the rotation is complete).
type RotateResult struct {
	Rewrapped int            `json:"rewrapped"`
	ByKey     map[string]int `json:"by_master_key"`
}

// rotateKeys re-wraps every data key under the master key serve was
// started with (CHECKIN_MASTER_KEY, the old one in CHECKIN_MASTER_KEY_OLD),
// in batches through the single writer: citizens are served meanwhile.
// The same admin token as backups guards it.
func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) {
	if s.opt.BackupToken == "" {
		http.Error(w, "admin commands are disabled: set CHECKIN_ADMIN_TOKEN for serve", http.StatusForbidden)
		return
	}
	if !tokenOK(r.Header.Get("Authorization"), s.opt.BackupToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="checkinbot admin"`)
		http.Error(w, "missing or wrong admin token", http.StatusUnauthorized)
		return
	}
	kr, ok := s.opt.Store.(KeyRotator)
	if !ok || s.opt.Unencrypted {
		http.Error(w, "the data file is not encrypted: there is nothing to rotate", http.StatusConflict)
		return
	}
	start := time.Now()
	n, err := kr.RotateMasterKey()
	if err != nil {
		s.opt.Log.Error("master key rotation failed", "err", err, "rewrapped", n)
		http.Error(w, "rotation failed after "+fmt.Sprint(n)+" keys: "+err.Error(), http.StatusInternalServerError)
		return
	}
	ids, err := kr.MasterKeyIDs()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.opt.Log.Info("master key rotated", "rewrapped", n, "master_keys", len(ids), "took", time.Since(start).Round(time.Millisecond))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(RotateResult{Rewrapped: n, ByKey: ids})
}

// RotateKeys asks a running serve, over its admin listener at addr, to
// re-wrap every data key under its current master key.
func RotateKeys(ctx context.Context, addr, token string) (RotateResult, error) {
	var res RotateResult
	client, base := Dial(addr)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/admin/keys/rotate", nil)
	if err != nil {
		return res, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return res, fmt.Errorf("keys rotate: cannot reach serve's admin listener %s (is serve running with --admin-listen %s?): %w", addr, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return res, fmt.Errorf("keys rotate: admin listener %s answered %s: %s", addr, resp.Status, strings.TrimSpace(string(msg)))
	}
	return res, json.NewDecoder(resp.Body).Decode(&res)
}
