package ops

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// BackupTimeout bounds one backup: a copy of the data file over loopback
// or a unix socket takes seconds; one still running after this is cut
// (its client reports a short copy).
const BackupTimeout = 10 * time.Minute

// MinTokenLen is the shortest admin token accepted: a guessable token on
// a socket other local users can reach would hand them the data file.
const MinTokenLen = 24

// backup streams a consistent copy of the data file to an authorised
// caller. The store keeps serving meanwhile (one read transaction).
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if s.opt.BackupToken == "" {
		http.Error(w, "backups are disabled: set CHECKIN_ADMIN_TOKEN for serve", http.StatusForbidden)
		return
	}
	if !tokenOK(r.Header.Get("Authorization"), s.opt.BackupToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="checkinbot admin"`)
		http.Error(w, "missing or wrong admin token", http.StatusUnauthorized)
		return
	}
	start := time.Now()
	// The copy holds a read transaction open: a client that stops reading
	// must not hold it (and the pages it pins) for ever.
	_ = http.NewResponseController(w).SetWriteDeadline(start.Add(BackupTimeout))
	w.Header().Set("Content-Type", "application/octet-stream")
	n, err := s.opt.Store.WriteBackup(w, func(size int64) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	})
	if err != nil {
		// Headers are gone: the short body (Content-Length) tells the client.
		s.opt.Log.Error("backup failed", "err", err, "bytes", n)
		return
	}
	s.opt.Log.Info("backup taken", "bytes", n, "took", time.Since(start).Round(time.Millisecond))
}

// tokenOK compares a bearer header with the token in constant time (both
// hashed first, so not even the length leaks).
func tokenOK(header, token string) bool {
	got, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// Dial returns an HTTP client and base URL for the admin listener at addr:
// "unix:/path/to/socket" or a TCP "host:port".
func Dial(addr string) (*http.Client, string) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &http.Client{Transport: tr}, "http://admin"
	}
	return &http.Client{}, "http://" + addr
}

// Listen opens the admin listener: "unix:/path" (created mode 0600,
// replacing a stale socket) or a loopback TCP "127.0.0.1:PORT"; any other
// address is refused, naming it.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another process is serving it", path)
		}
		if err := removeSocket(path); err != nil {
			return nil, fmt.Errorf("admin socket %s: %w", path, err)
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("admin socket %s: %w", path, err)
		}
		if err := chmod(path, 0o600); err != nil {
			ln.Close()
			return nil, fmt.Errorf("admin socket %s: %w", path, err)
		}
		return ln, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener %q: %w (want unix:/path or 127.0.0.1:PORT)", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("admin listener %q: not a loopback address: it serves the backup and metrics that must stay "+
			"with the operator (want unix:/path or 127.0.0.1:PORT; see docs/operations.md)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", addr, err)
	}
	return ln, nil
}

// FetchBackup asks the admin listener at addr for a backup and writes it
// to w. It fails on a short copy (the server's Content-Length is
// checked), a refused token, or an unreachable server, saying which.
func FetchBackup(ctx context.Context, addr, token string, w io.Writer) (int64, error) {
	client, base := Dial(addr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/admin/backup", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("backup: cannot reach serve's admin listener %s (is serve running with --admin-listen %s?): %w", addr, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("backup: admin listener %s answered %s: %s", addr, resp.Status, strings.TrimSpace(string(msg)))
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, fmt.Errorf("backup: the copy was cut short after %d bytes: %w", n, err)
	}
	if n == 0 {
		return 0, errors.New("backup: the admin listener sent an empty copy")
	}
	return n, nil
}
