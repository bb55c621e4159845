package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// This file is the crash test's bookkeeping, kept apart from the store on
// purpose: the driver's ledger (what each citizen sent and saw), what the
// independent receiver wrote, and checkCrash, which compares the two and
// returns every problem it finds. Nothing here reads the data file: a loss
// inside the store cannot hide behind a comparison of the store with itself.

// msgKind is what a message the driver sent was meant to do.
type msgKind string

const (
	kindPlain  msgKind = "plain"  // a check-in without the keyword
	kindDuress msgKind = "duress" // a check-in carrying the citizen's keyword
	kindSOS    msgKind = "sos"    // /sos
)

// crashCitizen is one simulated citizen.
type crashCitizen struct {
	Chat    int64
	Handle  string // "@citizen03": what the embassy sees as registrant.handle
	Keyword string
	// Duress: this citizen sends the keyword during the run. The others
	// never do, so any duress.triggered about them is a false alarm.
	Duress bool
}

// sentMsg is one ledger line: a message the driver put into the fake
// Telegram API. Every one must be processed eventually; none may be lost.
type sentMsg struct {
	Citizen  int
	Kind     msgKind
	UpdateID int64
	At       time.Time
}

// seenReply is a message the citizen's phone shows: a successful
// sendMessage to their chat that was not deleted afterwards.
type seenReply struct {
	Citizen int
	Text    string
	At      time.Time
}

// receivedEvent is one line the receiver wrote: a verified body, first
// receipt of its webhook-id, in arrival order.
type receivedEvent struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	CaseID     string `json:"case_id"`
	CaseSeq    int    `json:"case_seq"`
	Registrant *struct {
		ID     string `json:"id"`
		Handle string `json:"handle"`
	} `json:"registrant"`
}

// crashRecord is everything checkCrash looks at, gathered after the run.
type crashRecord struct {
	Citizens []crashCitizen
	Sent     []sentMsg
	Replies  []seenReply
	Received []receivedEvent
	// Unreadable are receiver lines that did not parse.
	Unreadable []string
	// Confirmed is the highest getUpdates offset serve was seen to ask
	// for: every update below it was confirmed (taken by serve for good).
	Confirmed int64
}

// problemKind names a way the run went wrong.
type problemKind string

const (
	probMissing     problemKind = "missing"      // a duress or SOS the citizen sent never reached the embassy
	probExtra       problemKind = "extra"        // more alarms than the citizen raised
	probFalseAlarm  problemKind = "false-alarm"  // duress.triggered for a citizen who never sent the keyword
	probNoCase      problemKind = "no-case"      // a duress or SOS event without a case
	probGap         problemKind = "gap"          // a case's case_seq values are not exactly 1..n
	probOrder       problemKind = "out-of-order" // a case's events arrived out of case_seq order
	probMixedCase   problemKind = "mixed-case"   // one case about two citizens
	probUnknown     problemKind = "unknown"      // an event about nobody the driver knows
	probUnreadable  problemKind = "unreadable"   // a receiver line that is not an event
	probUnconfirmed problemKind = "unconfirmed"  // serve never took an update the driver sent
	probNoReply     problemKind = "no-reply"     // an SOS the citizen never saw acknowledged
)

// problem is one finding of checkCrash.
type problem struct {
	Kind    problemKind
	Citizen int // -1 when not about one citizen
	Detail  string
}

func (p problem) String() string {
	if p.Citizen < 0 {
		return fmt.Sprintf("%s: %s", p.Kind, p.Detail)
	}
	return fmt.Sprintf("%s: citizen %d: %s", p.Kind, p.Citizen, p.Detail)
}

