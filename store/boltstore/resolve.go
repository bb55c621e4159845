package boltstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// ResolveCase records an officer's resolution of a case (ch, an
// ActionResolve) and, in the same transaction, the engine's step for the
// case's registrant — h, run exactly as ProcessSend runs it for key, which
// clears the registrant's open case and do_not_contact — so no crash can
// leave a resolved case with its registrant still marked do-not-contact.
// key must be the case's registrant (the caller holds that registrant's
// turn); a registrant erased meanwhile is skipped.
//
// A resolution that lost a race (the case is resolved already) fails with
// errs.ECONFLICT and the case as it stands — and still runs h, committed:
// the engine's step is idempotent, and that repairs a file where an older
// binary resolved the case but stopped before telling the engine. Any
// other conflict writes nothing. A registrant record the engine cannot
// handle (store.ErrBadEvent) does not block the resolution: it is then
// recorded alone, leaving do_not_contact set.
func (s *Store) ResolveCase(ch store.CaseChange, key string, now time.Time, to *store.Envelope, h store.Handler) (store.Case, store.Outcome, error) {
	if ch.Action != escalation.ActionResolve {
		return store.Case{}, store.Outcome{}, fmt.Errorf("store: resolve case: action %q is not resolve", ch.Action)
	}
	if err := s.writeFault(); err != nil {
		return store.Case{}, store.Outcome{}, fmt.Errorf("store: resolve case: %w", err)
	}
	var c store.Case
	var out store.Outcome
	var lost error
	err := s.update(func(tx *bolt.Tx) error {
		out, lost = store.Outcome{}, nil
		err := s.changeIn(tx, ch, now, &c)
		var te *escalation.TransitionError
		switch {
		case err != nil && errors.As(err, &te) && c.Status == escalation.CaseStatusResolved:
			lost = err // resolved by someone else: still repair below
		case err != nil:
			return err
		}
		if c.UserKey == "" || tx.Bucket(bucketRegistrants).Get([]byte(c.UserKey)) == nil {
			return nil
		}
		if c.UserKey != key {
			return fmt.Errorf("case %s belongs to another registrant than the turn held", c.ID)
		}
		return processIn(s, key, "", now, to, h, &out)(tx)
	})
	if errors.Is(err, store.ErrBadEvent) {
		// The registrant's record cannot be read (or the engine fails on
		// it, every time): the officer's resolution must not depend on it.
		// Record it alone; do_not_contact stays set — the safe side.
		c, err = s.ChangeCase(ch, now)
		return c, store.Outcome{}, err
	}
	switch {
	case err != nil && errs.ErrorCode(err) == errs.EINTERNAL:
		return c, store.Outcome{}, fmt.Errorf("store: resolve case: %w", err)
	case err != nil:
		return c, store.Outcome{}, err
	}
	return c, out, lost
}
