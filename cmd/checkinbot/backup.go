package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/ops"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// DefaultAdminAddr is where `backup` looks for serve's admin listener
// unless told otherwise (serve's --admin-listen has no default: the
// operator opens it on purpose).
const DefaultAdminAddr = "127.0.0.1:9464"

// adminToken is the token guarding the admin listener's backup.
func adminToken() string { return os.Getenv("CHECKIN_ADMIN_TOKEN") }

// backupCmd is `checkinbot backup [--admin ADDR] FILE`: a consistent copy
// of a running serve's data file, fetched over its admin listener, written
// beside FILE, compacted into live pages only (nothing a deletion removed
// survives in it), checked as `checkinbot check` would, and only then
// linked to FILE. An existing FILE is never overwritten.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("backup", flag.ContinueOnError)
	fset.SetOutput(stderr)
	addr := fset.String("admin", DefaultAdminAddr, "serve's admin listener (its --admin-listen): unix:/path or 127.0.0.1:PORT")
	timeout := fset.Duration("timeout", 30*time.Minute, "give up after this long")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() != 1 {
		return usageError{"usage: checkinbot backup [--admin ADDR] FILE"}
	}
	path := fset.Arg(0)
	token := adminToken()
	if token == "" {
		return errors.New("backup: CHECKIN_ADMIN_TOKEN is not set: it must hold the token serve was started with")
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("backup: %s exists; choose a new file name (a backup never overwrites one)", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	n, err := ops.FetchBackup(ctx, *addr, token, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The copy carries bbolt's freed pages, which may hold what a deletion
	// just removed (a deleted citizen's wrapped data key): the backup kept
	// is the copy compacted into live pages only (docs/storage.md, "Erasure").
	live := tmp.Name() + ".live"
	defer os.Remove(live)
	if err := boltstore.CompactFile(tmp.Name(), live); err != nil {
		return fmt.Errorf("backup: compacting the copy: %w", err)
	}
	if err := os.Remove(tmp.Name()); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if fi, err := os.Stat(live); err == nil {
		n = fi.Size()
	}
	ring, err := config.LoadKeyring(nil, config.Getenv) // opens sealed records when the key is here
	if err != nil {
		return err
	}
	rep, err := boltstore.CheckWith(live, boltstore.Options{Keyring: ring})
	if err != nil {
		return fmt.Errorf("backup: the copy cannot be checked: %w", err)
	}
	if len(rep.Problems) > 0 {
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "%s: %s\n", path, p)
		}
		return fmt.Errorf("backup: the copy has %d problem(s) (listed above); it was not kept: run `checkinbot check` on the live file's last good backup and investigate", len(rep.Problems))
	}
	if err := os.Link(live, path); err != nil { // fails, rather than replaces, if FILE appeared meanwhile
		return fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the new name survives a power cut
		d.Close()
	}
	var counts []string
	for k, v := range rep.Counts {
		counts = append(counts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(counts)
	fmt.Fprintf(stdout, "%s: %d bytes, checked ok (%s)\n", path, n, strings.Join(counts, ", "))
	return nil
}
