package boltstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// mustOpen opens a store in a fresh temp dir and closes it after the test.
func mustOpen(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(filepath.Join(tb.TempDir(), "checkinbot.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// result builds a handler returning a fixed result on top of prev.
func result(mod func(st *dialogs.State, r *dialogs.Result)) store.Handler {
	return func(prev dialogs.State, _ bool) dialogs.Result {
		r := dialogs.Result{State: prev}
		mod(&r.State, &r)
		return r
	}
}

func TestProcessCommitsEverythingTogether(t *testing.T) {
	s := mustOpen(t)
	due := t0.Add(24 * time.Hour)
	out, err := s.Process("k1", "telegram:1", t0, result(func(st *dialogs.State, r *dialogs.Result) {
		st.Key, st.Status, st.Timer = "k1", dialogs.StatusActive, due
		r.Escalations = []dialogs.Escalation{{Type: dialogs.EventDuressTriggered, Severity: dialogs.SeverityCritical,
			DoNotContact: true, EmbassyID: "my-mekong", Case: dialogs.CaseOpen}}
		r.Audit = []string{"checkin"}
	}))
	if err != nil || out.Duplicate {
		t.Fatalf("process: %v dup=%v", err, out.Duplicate)
	}
	if len(out.Events) != 1 || out.Events[0].CaseID == "" || out.Events[0].CaseSeq != 1 ||
		!strings.HasPrefix(out.Events[0].ID, "evt_") || !out.Events[0].DoNotContact {
		t.Fatalf("events %+v", out.Events)
	}
	st, found, err := s.Registrant("k1")
	if err != nil || !found || st.OpenCase != out.Events[0].CaseID {
		t.Fatalf("registrant %+v found=%v err=%v", st, found, err)
	}
	keys, _ := s.Due(due)
	if len(keys) != 1 || keys[0] != "k1" {
		t.Errorf("due index %v", keys)
	}
	if keys, _ := s.Due(due.Add(-time.Second)); len(keys) != 0 {
		t.Errorf("due before its time: %v", keys)
	}
	box, _ := s.Outbox()
	if len(box) != 1 || box[0].ID != out.Events[0].ID {
		t.Errorf("outbox %+v", box)
	}
	c, found, _ := s.CaseByID(out.Events[0].CaseID)
	if !found || c.Status != "open" || c.Seq != 1 {
		t.Errorf("case %+v", c)
	}
	n, err := s.VerifyAudit()
	if err != nil || n != 1 { // one neutral entry; the escalation only in its reason (audit.go)
		t.Errorf("audit: %d entries, %v", n, err)
	}

	// The same inbound id again changes nothing.
	out, err = s.Process("k1", "telegram:1", t0, result(func(st *dialogs.State, r *dialogs.Result) {
		t.Error("handler ran for a duplicate")
	}))
	if err != nil || !out.Duplicate {
		t.Errorf("duplicate: %v %v", err, out.Duplicate)
	}

	// A second escalation joins the open case; moving the timer moves the index.
	next := due.Add(time.Hour)
	out, _ = s.Process("k1", "telegram:2", t0, result(func(st *dialogs.State, r *dialogs.Result) {
		st.Timer = next
		r.Escalations = []dialogs.Escalation{{Type: dialogs.EventCaseUpdated, Case: dialogs.CaseAppend}}
	}))
	if out.Events[0].CaseSeq != 2 || out.Events[0].CaseID != st.OpenCase {
		t.Errorf("append: %+v", out.Events[0])
	}
	if keys, _ := s.Due(due); len(keys) != 0 {
		t.Errorf("old due entry left behind: %v", keys)
	}
	if at, ok, _ := s.NextTimer(); !ok || !at.Equal(next) {
		t.Errorf("next timer %v %v", at, ok)
	}
}

func TestProcessRollsBackOnError(t *testing.T) {
	s := mustOpen(t)
	if _, err := s.Process("k1", "", t0, result(func(st *dialogs.State, r *dialogs.Result) {
		st.Status, st.Timer = dialogs.StatusActive, t0
	})); err != nil {
		t.Fatal(err)
	}
	// Corrupt the record: the next event must fail and change nothing.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRegistrants).Put([]byte("k1"), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Process("k1", "telegram:9", t0, result(func(st *dialogs.State, r *dialogs.Result) {
		r.Escalations = []dialogs.Escalation{{Type: dialogs.EventSOSRaised, Case: dialogs.CaseOpen}}
	}))
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("want a corrupt-record error, got %v", err)
	}
	if box, _ := s.Outbox(); len(box) != 0 {
		t.Errorf("escalation recorded without its state change: %+v", box)
	}
}

func TestEraseRemovesRegistrantAndTimer(t *testing.T) {
	s := mustOpen(t)
	s.Process("k1", "", t0, result(func(st *dialogs.State, r *dialogs.Result) { st.Timer = t0 }))
	s.Process("k1", "", t0, result(func(st *dialogs.State, r *dialogs.Result) { r.Erase = true }))
	if _, found, _ := s.Registrant("k1"); found {
		t.Error("registrant survived erase")
	}
	if _, ok, _ := s.NextTimer(); ok {
		t.Error("timer survived erase")
	}
}

