package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/ops"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// keysCmd is `checkinbot keys rotate`: every data key of the data file is
// re-wrapped under the master key in CHECKIN_MASTER_KEY (or
// master_key_file); the old one, in CHECKIN_MASTER_KEY_OLD (or
// old_master_key_file), opens the keys not yet re-wrapped. Online (the
// default) it asks a running serve — started with both keys — through its
// admin listener; with --data-dir it opens a stopped serve's file itself.
// Records are not re-encrypted: the data keys stay the same, so a rotation
// of a million registrants is a million small writes, in batches.
func keysCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return usageError{"usage: checkinbot keys rotate [--admin ADDR | --data-dir DIR [--config FILE]]"}
	}
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", DefaultAdminAddr, "serve's admin listener (its --admin-listen): unix:/path or 127.0.0.1:PORT")
	dataDir := fs.String("data-dir", "", "rotate offline: the directory of a stopped serve's data file")
	cfgPath := fs.String("config", "", "configuration file naming master_key_file / old_master_key_file (offline)")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long (online)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("keys rotate: unexpected argument %q", fs.Arg(0))}
	}
	var res ops.RotateResult
	if *dataDir == "" {
		token := adminToken()
		if token == "" {
			return errors.New("keys rotate: CHECKIN_ADMIN_TOKEN is not set: it must hold the token serve was started with")
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		var err error
		if res, err = ops.RotateKeys(ctx, *addr, token); err != nil {
			return err
		}
	} else {
		var c *config.Config
		if *cfgPath != "" {
			var err error
			if c, err = config.Load(*cfgPath); err != nil {
				return err
			}
		}
		ring, err := config.LoadKeyring(c, config.Getenv)
		if err != nil {
			return err
		}
		if ring == nil {
			return errors.New("keys rotate: no master key: set CHECKIN_MASTER_KEY to the new key and CHECKIN_MASTER_KEY_OLD to the old one")
		}
		s, err := boltstore.OpenWith(filepath.Join(*dataDir, "checkinbot.db"), boltstore.Options{Keyring: ring})
		if err != nil {
			return err
		}
		defer s.Close()
		if res.Rewrapped, err = s.RotateMasterKey(); err != nil {
			return err
		}
		if res.ByKey, err = s.MasterKeyIDs(); err != nil {
			return err
		}
	}
	var by []string
	for id, n := range res.ByKey {
		by = append(by, fmt.Sprintf("%s: %d", id, n))
	}
	sort.Strings(by)
	fmt.Fprintf(stdout, "re-wrapped %d data keys; keys by master key: %s\n", res.Rewrapped, strings.Join(by, ", "))
	if len(res.ByKey) > 1 {
		return errors.New("keys rotate: some data keys are still wrapped by another master key: run it again")
	}
	fmt.Fprintln(stdout, "the old master key is no longer needed by the data file (older backups still need it)")
	return nil
}
