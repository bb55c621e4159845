// Retention (issue 13 item 5): registrations nobody uses any more are
// removed, so the data file does not keep, for ever, the names of people
// who went home or stopped answering. A withdrawn registration (a real
// stop) is removed Retention.Withdrawn after the citizen last wrote; any
// other registration Retention.Inactive after its last sign of life (a
// message or a check-in). Retention.Notice before that, the citizen is
// told, in their language, through the durable send queue; any message
// keeps the registration. The embassy learns of a removal as
// registration.withdrawn with a "reason".
//
// Some registrations are never removed, whatever their age, until the
// embassy acts: one with an open case, one under duress (do_not_contact,
// cleared only when the embassy resolves the case), one covertly deleted
// (State.Hidden) or showing a covert stop or pause (State.Shown). Those
// are never sent the notice either: a do_not_contact phone is never
// messaged.
//
// The sweep that finds candidates (bot/retention.go) only proposes: the
// decision is taken here, on the state read inside the same transaction
// that writes it, so a message that arrived meanwhile always wins.

package dialogs

import (
	"fmt"
	"time"

	"github.com/checkinbot/checkinbot/errs"
)

// Retention is how long unused registrations are kept. A zero period
// turns its rule off.
type Retention struct {
	// Withdrawn: a stopped registration (the citizen said they are home)
	// is removed this long after the citizen last wrote. The consent
	// notice promises it ("… or N days after you stop"), so config
	// derives it from retention_days unless set.
	Withdrawn time.Duration
	// Inactive: any other registration is removed this long after its
	// last sign of life (a message, a check-in; for records written before
	// the last-seen mark existed, the later of the last check-in, the
	// registration and the consent).
	Inactive time.Duration
	// Notice: the citizen is told this long before the removal. A citizen
	// who cannot be written to (no address stored: nothing personal was
	// given) is removed without one.
	Notice time.Duration
}

// Validate reports the first inconsistency as an *errs.Error whose Key is
// the field's configuration key under [retention].
func (r Retention) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &errs.Error{Code: errs.EINVALID, Key: key, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case r.Withdrawn < 0:
		return bad("withdrawn", "must not be negative")
	case r.Inactive < 0:
		return bad("inactive", "must not be negative")
	case r.Notice < 0:
		return bad("notice", "must not be negative")
	case r.Withdrawn > 0 && r.Notice >= r.Withdrawn:
		return bad("notice", "%s must be shorter than withdrawn (%s): the notice goes out before the removal", shortDuration(r.Notice), shortDuration(r.Withdrawn))
	case r.Inactive > 0 && r.Notice >= r.Inactive:
		return bad("notice", "%s must be shorter than inactive (%s): the notice goes out before the removal", shortDuration(r.Notice), shortDuration(r.Inactive))
	}
	return nil
}

// RetentionMarks is what retention stores in a registrant's state.
type RetentionMarks struct {
	// LastSeen is when the citizen last sent anything.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// RemoveOn is the removal date a notice announced; zero when no notice
	// is outstanding. Any message clears it.
	RemoveOn time.Time `json:"remove_on,omitzero"`
}

// RetentionStep is what retention asks of one registrant now.
type RetentionStep int

const (
	// RetentionKeep: nothing to do.
	RetentionKeep RetentionStep = iota
	// RetentionNotify: send the notice and remember the announced date.
	RetentionNotify
	// RetentionPurge: remove the registration.
	RetentionPurge
)

// RetentionHeld reports whether st is kept whatever its age: an open case,
// do_not_contact (a duress case the embassy has not resolved), a covertly
// deleted registration, or a covert stop or pause still shown.
func RetentionHeld(st State) bool {
	return st.OpenCase != "" || st.DoNotContact || st.Hidden != nil || st.Shown != "" || st.CovertFlow
}

// lastActive is the last sign of life of st.
func lastActive(st State) time.Time {
	t := st.Retention.LastSeen
	for _, u := range []time.Time{st.LastCheckin, st.RegisteredAt, st.ConsentAt} {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// period is the rule that applies to st and its name (the removal event's
// reason).
func (r Retention) period(st State) (time.Duration, string) {
	if st.Status == StatusStopped {
		return r.Withdrawn, "retention.withdrawn"
	}
	return r.Inactive, "retention.inactive"
}

// reachable reports whether st has somewhere to send a notice.
func reachable(st State) bool { return st.Channel != "" && st.Address != "" }

// Step is what retention asks of st at now. It is pure: the sweep calls it
// to find candidates, the engine again to decide.
func (r Retention) Step(st State, now time.Time) RetentionStep {
	if RetentionHeld(st) {
		return RetentionKeep
	}
	if on := st.Retention.RemoveOn; !on.IsZero() {
		if !now.Before(on) {
			return RetentionPurge
		}
		return RetentionKeep
	}
	p, _ := r.period(st)
	last := lastActive(st)
	if p <= 0 || last.IsZero() {
		return RetentionKeep // rule off, or a record with no date at all: never guess
	}
	end := last.Add(p)
	switch {
	case !reachable(st) && !now.Before(end):
		return RetentionPurge
	case reachable(st) && !now.Before(end.Add(-r.Notice)):
		return RetentionNotify
	}
	return RetentionKeep
}

// retention handles KindRetention: the notice, the removal, or nothing if
// the state read in this transaction no longer asks for either.
func (t *turn) retention() {
	r := t.e.Policy.Retention
	switch r.Step(t.st, t.now) {
	case RetentionNotify:
		if t.st.DoNotContact { // RetentionHeld says so already; never message such a phone
			return
		}
		p, _ := r.period(t.st)
		on := lastActive(t.st).Add(p)
		if full := t.now.Add(r.Notice); on.Before(full) {
			on = full // a late sweep never shortens the notice
		}
		t.st.Retention.RemoveOn = on
		t.reply("RetentionNotice", map[string]any{"Date": t.date(on)})
		t.audit("retention.notice")
	case RetentionPurge:
		_, reason := r.period(t.st)
		t.audit("retention.purge")
		if t.st.Registered() {
			t.escalate(EventRegistrationWithdrawn, SeverityInfo, CaseNone, map[string]any{"reason": reason})
			// As after a citizen's own delete: only the pseudonymous id.
			last := &t.res.Escalations[len(t.res.Escalations)-1]
			last.Registrant = RegistrantView{ID: last.Registrant.ID, Channel: last.Registrant.Channel}
		}
		t.st = t.fresh()
	}
}

// date is a calendar day in the registrant's zone, as a notice shows it.
func (t *turn) date(tm time.Time) string {
	return tm.In(t.zone()).Format("02/01/2006")
}
