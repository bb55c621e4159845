package bot

import (
	"context"
	"errors"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// Retention (issue 13 item 5; dialogs/retention.go holds the rules). A
// sweep reads the registrants page by page in short read transactions and,
// for each one the rules want told or removed, runs a KindRetention input
// in that citizen's turn like any other event: the engine decides again on
// the state read inside the write, the notice goes through the durable send
// queue, and a removal is the same one-transaction erase as a citizen's own
// delete (due index, registrant index, roll-call memberships, audit), with
// registration.withdrawn recorded for the embassy in that transaction.
//
// The sweep runs on its own goroutine, not in the scheduler's pass, so a
// sweep over a million registrants never delays a due check-in. It logs
// nothing but failures: how many were told or removed would move with the
// registrations it must keep (an open case, a duress case), and the log
// must not tell those apart.

// RetentionStore is what the sweep needs beyond Store: the registrants in
// pages. *boltstore.Store implements it.
type RetentionStore interface {
	// RegistrantsAfter returns up to limit registrants whose keys follow
	// after ("" for the first), in key order, the key to continue after
	// ("" at the end), and how many records in the range it could not
	// read (skipped, so one damaged record stops nobody else's retention).
	RegistrantsAfter(after string, limit int) (page []dialogs.State, next string, unreadable int, err error)
}

// ErrNoRetention: the runner's store cannot list registrants in pages.
var ErrNoRetention = errors.New("bot: this store cannot page through registrants for retention")

// RetentionEvery is how often RunRetention sweeps. Retention periods are
// days to months, so a removal six hours late is nothing (and a notice's
// date is never less than the notice period away, however late it goes),
// while a sweep costs one decode per registrant: about 39 µs each
// (BenchmarkRegistrantsAfterSweep), 40 s of one core per sweep at a
// million registrants, so four sweeps a day rather than 24.
const RetentionEvery = 6 * time.Hour

// retentionPage is how many registrants one read transaction returns.
const retentionPage = 1000

// MaxRetentionActions bounds the notices and removals of one sweep, so that
// turning retention on in a deployment with years of registrants spreads
// its notices over sweeps (each still gets the full notice period) instead
// of filling the channels' queues in one go: 5,000 notices are under three
// minutes of Telegram's 30 messages a second, at reminder priority.
const MaxRetentionActions = 5000

// maxRetentionActions is MaxRetentionActions; tests lower it.
var maxRetentionActions = MaxRetentionActions

// RetentionReport is what one sweep did.
type RetentionReport struct {
	Read int // registrants read
	// Unreadable: records skipped because they could not be read (logged;
	// `checkinbot check` names them).
	Unreadable int
	Notices    int // notices proposed and committed
	Removals   int // removals proposed and committed
	// More: the sweep stopped at MaxRetentionActions; the next one goes on.
	More bool
}

// SweepRetention runs one retention pass at the runner's clock. With the
// engine's Policy.Retention all zero it reads nothing.
func (r *Runner) SweepRetention(ctx context.Context) (RetentionReport, error) {
	var rep RetentionReport
	pol := r.Engine.Policy.Retention
	if pol == (dialogs.Retention{}) {
		return rep, nil
	}
	rs, ok := r.Store.(RetentionStore)
	if !ok {
		return rep, ErrNoRetention
	}
	var errs []error
	after := ""
	for {
		page, next, unreadable, err := rs.RegistrantsAfter(after, retentionPage)
		if err != nil {
			return rep, err
		}
		rep.Unreadable += unreadable
		for _, st := range page {
			rep.Read++
			step := pol.Step(st, r.Now())
			if step == dialogs.RetentionKeep {
				continue
			}
			if rep.Notices+rep.Removals >= maxRetentionActions {
				rep.More = true
				return rep, errors.Join(errs...)
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			err := r.run(ctx, st.Key, "", dialogs.Input{Kind: dialogs.KindRetention, Key: st.Key},
				store.Envelope{Channel: st.Channel, Address: st.Address, Scheduled: true})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if step == dialogs.RetentionNotify {
				rep.Notices++
			} else {
				rep.Removals++
			}
		}
		if next == "" {
			if rep.Unreadable > 0 {
				r.Log.Error("retention skipped registrant records it cannot read; run checkinbot check", "unreadable", rep.Unreadable)
			}
			return rep, errors.Join(errs...)
		}
		after = next
	}
}

// RunRetention sweeps at start and every RetentionEvery until ctx ends.
// Serve runs it beside the scheduler.
func (r *Runner) RunRetention(ctx context.Context) error {
	for {
		if _, err := r.SweepRetention(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error("retention sweep failed; it runs again later", "err", err)
		}
		t := time.NewTimer(RetentionEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
