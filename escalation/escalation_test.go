package escalation

import (
	"slices"
	"testing"
)

func TestTypesAreDistinctAndPartnerTypesAreTypes(t *testing.T) {
	seen := map[Type]bool{}
	for _, typ := range AllTypes {
		if seen[typ] || typ == "" {
			t.Errorf("type %q listed twice or empty", typ)
		}
		seen[typ] = true
	}
	for _, typ := range PartnerTypes {
		if !seen[typ] {
			t.Errorf("partner type %q is not in AllTypes", typ)
		}
	}
	for _, never := range []Type{TypeEndpointHeartbeat, TypeServiceResumed} {
		if slices.Contains(PartnerTypes, never) {
			t.Errorf("%s is addressed to one endpoint or embassy, not chosen by a partner", never)
		}
	}
}

func TestCaseStatus(t *testing.T) {
	for _, s := range AllCaseStatuses {
		if !s.Valid() {
			t.Errorf("%q not valid", s)
		}
	}
	for _, s := range []CaseStatus{"", "acknowledged", "closed", "OPEN"} {
		if s.Valid() {
			t.Errorf("%q valid", s)
		}
	}
}

func TestSeverityCritical(t *testing.T) {
	for sev, want := range map[Severity]bool{SeverityInfo: false, SeverityHigh: true, SeverityCritical: true} {
		if sev.Critical() != want {
			t.Errorf("%s.Critical() = %v", sev, !want)
		}
	}
}

func TestAttemptOutcomes(t *testing.T) {
	tests := []struct {
		o          AttemptOutcome
		sent, done bool
	}{
		{AttemptNone, false, false},
		{AttemptDelivered, true, true},
		{AttemptFailed, true, false},
		{AttemptGaveUp, true, true},
		{AttemptHeld, false, false},
		{AttemptAbandoned, false, true},
		{AttemptOutcome(99), false, false},
	}
	for _, tc := range tests {
		if tc.o.Sent() != tc.sent || tc.o.Done() != tc.done || tc.o.String() == "" {
			t.Errorf("%v: sent %v done %v, want %v %v", tc.o, tc.o.Sent(), tc.o.Done(), tc.sent, tc.done)
		}
	}
}