// checkCrash compares the driver's ledger with what the receiver got and
// returns every problem: each SOS and each duress message must have reached
// the receiver as sos.raised / duress.triggered about that citizen, exactly
// once; nobody who never sent the keyword may be reported under duress;
// every case's case_seq must be 1..n, received in that order; every update
// must have been confirmed; and every SOS must have been answered with
// sosAck (the locale's "embassy has been alerted") after it was sent.
func checkCrash(r crashRecord, sosAck string) []problem {
	var out []problem
	add := func(k problemKind, citizen int, format string, args ...any) {
		out = append(out, problem{Kind: k, Citizen: citizen, Detail: fmt.Sprintf(format, args...)})
	}
	for _, line := range r.Unreadable {
		add(probUnreadable, -1, "%.120q", line)
	}
	byHandle := map[string]int{}
	for i, c := range r.Citizens {
		byHandle[c.Handle] = i
	}

	// Alarms: count per citizen and type, sent against received.
	type tally struct{ sent, got int }
	alarms := map[int]map[string]*tally{}
	count := func(c int, typ string) *tally {
		if alarms[c] == nil {
			alarms[c] = map[string]*tally{dialogs.EventDuressTriggered: {}, dialogs.EventSOSRaised: {}}
		}
		return alarms[c][typ]
	}
	var lastUpdate int64
	for _, m := range r.Sent {
		lastUpdate = max(lastUpdate, m.UpdateID)
		switch m.Kind {
		case kindDuress:
			count(m.Citizen, dialogs.EventDuressTriggered).sent++
		case kindSOS:
			count(m.Citizen, dialogs.EventSOSRaised).sent++
		}
	}
	if lastUpdate > 0 && r.Confirmed <= lastUpdate {
		add(probUnconfirmed, -1, "serve confirmed updates below %d only; the driver sent up to %d", r.Confirmed, lastUpdate)
	}

	caseOwner := map[string]int{}
	caseSeqs := map[string][]int{} // in arrival order
	var caseOrder []string
	for _, ev := range r.Received {
		critical := ev.Type == dialogs.EventDuressTriggered || ev.Type == dialogs.EventSOSRaised
		if ev.Registrant == nil && !critical {
			continue // about the service, not a citizen: heartbeat, service.resumed
		}
		c := -1
		if ev.Registrant != nil {
			if i, ok := byHandle[ev.Registrant.Handle]; ok {
				c = i
			}
		}
		if c < 0 {
			add(probUnknown, -1, "%s %s is about no citizen of this run", ev.Type, ev.ID)
			continue
		}
		if critical {
			count(c, ev.Type).got++
			if ev.CaseID == "" {
				add(probNoCase, c, "%s %s has no case", ev.Type, ev.ID)
			}
		}
		if ev.CaseID == "" {
			continue
		}
		if owner, ok := caseOwner[ev.CaseID]; !ok {
			caseOwner[ev.CaseID] = c
			caseOrder = append(caseOrder, ev.CaseID)
		} else if owner != c {
			add(probMixedCase, c, "%s (%s) is in %s, a case of citizen %d", ev.ID, ev.Type, ev.CaseID, owner)
		}
		caseSeqs[ev.CaseID] = append(caseSeqs[ev.CaseID], ev.CaseSeq)
	}

	citizens := make([]int, 0, len(alarms))
	for c := range alarms {
		citizens = append(citizens, c)
	}
	sort.Ints(citizens)
	for _, c := range citizens {
		for _, typ := range []string{dialogs.EventDuressTriggered, dialogs.EventSOSRaised} {
			t := alarms[c][typ]
			switch {
			case typ == dialogs.EventDuressTriggered && t.sent == 0 && t.got > 0:
				add(probFalseAlarm, c, "%d duress.triggered, but the keyword was never sent", t.got)
			case t.got < t.sent:
				for i := t.got; i < t.sent; i++ {
					add(probMissing, c, "sent %d messages that must raise %s, the receiver got %d", t.sent, typ, t.got)
				}
			case t.got > t.sent:
				add(probExtra, c, "sent %d messages that raise %s, the receiver got %d", t.sent, typ, t.got)
			}
		}
	}

	for _, id := range caseOrder {
		seqs := caseSeqs[id]
		if !slices.IsSorted(seqs) {
			add(probOrder, caseOwner[id], "%s arrived in case_seq order %v", id, seqs)
		}
		sorted := slices.Sorted(slices.Values(seqs))
		for i, s := range sorted {
			if s != i+1 {
				add(probGap, caseOwner[id], "%s has case_seq %v, want 1..%d", id, sorted, len(sorted))
				break
			}
		}
	}

	// Every SOS answered: match each SOS, in the order sent, to the
	// earliest unused acknowledgement shown after it.
	acks := map[int][]time.Time{}
	for _, rp := range r.Replies {
		if strings.Contains(rp.Text, sosAck) {
			acks[rp.Citizen] = append(acks[rp.Citizen], rp.At)
		}
	}
	sosBy := map[int][]time.Time{}
	for _, m := range r.Sent {
		if m.Kind == kindSOS {
			sosBy[m.Citizen] = append(sosBy[m.Citizen], m.At)
		}
	}
	for c := range r.Citizens {
		sent, seen := sosBy[c], acks[c]
		slices.SortFunc(sent, time.Time.Compare)
		slices.SortFunc(seen, time.Time.Compare)
		j := 0
		for _, at := range sent {
			for j < len(seen) && seen[j].Before(at) {
				j++
			}
			if j == len(seen) {
				add(probNoReply, c, "SOS sent at %s was never answered with the alert acknowledgement", at.Format("15:04:05.000"))
				continue
			}
			j++
		}
	}
	return out
}

// readReceived parses the receiver's JSON lines, keeping the lines that are
// not events aside.
func readReceived(path string) ([]receivedEvent, []string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var events []receivedEvent
	var bad []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev receivedEvent
		if err := json.Unmarshal(line, &ev); err != nil || ev.ID == "" || ev.Type == "" {
			bad = append(bad, string(line))
			continue
		}
		events = append(events, ev)
	}
	return events, bad, sc.Err()
}

// countKinds summarises problems by kind, for messages.
func countKinds(ps []problem) map[problemKind]int {
	m := map[problemKind]int{}
	for _, p := range ps {
		m[p.Kind]++
	}
	return m
}
