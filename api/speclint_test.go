package api_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The spec is linted by an independent tool, Redocly CLI, pinned by the
// lockfile in docs/testdata/lint (npm ci there; scripts/test does it), with
// the rules in docs/testdata/lint/redocly.yaml: recommended-strict, where a
// warning is an error. kin-openapi in the harness checks responses against
// the spec; this checks the spec itself (duplicate operation ids, dangling
// references, path parameters that are not declared, bad schemas).

const (
	specPath = "../docs/api.yaml"
	lintDir  = "../docs/testdata/lint"
)

// redocly returns a function that lints one file and reports its output
// and exit status. Without node or the installed CLI the test skips, and
// fails under CI=true, as the webhook interop tests do.
func redocly(t *testing.T) func(spec string) (string, error) {
	t.Helper()
	dir, err := filepath.Abs(lintDir)
	if err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(dir, "node_modules", "@redocly", "cli", "bin", "cli.js")
	node, err := exec.LookPath("node")
	_, modErr := os.Stat(cli)
	if err != nil || modErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node or @redocly/cli missing (run: npm ci --prefix docs/testdata/lint)")
		}
		t.Skip("node or @redocly/cli missing (npm ci --prefix docs/testdata/lint)")
	}
	return func(spec string) (string, error) {
		cmd := exec.Command(node, cli, "lint", "--config", filepath.Join(dir, "redocly.yaml"), spec)
		// No telemetry, no update check: the lint never touches the network.
		cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1", "CI=true")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// TestAPISpecLints: docs/api.yaml passes redocly lint with no problem at
// all (warnings included).
func TestAPISpecLints(t *testing.T) {
	lint := redocly(t)
	if out, err := lint(specPath); err != nil {
		t.Fatalf("redocly lint docs/api.yaml: %v\n%s", err, out)
	}
}

// TestAPISpecLintCatchesBreakage shows the lint can fail: each mutation of
// a temporary copy of docs/api.yaml must be refused, naming the rule that
// caught it. A mutation whose anchor text is gone from the spec fails the
// test, so the table has to follow the spec rather than silently pass.
func TestAPISpecLintCatchesBreakage(t *testing.T) {
	lint := redocly(t)
	orig, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ name, from, to, rule string }{
		{"duplicate operationId", "operationId: getCase", "operationId: listCases", "operation-operationId-unique"},
		{"dangling $ref", `{$ref: "#/components/schemas/Case"}`, `{$ref: "#/components/schemas/NoSuchCase"}`, "no-unresolved-refs"},
		{"undeclared path parameter", "/v1/cases/{id}:", "/v1/cases/{case_id}:", "path-parameters-defined"},
		{"unknown schema type", "schema: {type: string, pattern", "schema: {type: text, pattern", "struct"},
		{"misspelt top-level key", "\nservers:", "\nserver:", "struct"},
	} {
		t.Run(m.name, func(t *testing.T) {
			if !strings.Contains(string(orig), m.from) {
				t.Fatalf("docs/api.yaml no longer contains %q: update this mutation", m.from)
			}
			broken := filepath.Join(t.TempDir(), "api.yaml")
			if err := os.WriteFile(broken, []byte(strings.Replace(string(orig), m.from, m.to, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := lint(broken)
			if err == nil {
				t.Fatalf("redocly lint accepted the spec with %s\n%s", m.name, out)
			}
			if !strings.Contains(out, m.rule) {
				t.Errorf("redocly lint refused the spec with %s, but not by rule %q:\n%s", m.name, m.rule, out)
			}
		})
	}
}
