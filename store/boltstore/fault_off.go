//go:build !faultinject

package boltstore

import "github.com/checkinbot/checkinbot/dialogs"

// dropEscalation is the hook of a test-only fault (fault_on.go, build tag
// faultinject) that lets the crash test prove it notices a lost
// escalation. In every real build it returns escs unchanged and compiles
// away.
func dropEscalation(escs []dialogs.Escalation) []dialogs.Escalation { return escs }
