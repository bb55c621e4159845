package api_test

import (
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// fencedBlock matches a fenced code block and its info string (as
// cmd/checkinbot's docs tests do).
var fencedBlock = regexp.MustCompile("(?ms)^```([a-z]*)[^\n]*\n(.*?)^```")

// TestEmbassyGuideRuns runs docs/embassy-guide.md's shell blocks, in
// order, in one bash with API and TOKEN set, against the running program:
// the guide's walk-through must work literally, and leave the case
// resolved, a roll call running and every event acknowledged.
func TestEmbassyGuideRuns(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	md, err := os.ReadFile("../docs/embassy-guide.md")
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	n := 0
	for _, m := range fencedBlock.FindAllStringSubmatch(string(md), -1) {
		if m[1] == "sh" || m[1] == "bash" {
			script.WriteString(m[2])
			n++
		}
	}
	if n < 5 {
		t.Fatalf("the guide has %d shell blocks; the walk-through is gone", n)
	}
	w := newWorld(t)
	overdue := seedRegistrants(t, w, 1)[0] // my-mekong's, overdue in Siem Reap
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Env = append(os.Environ(), "API="+w.base+"/v1", "TOKEN="+tokMY)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the guide's commands failed: %v\n%s", err, out)
	}
	t.Logf("output:\n%s", out)
	if !strings.Contains(string(out), "resolved") || !strings.Contains(string(out), "duress.triggered") {
		t.Errorf("the output does not show the resolved case and the duress event:\n%s", out)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(out)), "\n0") {
		t.Errorf("after acknowledging, unacked events remain:\n%s", out)
	}
	if !strings.Contains(string(out), overdue.id+" overdue since ") || strings.Contains(string(out), overdue.key) {
		t.Errorf("the overdue list does not show %s (by its pseudonymous id only):\n%s", overdue.id, out)
	}
	// The roll call of the guide asked siti, the one citizen of
	// my-mekong in Phnom Penh.
	rc := regexp.MustCompile(`(?m)^rc_[a-z2-7]{16}$`).FindString(string(out))
	if rc == "" {
		t.Fatalf("the guide's roll call printed no id:\n%s", out)
	}
	var report rollCallOut
	w.must(http.StatusOK, "GET", "/v1/rollcalls/"+rc, tokMY, nil).decode(t, &report)
	if report.RollCall.Counts.Members != 1 || !strings.Contains(string(out), `"pending":1`) ||
		!regexp.MustCompile(`(?m)^`+w.pseudonymOf("my-mekong")+`$`).MatchString(string(out)) {
		t.Errorf("the guide's roll call: %+v", report.RollCall)
	}
	var l caseList
	w.must(http.StatusOK, "GET", "/v1/cases?status=resolved", tokMY, nil).decode(t, &l)
	if len(l.Cases) != 1 || l.Cases[0].Outcome != "assisted" || len(l.Cases[0].Notes) != 2 {
		t.Errorf("after the guide: %+v", l.Cases)
	}
}
