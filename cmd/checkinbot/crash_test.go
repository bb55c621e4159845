package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// requireDurableReplies makes a missing SOS acknowledgement fail
// TestCrashSafety. Replies are not yet durable (issue 10, item 1): a
// SIGKILL between commit and send loses the reply, and Telegram's
// redelivery is answered with nothing. Until that lands, missing replies
// are only logged. Flip this to true once durable replies are merged.
const requireDurableReplies = true

// crashScenario is the one scenario both crash tests run: 12 citizens, 8 of
// whom use their keyword, 320 check-ins, duress check-ins and SOS in
// random order while serve is SIGKILLed every 0.25–1 s (about 20 times).
func crashScenario(t *testing.T) crashOptions {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (CRASH_SEED=%d reproduces the message order)", seed, seed)
	return crashOptions{Citizens: 12, Messages: 320, Gap: 100 * time.Millisecond,
		KillMin: 250 * time.Millisecond, KillMax: time.Second, Drain: 45 * time.Second, Seed: seed}
}

// TestCrashSafety runs the real `checkinbot serve` against the fake
// Telegram Bot API as a dozen citizens who register and then send
// check-ins, duress check-ins and SOS in random order, while serve is
// SIGKILLed at random moments and restarted on the same data directory.
// An independent receiver (Node, npm standardwebhooks) verifies and records
// the embassy's webhooks. The driver's own ledger is compared with what the
// receiver got (checkCrash): every duress message and every SOS the driver
// sent reached the embassy for that citizen, exactly once; nobody who never
// sent the keyword is reported under duress; every case's case_seq is 1..n
// and arrived in order; and, once replies are durable, every SOS was
// answered on the phone.
//
// What it proves: no escalation is lost or invented across process crashes
// at any instant of intake, commit, reply or delivery, with Telegram's
// at-least-once redelivery and the outbox as the only memory.
// What it does not prove: durability against power loss or a kernel crash.
// SIGKILL leaves the page cache intact, so data written but never fsynced
// survives here; a missing or broken fsync would pass this test. Exercising
// that needs the data directory on a device that can drop unsynced writes
// (dm-flakey, or a FUSE file system that discards everything since the last
// fsync on "power cut"), which needs privileges this test does not assume.
// Nor does it cover disk-full or damaged data files (tested elsewhere).
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it for about a minute")
	}
	t.Parallel()
	run := runCrashScenario(t, crashScenario(t))
	problems := checkCrash(run.Record, run.SOSAck)
	logRun(t, run, problems)
	if run.Kills < 15 {
		t.Errorf("only %d kills: the run did not crash serve often enough to mean anything", run.Kills)
	}
	crit := 0
	for _, m := range run.Record.Sent {
		if m.Kind != kindPlain {
			crit++
		}
	}
	if crit < 80 { // about 130 expected
		t.Errorf("only %d duress and SOS messages were sent", crit)
	}
	for _, p := range problems {
		if p.Kind == probNoReply && !requireDurableReplies {
			continue
		}
		t.Errorf("%s", p)
	}
	if t.Failed() {
		t.Logf("serve log (last 4000 bytes):\n%s", tail(run.ServeLog, 4000))
	}
}

// TestCrashSafetyDetectsLoss proves TestCrashSafety can fail for a real
// loss. It builds serve with -tags faultinject, where the store silently
// leaves out the 3rd duress or SOS escalation each process writes (see
// store/boltstore/fault_on.go: no outbox row, no error, state and reply
// committed as usual), runs the same scenario, and requires checkCrash to
// report the loss — as missing alarms and nothing else, at most one per
// process.
func TestCrashSafetyDetectsLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it for about a minute")
	}
	t.Parallel()
	o := crashScenario(t)
	o.Tags, o.Env = "faultinject", []string{"CHECKIN_FAULT_DROP_ESCALATION=3"}
	run := runCrashScenario(t, o)
	problems := checkCrash(run.Record, run.SOSAck)
	logRun(t, run, problems)
	missing := 0
	for _, p := range problems {
		switch p.Kind {
		case probMissing:
			missing++
		case probNoReply:
		default:
			t.Errorf("the injected fault drops escalations only, yet: %s", p)
		}
	}
	if missing == 0 {
		t.Errorf("serve dropped escalations (faultinject) and the checker reported no missing alarm")
	}
	if missing > run.Starts {
		t.Errorf("%d alarms reported missing, but %d processes drop at most one each", missing, run.Starts)
	}
}

// logRun records the size of a run and its problems by kind.
func logRun(t *testing.T, run crashRun, problems []problem) {
	t.Helper()
	kinds := map[msgKind]int{}
	for _, m := range run.Record.Sent {
		kinds[m.Kind]++
	}
	events := map[string]int{}
	for _, ev := range run.Record.Received {
		events[ev.Type]++
	}
	t.Logf("%s: %d serve starts, %d SIGKILLs; sent %v; receiver got %d %s, %d %s of %d events; problems %v",
		run.Elapsed.Round(time.Second), run.Starts, run.Kills, kinds, events[dialogs.EventDuressTriggered],
		dialogs.EventDuressTriggered, events[dialogs.EventSOSRaised], dialogs.EventSOSRaised, len(run.Record.Received),
		countKinds(problems))
	for _, p := range problems {
		if p.Kind == probNoReply && !requireDurableReplies {
			t.Logf("(not yet required) %s", p)
		}
	}
	if strings.TrimSpace(run.ReceiverStderr) != "" {
		t.Logf("receiver stderr:\n%s", tail(run.ReceiverStderr, 2000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
