//go:build faultinject

package boltstore

import (
	"os"
	"strconv"
	"sync/atomic"

	"github.com/checkinbot/checkinbot/dialogs"
)

// This file exists only in binaries built with -tags faultinject, which the
// crash test (cmd/checkinbot/crash_test.go) builds to prove that it fails
// when an escalation is lost. Never ship such a binary.
//
// CHECKIN_FAULT_DROP_ESCALATION=N makes writeEscalations silently leave out
// the Nth duress.triggered or sos.raised escalation this process sees: no
// outbox row, no case change, no audit entry, no error — while the rest of
// the transaction (state, reply, inbound id) commits as usual. That is the
// loss the crash test must catch: nothing in the store shows it. Each
// process counts from zero, so a service restarted k times drops at most k.

// faultDropNth is N, or 0 when the variable is unset or not a positive number.
var faultDropNth = func() int64 {
	n, err := strconv.ParseInt(os.Getenv("CHECKIN_FAULT_DROP_ESCALATION"), 10, 64)
	if err != nil || n < 1 {
		return 0
	}
	return n
}()

// faultSeen counts the duress and SOS escalations seen by this process.
var faultSeen atomic.Int64

// dropEscalation returns escs without the Nth critical escalation, in a new
// slice (the caller's result is never modified).
func dropEscalation(escs []dialogs.Escalation) []dialogs.Escalation {
	if faultDropNth == 0 {
		return escs
	}
	out := make([]dialogs.Escalation, 0, len(escs))
	for _, e := range escs {
		if (e.Type == dialogs.EventDuressTriggered || e.Type == dialogs.EventSOSRaised) && faultSeen.Add(1) == faultDropNth {
			continue
		}
		out = append(out, e)
	}
	return out
}
