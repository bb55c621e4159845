package boltstore_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	bolt "go.etcd.io/bbolt"
)

// nopChannel accepts every reply.
type nopChannel struct{}

func (nopChannel) Send(context.Context, string, bot.Response) error { return nil }

// neutralScript is one citizen's session; "KW" is replaced by the duress
// keyword in one run and by other words in the other, as the transcripts
// compare a covert action with a real one (DESIGN §3, keyword-blind).
// It covers a check-in, the keyword alone, a covert stop, a restart, a
// covert delete and what a captor tries afterwards.
var neutralScript = []string{
	"/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip", "24h", "09:00", "blue mango", "blue mango", "1",
	"I am fine KW",
	"KW",
	"/stop KW", "yes",
	"/start",
	"ok",
	"/delete", "yes KW",
	"/start", "/mydata", "ok",
}

// auditSession runs the script with kw through the real engine, runner
// and bbolt store (with an audit key) and returns the audit trail and the
// raw bytes of every stored audit entry and head record.
func auditSession(t *testing.T, kw string) ([]store.AuditEntry, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := boltstore.OpenWith(path, boltstore.Options{AuditKey: testkit.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	r := testkit.RunnerOn(t, s)
	clock := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	r.Now = func() time.Time { return clock }
	r.Register("telegram", nopChannel{})
	for _, text := range neutralScript {
		clock = clock.Add(time.Minute)
		if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: "4242",
			Kind: dialogs.KindText, Text: strings.ReplaceAll(text, "KW", kw)}); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := s.Audit()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyAudit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var raw bytes.Buffer
	if err := db.View(func(tx *bolt.Tx) error {
		for _, k := range []string{"audit_head", "audit_head_mac"} {
			raw.Write(tx.Bucket([]byte("meta")).Get([]byte(k)))
		}
		return tx.Bucket([]byte("audit")).ForEach(func(k, v []byte) error {
			raw.Write(k)
			raw.Write(v)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return entries, raw.Bytes()
}

// TestAuditBlindToDuress: a session with duress (a keyword check-in, the
// keyword alone, a covert stop and a covert delete) and the same session
// without the keyword write the same audit entries in clear — the same
// number, actions, subjects, times and sealed lengths — while the sealed
// reasons do tell the embassy's auditor what happened. The stored audit
// bytes hold no event type, no "duress", no engine action and no keyword.
func TestAuditBlindToDuress(t *testing.T) {
	plain, plainRaw := auditSession(t, "green apple")
	duress, duressRaw := auditSession(t, "blue mango")
	reasons := func(es []store.AuditEntry) string {
		var b strings.Builder
		for _, e := range es {
			b.WriteString(e.Reason + "\n")
		}
		return b.String()
	}
	if !strings.Contains(reasons(duress), escalation.TypeDuressTriggered) || strings.Contains(reasons(plain), escalation.TypeDuressTriggered) {
		t.Fatalf("the comparison would prove nothing: plain reasons\n%s\nduress reasons\n%s", reasons(plain), reasons(duress))
	}
	if len(plain) != len(duress) {
		t.Errorf("%d entries without duress, %d with", len(plain), len(duress))
	}
	for i := range min(len(plain), len(duress)) {
		p, d := plain[i], duress[i]
		if p.Seq != d.Seq || p.Action != d.Action || p.Subject != d.Subject || !p.At.Equal(d.At) || len(p.Sealed) != len(d.Sealed) {
			t.Errorf("entry %d differs in clear:\n plain  %s %s %s %s sealed %d (%q)\n duress %s %s %s %s sealed %d (%q)", i,
				p.At.Format(time.TimeOnly), p.Action, p.Subject, "", len(p.Sealed), p.Reason,
				d.At.Format(time.TimeOnly), d.Action, d.Subject, "", len(d.Sealed), d.Reason)
		}
	}
	if len(plainRaw) != len(duressRaw) {
		t.Errorf("stored audit bytes: %d without duress, %d with", len(plainRaw), len(duressRaw))
	}
	secrets := []string{"duress", "blue mango", "mango", "checkin", "settings.keyword", "registration.created", "consent"}
	for _, typ := range escalation.AllTypes {
		secrets = append(secrets, string(typ))
	}
	for _, raw := range [][]byte{plainRaw, duressRaw} {
		for _, s := range secrets {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("the stored audit trail contains %q in clear", s)
			}
		}
	}
	t.Logf("%d entries; duress reasons:\n%s", len(duress), reasons(duress))
}
