package bot

import (
	"context"
	"crypto/rand"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// Verified identity (DESIGN §12): the runner draws the randomness an
// identity link's token is made of, and records what a provider proved as
// one more input of the citizen's, in their turn.

// eventRandom is fresh randomness for one event (dialogs.Input.Random). It
// is drawn before the store's transaction, so a handler run twice by a
// group commit makes the same link.
func eventRandom() []byte {
	b := make([]byte, dialogs.IdentityTokenBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

// RecordIdentity records what a provider proved about the registrant
// under key: a KindIdentityVerified input, queued behind the citizen's
// other inputs, so the state change, registration.updated with `identity`
// and the chat's confirmation are one transaction. Someone with no record
// (erased since the link was sent) is left alone, without an error: the
// browser is told the same as for anyone else.
func (r *Runner) RecordIdentity(ctx context.Context, key string, v dialogs.Identity) error {
	st, found, err := r.Store.Registrant(key)
	if err != nil || !found {
		return err
	}
	return r.run(ctx, key, "", dialogs.Input{Kind: dialogs.KindIdentityVerified, Key: key, Identity: &v},
		store.Envelope{Channel: st.Channel, Address: st.Address})
}
