package boltstore

import (
	"errors"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// TestSendRowsCommitWithTheStateChange: the replies of a result are in the
// send queue exactly when its state change is: a write that fails leaves
// neither.
func TestSendRowsCommitWithTheStateChange(t *testing.T) {
	s := mustOpen(t)
	env := &store.Envelope{Channel: "telegram", Address: "1", DeleteID: "55", DeleteBy: t0.Add(47 * time.Hour)}
	out, err := s.ProcessSend("k1", "telegram:u1", t0, env, result(func(st *dialogs.State, r *dialogs.Result) {
		st.Lang = "ms"
		r.Replies, r.Urgent, r.DeleteInbound = []dialogs.Reply{{Text: "one"}}, true, true
	}))
	if err != nil || len(out.Sends) != 1 || out.Purges != 1 {
		t.Fatalf("out %+v, err %v", out, err)
	}
	if it := out.Sends[0]; it.Address != "1" || !it.Urgent || it.Scheduled || it.UserKey != "k1" || it.Replies[0].Text != "one" {
		t.Errorf("item %+v", it)
	}
	// A failing write (here: the handler panics) leaves no row and no state.
	_, err = s.ProcessSend("k1", "telegram:u2", t0, env, func(dialogs.State, bool) dialogs.Result { panic("boom") })
	if !errors.Is(err, store.ErrBadEvent) {
		t.Fatalf("panic: %v, want ErrBadEvent", err)
	}
	items, _ := s.PendingSends("k1")
	rows, _ := s.PurgeRows()
	if len(items) != 1 || len(rows) != 1 || rows[0].MsgID != "55" || !rows[0].Inbound {
		t.Fatalf("after a failed write: %d items, rows %+v", len(items), rows)
	}
	// A store that cannot write is not ErrBadEvent.
	s.SetWriteFault(errors.New("no space left on device"))
	if _, err := s.ProcessSend("k1", "telegram:u3", t0, env, result(func(*dialogs.State, *dialogs.Result) {})); err == nil || errors.Is(err, store.ErrBadEvent) {
		t.Errorf("write fault: %v", err)
	}
	if err := s.AckSends([]store.SendAck{{Seq: items[0].Seq, UserKey: "k1"}}); err == nil {
		t.Error("an ack was written while writes fail")
	}
	s.SetWriteFault(nil)
	// Duplicate: nothing new.
	out, _ = s.ProcessSend("k1", "telegram:u1", t0, env, result(func(_ *dialogs.State, r *dialogs.Result) { r.Replies = []dialogs.Reply{{Text: "x"}} }))
	if !out.Duplicate || len(out.Sends) != 0 {
		t.Errorf("duplicate wrote %+v", out)
	}
}

// TestAcksAndPurges: per-citizen order, acks remove rows and remember
// sensitive ids, a purge request brings the citizen's rows forward (only
// theirs), and settled purges go.
func TestAcksAndPurges(t *testing.T) {
	s := mustOpen(t)
	for i, key := range []string{"a", "b", "a"} {
		if _, err := s.ProcessSend(key, "", t0.Add(time.Duration(i)*time.Second), &store.Envelope{Channel: "telegram", Address: key},
			result(func(_ *dialogs.State, r *dialogs.Result) { r.Replies = []dialogs.Reply{{Text: key, Sensitive: true}} })); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := s.PendingSends("a")
	all, _ := s.PendingSends("")
	if len(a) != 2 || a[0].Seq >= a[1].Seq || len(all) != 3 || !a[0].Sensitive() {
		t.Fatalf("a %+v, all %d", a, len(all))
	}
	later := t0.Add(time.Hour)
	var acks []store.SendAck
	for _, it := range all {
		acks = append(acks, store.SendAck{Seq: it.Seq, UserKey: it.UserKey, Remember: []store.PurgeRow{{Channel: "telegram", Address: it.Address,
			MsgID: it.UserKey + "-msg", Due: later, Deadline: t0.Add(47 * time.Hour)}}})
	}
	acks[1].Purge, acks[1].PurgeAt = true, t0 // the last of "a" (rows are in citizen order) asks for the purge
	if err := s.AckSends(acks); err != nil {
		t.Fatal(err)
	}
	if left, _ := s.PendingSends(""); len(left) != 0 {
		t.Errorf("%d rows left after their acks", len(left))
	}
	due, next, err := s.DuePurges(t0)
	if err != nil || len(due) != 2 || due[0].UserKey != "a" || due[1].UserKey != "a" || !next.Equal(later) {
		t.Fatalf("due %+v next %s err %v", due, next, err)
	}
	if err := s.SettlePurges(due[:1], []store.PurgeRow{func() store.PurgeRow { r := due[1]; r.Due, r.Tries = later.Add(time.Minute), 1; return r }()}); err != nil {
		t.Fatal(err)
	}
	rows, _ := s.PurgeRows()
	if len(rows) != 2 {
		t.Errorf("%d rows after settling one of three", len(rows))
	}
	if due, _, _ := s.DuePurges(later); len(due) != 1 || due[0].UserKey != "b" {
		t.Errorf("due at %s: %+v", later, due)
	}
}
