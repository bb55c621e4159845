package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// checkCmd is `checkinbot check FILE`: the offline consistency check of a
// data file (DESIGN §8). It prints one line per problem, naming records by
// id or pseudonym only, and fails when there is any; a file it cannot
// check at all (locked by a running serve, empty, foreign, truncated) is
// one error line.
func checkCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError{"usage: checkinbot check FILE"}
	}
	path := args[0]
	// With the master key in the environment, sealed records are opened
	// and checked too; without it, their structure only.
	ring, err := config.LoadKeyring(nil, config.Getenv)
	if err != nil {
		return err
	}
	rep, err := boltstore.CheckWith(path, boltstore.Options{Keyring: ring})
	if err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "%s: %s\n", path, p)
	}
	if n := len(rep.Problems); n > 0 {
		return fmt.Errorf("check: %s: data file is corrupt: %d problem(s) found (listed above); "+
			"do not serve from it: restore it from a backup", path, n)
	}
	var counts []string
	for k, n := range rep.Counts {
		counts = append(counts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(counts)
	fmt.Fprintf(stdout, "%s: ok (%s)\n", path, strings.Join(counts, ", "))
	return nil
}
