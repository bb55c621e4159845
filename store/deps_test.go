package store_test

import (
	"os/exec"
	"strings"
	"testing"
)

// bbolt is the module path of the bbolt engine's library; every package
// under it counts.
const bbolt = "go.etcd.io/bbolt"

// TestOnlyTheEngineImportsBbolt keeps the storage contract engine-free:
// package store, the conformance suite and the ports that use storage
// (bot, webhook) must not depend on bbolt, directly or through anything
// they import, or a second engine could not be built without it. The bbolt
// engine itself is listed as the control: it must depend on bbolt, which
// shows the check sees a dependency where there is one.
func TestOnlyTheEngineImportsBbolt(t *testing.T) {
	const mod = "github.com/checkinbot/checkinbot/"
	want := map[string]bool{ // package → depends on bbolt
		mod + "store":           false,
		mod + "store/storetest": false,
		mod + "escalation":      false,
		mod + "dialogs":         false,
		mod + "bot":             false,
		mod + "webhook":         false,
		mod + "store/boltstore": true,
	}
	args := []string{"list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}"}
	for pkg := range want {
		args = append(args, pkg)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, deps := fields[0], fields[1:]
		var via []string
		for _, d := range deps {
			if d == bbolt || strings.HasPrefix(d, bbolt+"/") {
				via = append(via, d)
			}
		}
		wantBolt, ok := want[pkg]
		if !ok {
			t.Errorf("go list reported %s, which was not asked for", pkg)
			continue
		}
		seen[pkg] = true
		switch {
		case wantBolt && len(via) == 0:
			t.Errorf("%s does not depend on %s: the check cannot see dependencies (go list output changed?)", pkg, bbolt)
		case !wantBolt && len(via) > 0:
			t.Errorf("%s depends on %s (%s): only store/boltstore may; move the code that needs it there",
				pkg, bbolt, strings.Join(via, ", "))
		}
	}
	for pkg := range want {
		if !seen[pkg] {
			t.Errorf("go list did not report %s", pkg)
		}
	}
}
