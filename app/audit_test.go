package app_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/checkinbot/checkinbot/app"
	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/internal/testkit/apptest"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// TestAuditHeadLoggedAtStart: the program logs the audit trail's head at
// every start, in the form `audit verify --expect-head` takes, and the
// head logged at a restart verifies against the data file (with the key
// the program was given).
func TestAuditHeadLoggedAtStart(t *testing.T) {
	dir := t.TempDir()
	start := func(logs *bytes.Buffer) *apptest.Program {
		return apptest.MustRunApp(t, func(o *app.Options) {
			o.DataDir = dir
			o.Log = slog.New(slog.NewTextHandler(&syncWriter{w: logs}, nil))
		})
	}
	line := regexp.MustCompile(`msg="audit head" seq=(\d+) hash=("?\w*"?) expect_head=(\S*)`)
	var first bytes.Buffer
	p := start(&first)
	u := fakeapi.User{ID: 7101, Lang: "en"}
	for _, text := range append(registration, "ok") {
		p.Say(u, text)
	}
	p.WaitFor("every reply", func() bool { return len(p.API.Sent(u.ID)) >= len(registration)+1 })
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if m := line.FindStringSubmatch(first.String()); m == nil || m[1] != "0" { // read once the program stopped writing
		t.Fatalf("a new file's start logs no empty head:\n%s", first.String())
	}
	var second bytes.Buffer
	start(&second).Stop()
	m := line.FindStringSubmatch(second.String())
	if m == nil || m[1] == "0" {
		t.Fatalf("the restart logs no head:\n%s", second.String())
	}
	head, err := store.ParseAuditHead(m[3])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := boltstore.VerifyAuditFile(filepath.Join(dir, "checkinbot.db"), boltstore.Options{AuditKey: testkit.AuditKey}, &head); err != nil {
		t.Errorf("the logged head %v does not verify: %v", head, err)
	}
}
