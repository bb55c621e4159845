package webhook

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/store"
)

// docExample is a "### `type`" heading followed, before the next heading,
// by a json block.
var docExample = regexp.MustCompile("(?s)### `([a-z.]+)`\n(?:[^#]|#[^#])*?```json\n(.*?)\n```")

// TestDocExamplesMatchSchema: every example body in docs/webhooks.md is
// a real event of the type its heading names, and every one — plus a
// heartbeat made by the store — validates against
// docs/webhook-event.schema.json under ajv, an independent validator.
func TestDocExamplesMatchSchema(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "webhooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	types := map[string]bool{}
	for _, m := range docExample.FindAllStringSubmatch(string(doc), -1) {
		var ev store.Event
		dec := json.NewDecoder(strings.NewReader(m[2]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Errorf("example %s does not decode as an event: %v", m[1], err)
			continue
		}
		if ev.Type != m[1] || ev.Version != store.EventVersion || !strings.HasPrefix(ev.ID, "evt_") {
			t.Errorf("example under %s: type %s version %d id %s", m[1], ev.Type, ev.Version, ev.ID)
		}
		types[ev.Type] = true
		var compact bytes.Buffer
		json.Compact(&compact, []byte(m[2]))
		lines = append(lines, compact.String())
	}
	if len(types) < 10 {
		t.Errorf("docs/webhooks.md has examples for %d types, want every delivered type", len(types))
	}
	s := openStore(t)
	if _, err := s.Heartbeat("my-mekong", "my-mekong", time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	box, _ := s.Outbox()
	hb, _ := json.Marshal(box[0])
	lines = append(lines, string(hb))

	dir, _ := filepath.Abs(filepath.Join("testdata", "interop"))
	node, err := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "ajv"))
	if err != nil || modErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node or ajv missing (run: npm ci --prefix webhook/testdata/interop)")
		}
		t.Skip("node or ajv missing")
	}
	cmd := exec.Command(node, filepath.Join(dir, "validate-schema.js"), filepath.Join("..", "docs", "webhook-event.schema.json"))
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("schema validation failed: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}
