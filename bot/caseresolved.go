package bot

import (
	"context"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// CaseResolved tells the engine that the embassy resolved caseID of the
// registrant stored under key (the embassy API, after it recorded the
// resolution), in the registrant's turn like any input. The engine clears
// the open case and do_not_contact; it sends the citizen nothing. A
// registrant erased meanwhile, or whose open case is another, is left as
// is, so calling it again is harmless.
func (r *Runner) CaseResolved(ctx context.Context, key, caseID string) error {
	st, found, err := r.Store.Registrant(key)
	if err != nil || !found {
		return err
	}
	return r.run(ctx, key, "", dialogs.Input{Kind: dialogs.KindCaseResolved, Key: key, CaseID: caseID},
		store.Envelope{Channel: st.Channel, Address: st.Address})
}
