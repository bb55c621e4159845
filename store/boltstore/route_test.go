package boltstore

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// TestRouteInBoundedBatches: a backlog is routed in several transactions
// of at most RouteBatch rows, each holding all of an event's rows, and
// every event gets every row once. (With the bound removed, this fails:
// one transaction of every row.)
func TestRouteInBoundedBatches(t *testing.T) {
	defer func(n int) { RouteBatch = n }(RouteBatch)
	RouteBatch = 5
	s := mustOpen(t)
	const events = 30
	for i := range events {
		s.Process(fmt.Sprintf("%064x", i%4), "", t0, result(func(_ *dialogs.State, r *dialogs.Result) {
			r.Escalations = []dialogs.Escalation{{Type: dialogs.EventCaseUpdated, Severity: dialogs.SeverityCritical, Case: dialogs.CaseOpen}}
		}))
	}
	// targets runs inside each write transaction: the routing mark
	// committed before it names the transaction.
	txOf := map[uint64]uint64{} // event seq → committed mark when routed
	seqOf := map[string]uint64{}
	targets := func(ev store.Event) []store.Target {
		var mark uint64
		s.db.View(func(tx *bolt.Tx) error {
			if v := tx.Bucket(bucketMeta).Get(keyRouted); len(v) == 8 {
				mark = binary.BigEndian.Uint64(v)
			}
			return nil
		})
		seq := seqOf[ev.ID]
		if seq == 0 {
			seq = uint64(len(seqOf) + 1)
			seqOf[ev.ID] = seq
		}
		txOf[seq] = mark
		out := []store.Target{{Endpoint: "emb-b"}, {Endpoint: "emb-a"}, {Endpoint: "emb-a/partner"}}
		return out[:1+int(seq%3)]
	}
	n, err := s.Route(t0, targets)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[uint64]int{} // mark → rows routed in that transaction
	want := 0
	for seq, mark := range txOf {
		rows[mark] += 1 + int(seq%3)
		want += 1 + int(seq%3)
	}
	if n != want || len(seqOf) != events {
		t.Fatalf("routed %d rows of %d events, want %d of %d", n, len(seqOf), want, events)
	}
	if len(rows) < want/RouteBatch {
		t.Errorf("%d rows in %d transactions: want at least %d", want, len(rows), want/RouteBatch)
	}
	for mark, r := range rows {
		if r > RouteBatch {
			t.Errorf("the transaction after mark %d wrote %d rows, more than %d", mark, r, RouteBatch)
		}
	}
	pending, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range pending {
		k := fmt.Sprintf("%s/%d", d.Endpoint, d.Seq)
		if seen[k] {
			t.Errorf("%s routed twice", k)
		}
		seen[k] = true
	}
	if len(pending) != want {
		t.Errorf("%d pending rows, want %d", len(pending), want)
	}
	if again, err := s.Route(t0, targets); err != nil || again != 0 {
		t.Errorf("routing again: %d rows, %v", again, err)
	}
}
