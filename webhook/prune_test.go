package webhook

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// stalledPrune is the real store whose Prune takes as long as the test
// says: it starts, then waits for release.
type stalledPrune struct {
	*boltstore.Store
	once             sync.Once
	started, release chan struct{}
}

func (p *stalledPrune) Prune(cutoff time.Time) (int, error) {
	p.once.Do(func() { close(p.started) })
	<-p.release
	return p.Store.Prune(cutoff)
}

// TestDeliveryDuringALongPrune: while a prune runs (here: for as long as
// the test holds it), a duress event recorded meanwhile is still delivered
// — pruning has its own goroutine, never the delivery round's. (With the
// prune back inside Round, this fails: the round waits for the prune and
// the event does not arrive.)
func TestDeliveryDuringALongPrune(t *testing.T) {
	s := &stalledPrune{Store: openStore(t), started: make(chan struct{}), release: make(chan struct{})}
	primary := newReceiver(t, [][]byte{key1})
	p := fastPolicy()
	p.KeepDelivered = time.Hour
	d := &Deliverer{Store: s, Policy: p, Endpoints: []Endpoint{
		{ID: "my-mekong", URL: primary.srv.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong"},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	var release sync.Once
	unblock := func() { release.Do(func() { close(s.release) }) }
	defer func() { unblock(); cancel(); <-done }()

	select {
	case <-s.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no prune started")
	}
	evs := record(t, s.Store, "a", esc(dialogs.EventDuressTriggered, dialogs.SeverityCritical, dialogs.CaseOpen))
	d.Nudge()
	deadline := time.Now().Add(10 * time.Second) // generous: a slow machine is not a failure
	for len(primary.received()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was not delivered while the prune ran: the round waits for it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := primary.received(); got[0].ID != evs[0].ID {
		t.Errorf("delivered %s, want %s", got[0].ID, evs[0].ID)
	}
	select {
	case <-s.release:
		t.Error("the prune ended before the delivery: the test proved nothing")
	default:
	}
	unblock()
}
