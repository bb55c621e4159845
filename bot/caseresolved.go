package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// CaseResolver is a store that records an officer's resolution of a case
// and the engine's step for its registrant in one transaction
// (boltstore.Store); the runner needs it to resolve cases.
type CaseResolver interface {
	CaseByID(id string) (store.Case, bool, error)
	ResolveCase(ch store.CaseChange, key string, now time.Time, to *store.Envelope, h store.Handler) (store.Case, store.Outcome, error)
}

// ResolveCase records an embassy officer's resolution of a case (ch, an
// ActionResolve) and, in the same transaction and in the registrant's
// turn like any input, the engine's step for it: the engine clears the
// open case and do_not_contact, and sends the citizen nothing. It returns
// the case as it then stands; a resolution that lost a race fails with
// errs.ECONFLICT (the store's error) and the case as it stands.
func (r *Runner) ResolveCase(ctx context.Context, ch store.CaseChange) (escalation.Case, error) {
	rs, ok := r.Store.(CaseResolver)
	if !ok {
		return escalation.Case{}, errors.New("bot: the store cannot resolve a case in one transaction")
	}
	c, found, err := rs.CaseByID(ch.CaseID)
	if err != nil {
		return escalation.Case{}, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	key := ""
	if found {
		key = c.UserKey // never changes; the store checks it again inside
	}
	unlock := r.order.lock(key)
	defer unlock()
	var env store.Envelope
	if st, found, err := r.Store.Registrant(key); err == nil && found {
		env = store.Envelope{Channel: st.Channel, Address: st.Address}
	}
	now := r.Now()
	input := dialogs.Input{Kind: dialogs.KindCaseResolved, Key: key, CaseID: ch.CaseID}
	handler := func(prev dialogs.State, found bool) dialogs.Result {
		if !found {
			return dialogs.Result{State: prev, Erase: true}
		}
		return r.Engine.Handle(prev, input, now)
	}
	out, res, err := rs.ResolveCase(ch, key, now, &env, handler)
	if len(res.Sends) > 0 || len(res.Events) > 0 {
		// The engine sends nothing on a resolution; should that change,
		// what it queued goes out like any reply.
		for _, it := range res.Sends {
			r.dispatch(ctx, it)
		}
		if len(res.Events) > 0 && r.OnEvents != nil {
			r.OnEvents(res.Events)
		}
	}
	return out, err
}
