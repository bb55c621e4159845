package checkinbot_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/checkinbot/checkinbot"

// deps lists the packages of this module that pkg imports, directly or not
// (tests excluded), as `go list` sees them.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var ours []string
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == pkg:
		case p == module || strings.HasPrefix(p, module+"/"):
			ours = append(ours, strings.TrimPrefix(strings.TrimPrefix(p, module), "/"))
		case strings.HasPrefix(p, "go.etcd.io/bbolt"):
			ours = append(ours, "bbolt")
		}
	}
	return ours
}

// imports lists what pkg imports directly.
func imports(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestLayering pins the shape docs/architecture.md draws: the domain
// packages import nothing of ours, the engine only the domain, channels
// and delivery never the storage engine. An import that breaks it fails
// here, naming the package.
func TestLayering(t *testing.T) {
	for _, c := range []struct {
		pkg     string
		allowed []string // every package of ours it may depend on
	}{
		{"escalation", nil},
		{"errs", nil},
		{"store/seal", nil}, // envelope encryption: the standard library only
		{"dialogs", []string{"escalation", "errs"}},
		{"locales", []string{"", "dialogs", "escalation", "errs"}},
	} {
		for _, d := range deps(t, module+"/"+c.pkg) {
			if !slices.Contains(c.allowed, d) {
				t.Errorf("%s imports %q; it may import only %q", c.pkg, d, c.allowed)
			}
		}
	}
	// The storage engine (bbolt) is reached only by the packages that wire
	// it; channels, delivery and the runner see storage through ports.
	if !slices.Contains(deps(t, module+"/store/boltstore"), "bbolt") {
		t.Fatal("store/boltstore does not appear to depend on bbolt: this test cannot see dependencies")
	}
	for _, pkg := range []string{"store", "store/storetest", "bot", "bot/telegram", "bot/whatsapp", "bot/terminal", "webhook", "dialogs", "escalation", "ops"} {
		for _, d := range deps(t, module+"/"+pkg) {
			if d == "bbolt" || d == "store/boltstore" {
				t.Errorf("%s depends on %s: only app, cmd and the engine's own tests may", pkg, d)
			}
		}
	}
	for _, pkg := range []string{"bot/telegram", "bot/whatsapp", "bot/terminal", "webhook"} {
		for _, i := range imports(t, module+"/"+pkg) {
			if strings.HasPrefix(i, module+"/store") {
				t.Errorf("%s imports %s: channels never touch storage; delivery sees it only through webhook.Outbox", pkg, i)
			}
		}
	}
}
