package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// The event pull (GET /v1/events). Its cursor is a number of the
// embassy's own event sequence, sealed (AES-GCM) and bound to the
// embassy: opaque, unforgeable, refused by any other embassy, and — being
// sealed under a key kept in the data file, not one made at start — still
// good after a restart, so an embassy can resume reconciling where it
// stopped. Even opened it would say only how many events that embassy
// itself has had, never another's volume.

// eventCursorList is what an event cursor is bound to, with the embassy.
const eventCursorList = "events"

// eventSealer returns the sealer of event cursors, made from the store's
// key on first use (a failure is retried on the next request).
func (a *API) eventSealer() (*cursorSealer, error) {
	a.eventCursorsMu.Lock()
	defer a.eventCursorsMu.Unlock()
	if a.eventCursors != nil {
		return a.eventCursors, nil
	}
	key, err := a.opt.Store.CursorKey()
	if err != nil {
		return nil, err
	}
	c, err := cursorSealerWith(key)
	if err != nil {
		return nil, fmt.Errorf("the store's cursor key: %w", err)
	}
	a.eventCursors = c
	return c, nil
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request, t Token, _ string) {
	q := r.URL.Query()
	eq := store.EventQuery{Embassy: t.Embassy}
	var err error
	switch q.Get("unacked") {
	case "", "0", "false":
	case "1", "true":
		eq.Unacked = true
	default:
		err = invalid("unacked", "must be 1 or 0")
	}
	if err == nil {
		eq.Limit, err = limitParam(q)
	}
	var sealer *cursorSealer
	if err == nil {
		sealer, err = a.eventSealer()
	}
	if err == nil && q.Get("after") != "" {
		var plain string
		if plain, err = sealer.open(q.Get("after"), t.Embassy, eventCursorList); err != nil {
			err = badAfter
		} else if eq.After, err = strconv.ParseUint(plain, 10, 64); err != nil {
			err = badAfter
		}
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	page, err := a.opt.Store.Events(eq)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	if page.Events == nil {
		page.Events = []escalation.Event{}
	}
	out := struct {
		Events     []escalation.Event `json:"events"`
		NextCursor *string            `json:"next_cursor"`
		More       bool               `json:"more"`
	}{Events: page.Events, More: page.More}
	if page.Next > 0 {
		s := sealer.seal(strconv.FormatUint(page.Next, 10), t.Embassy, eventCursorList)
		out.NextCursor = &s
	}
	writeJSON(w, http.StatusOK, out)
}

var badAfter = invalid("after", "is not a cursor this list gave you (start again without one, with unacked=1 to see what you have not acknowledged)")
