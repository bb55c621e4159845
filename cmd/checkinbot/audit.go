package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// auditCmd is `checkinbot audit verify [--config FILE] [--expect-head
// SEQ:HASH] FILE`: the offline, read-only check of a data file's audit
// trail (a stopped service's file or a backup). The master key comes as
// for check and backup (CHECKIN_MASTER_KEY or master_key_file, and the
// old one if given): it unwraps the file's service key, from which the
// audit key is derived, so the current master key verifies the whole
// trail across rotations. Exit status 0: the trail holds; 1: it does not
// (the line names the first bad entry and why), the key does not open the
// file (the message names the key it expects) or the file cannot be read;
// 2: usage.
func auditCmd(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: checkinbot audit verify [--config FILE] [--expect-head SEQ:HASH] FILE"
	if len(args) == 0 || args[0] != "verify" {
		return usageError{usage}
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	expectFlag := fs.String("expect-head", "", "a head noted earlier (serve's start log: audit head … expect_head=SEQ:HASH): fail if the trail no longer reaches it unchanged")
	cfgPath := fs.String("config", "", "configuration file naming master_key_file / old_master_key_file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{usage}
	}
	path := fs.Arg(0)
	var expect *store.AuditHead
	if *expectFlag != "" {
		h, err := store.ParseAuditHead(*expectFlag)
		if err != nil {
			return usageError{"--expect-head: " + err.Error()}
		}
		expect = &h
	}
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
	rep, err := boltstore.VerifyAuditFile(path, boltstore.Options{Keyring: ring}, expect)
	var ae *store.AuditError
	if errors.As(err, &ae) {
		fmt.Fprintf(stdout, "%s: %v\n", path, ae)
		return fmt.Errorf("audit verify: %s: the audit trail does not verify: entry %d %s (above)", path, ae.Seq, ae.Problem)
	}
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	var notes []string
	if rep.Checkpoint > 0 {
		notes = append(notes, fmt.Sprintf("compacted up to entry %d", rep.Checkpoint))
	}
	if rep.Keyed {
		notes = append(notes, fmt.Sprintf("MACs checked on %d entries", rep.Signed))
		if rep.Legacy > 0 {
			notes = append(notes, fmt.Sprintf("%d of them with the audit key of before v2, from the master key", rep.Legacy))
		}
		if rep.LegacyUnchecked > 0 {
			notes = append(notes, fmt.Sprintf("%d earlier entries signed with a master key not given (before v2): hash chain only, anchored by the later MACs", rep.LegacyUnchecked))
		}
		if rep.Unsigned > 0 {
			notes = append(notes, fmt.Sprintf("%d earlier entries written without a key: hash chain only", rep.Unsigned))
		}
	} else {
		notes = append(notes, "no key ("+config.EnvMasterKey+" unset): hash chain only, MACs not checked")
	}
	if expect != nil {
		notes = append(notes, "reaches the expected head "+expect.String())
	}
	fmt.Fprintf(stdout, "%s: audit trail ok: %d entries, head %s (%s)\n", path, rep.Entries, rep.Head, strings.Join(notes, "; "))
	return nil
}