func TestAuditTamperIsDetected(t *testing.T) {
	s := mustOpen(t)
	for i := 0; i < 3; i++ {
		s.Process("k1", "", t0, result(func(st *dialogs.State, r *dialogs.Result) { r.Audit = []string{"checkin"} }))
	}
	if n, err := s.VerifyAudit(); err != nil || n != 3 {
		t.Fatalf("audit %d %v", n, err)
	}
	s.db.Update(edit(2))
	if _, err := s.VerifyAudit(); err == nil || !strings.Contains(err.Error(), "entry 2: edited") {
		t.Errorf("tampering not detected: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("ErrLocked", func(t *testing.T) {
		path := filepath.Join(dir, "locked.db")
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = Open(path)
		if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), path) {
			t.Errorf("second open: %v", err)
		}
	})
	t.Run("ErrCorrupt", func(t *testing.T) {
		path := filepath.Join(dir, "corrupt.db")
		os.WriteFile(path, []byte(strings.Repeat("this is not a database ", 1000)), 0o600)
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("corrupt file: %v", err)
		}
	})
	t.Run("ErrNewerSchema", func(t *testing.T) {
		path := filepath.Join(dir, "newer.db")
		s, _ := Open(path)
		s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion+1)) })
		s.Close()
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Errorf("newer schema: %v", err)
		}
	})
	t.Run("OKReopen", func(t *testing.T) {
		path := filepath.Join(dir, "reopen.db")
		s, _ := Open(path)
		s.Process("k1", "", t0, result(func(st *dialogs.State, r *dialogs.Result) { st.Lang = "ms" }))
		s.Close()
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if st, found, _ := s.Registrant("k1"); !found || st.Lang != "ms" {
			t.Errorf("state lost across reopen: %+v", st)
		}
	})
}

// TestDeliveryLifecycle: routing, per-case order, recording and pruning.
func TestDeliveryLifecycle(t *testing.T) {
	s := mustOpen(t)
	for i := 0; i < 2; i++ {
		s.Process("k1", "", t0, result(func(st *dialogs.State, r *dialogs.Result) {
			r.Escalations = []dialogs.Escalation{{Type: dialogs.EventSOSRaised, Severity: dialogs.SeverityCritical, Case: dialogs.CaseOpen}}
		}))
	}
	targets := func(store.Event) []store.Target { return []store.Target{{Endpoint: "e1", Critical: true}} }
	if n, err := s.Route(t0, targets); err != nil || n != 2 {
		t.Fatalf("routed %d, %v", n, err)
	}
	if n, _ := s.Route(t0, targets); n != 0 {
		t.Errorf("routed again: %d", n)
	}
	due, _, _ := s.DueDeliveries(t0)
	if len(due) != 1 || due[0].Seq != 1 || len(due[0].Body) == 0 {
		t.Fatalf("due %+v: the second event of the case must wait for the first", due)
	}
	if err := s.RecordAttempts(t0, []store.Attempt{{Endpoint: "e1", Seq: 1, Outcome: escalation.AttemptDelivered}}); err != nil {
		t.Fatal(err)
	}
	due, _, _ = s.DueDeliveries(t0)
	if len(due) != 1 || due[0].Seq != 2 {
		t.Fatalf("after the first: due %+v", due)
	}
	s.RecordAttempts(t0, []store.Attempt{{Endpoint: "e1", Seq: 2, Outcome: escalation.AttemptFailed, Err: "HTTP 503", NextAt: t0.Add(time.Minute), Secondary: "e1/secondary"}})
	pending, _ := s.Pending()
	if len(pending) != 2 {
		t.Fatalf("pending %+v, want the retry and its secondary copy", pending)
	}
	if n, _ := s.Backlog(); n != 2 {
		t.Errorf("backlog %d", n)
	}
	s.RecordAttempts(t0, []store.Attempt{{Endpoint: "e1", Seq: 2, Outcome: escalation.AttemptDelivered}, {Endpoint: "e1/secondary", Seq: 2, Outcome: escalation.AttemptDelivered}})
	if n, err := s.Prune(t0.Add(time.Hour)); err != nil || n != 2 {
		t.Errorf("pruned %d events, %v", n, err)
	}
	if box, _ := s.Outbox(); len(box) != 0 {
		t.Errorf("outbox after prune: %d", len(box))
	}
	if ds, _ := s.Delivered(); len(ds) != 0 {
		t.Errorf("archive after prune: %d", len(ds))
	}
	// Inbound ids older than the cutoff are forgotten; newer ones kept.
	s.Process("k2", "telegram:old", t0, result(func(*dialogs.State, *dialogs.Result) {}))
	s.Process("k2", "telegram:new", t0.Add(2*time.Hour), result(func(*dialogs.State, *dialogs.Result) {}))
	s.Prune(t0.Add(time.Hour))
	if out, _ := s.Process("k2", "telegram:new", t0, result(func(*dialogs.State, *dialogs.Result) {})); !out.Duplicate {
		t.Error("a recent inbound id was pruned")
	}
	if out, _ := s.Process("k2", "telegram:old", t0, result(func(*dialogs.State, *dialogs.Result) {})); out.Duplicate {
		t.Error("an old inbound id was kept")
	}
}
