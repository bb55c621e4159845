package main

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// EnvMasterKey holds the master key (32 bytes, base64 or hex) the audit key
// is derived from.
//
// TODO(lead): when the enc branch lands, take the master key (and its key
// file) from its config/seal code: seal.MasterKey.Derive("audit") is the
// same derivation as auditKey here.
const EnvMasterKey = "CHECKIN_MASTER_KEY"

// getenvAudit is config.Getenv that also reads EnvMasterKey by its literal
// name, so the documentation test finds it.
func getenvAudit(name string) string {
	if name == EnvMasterKey {
		return os.Getenv("CHECKIN_MASTER_KEY")
	}
	return config.Getenv(name)
}

// auditKey derives the audit trail's key from the master key in the
// environment: HKDF-SHA256 with the info "checkinbot audit". It returns nil
// when the variable is unset; the error never repeats the variable's value.
func auditKey(getenv func(string) string) ([]byte, error) {
	s := strings.TrimSpace(getenv(EnvMasterKey))
	if s == "" {
		return nil, nil
	}
	for _, dec := range []func(string) ([]byte, error){hex.DecodeString,
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString} {
		if raw, err := dec(s); err == nil && len(raw) == 32 {
			return hkdf.Key(sha256.New, raw, nil, "checkinbot audit", boltstore.AuditKeySize)
		}
	}
	return nil, &config.SecretError{Var: EnvMasterKey, Reason: fmt.Sprintf("not 32 bytes in base64 or hex (%d characters given): make one with openssl rand -base64 32", len(s))}
}

// auditCmd is `checkinbot audit verify [--expect-head SEQ:HASH] FILE`: the
// offline, read-only check of a data file's audit trail (a stopped
// service's file or a backup). Exit status 0: the trail holds; 1: it does
// not (the line names the first bad entry and why) or the file cannot be
// read; 2: usage.
func auditCmd(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: checkinbot audit verify [--expect-head SEQ:HASH] FILE"
	if len(args) == 0 || args[0] != "verify" {
		return usageError{usage}
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	expectFlag := fs.String("expect-head", "", "a head noted earlier (serve's start log: audit head … expect_head=SEQ:HASH): fail if the trail no longer reaches it unchanged")
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
	key, err := auditKey(getenvAudit)
	if err != nil {
		return err
	}
	rep, err := boltstore.VerifyAuditFile(path, key, expect)
	var ae *store.AuditError
	if errors.As(err, &ae) {
		fmt.Fprintf(stdout, "%s: %v\n", path, ae)
		return fmt.Errorf("audit verify: %s: the audit trail does not verify: entry %d %s (above)", path, ae.Seq, ae.Problem)
	}
	if err != nil {
		return err
	}
	var notes []string
	if rep.Checkpoint > 0 {
		notes = append(notes, fmt.Sprintf("compacted up to entry %d", rep.Checkpoint))
	}
	if rep.Keyed {
		notes = append(notes, fmt.Sprintf("MACs checked on %d entries", rep.Signed))
		if rep.Unsigned > 0 {
			notes = append(notes, fmt.Sprintf("%d earlier entries written without a key: hash chain only", rep.Unsigned))
		}
	} else {
		notes = append(notes, "no key ("+EnvMasterKey+" unset): hash chain only, MACs not checked")
	}
	if expect != nil {
		notes = append(notes, "reaches the expected head "+expect.String())
	}
	fmt.Fprintf(stdout, "%s: audit trail ok: %d entries, head %s (%s)\n", path, rep.Entries, rep.Head, strings.Join(notes, "; "))
	return nil
}
