package main

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/webhook"
)

// TestCheckCrash runs the crash test's checker on a clean run and on one
// run broken in each way it must notice: every kind of problem is reported,
// about the right citizen, and a clean run reports nothing. It is fast and
// runs with -short; the crash tests themselves show the checker at work on
// real runs.
func TestCheckCrash(t *testing.T) {
	const ack = "Your embassy has been alerted."
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// A clean run: citizen 0 raises duress twice and SOS once (one case);
	// citizen 1 never uses the keyword and sends one SOS (another case).
	clean := func() crashRecord {
		r := crashRecord{
			Citizens: []crashCitizen{{Chat: 1, Handle: "@c0", Duress: true}, {Chat: 2, Handle: "@c1"}},
			Sent: []sentMsg{
				{Citizen: 0, Kind: kindDuress, UpdateID: 101, At: at(0)},
				{Citizen: 1, Kind: kindSOS, UpdateID: 102, At: at(10)},
				{Citizen: 0, Kind: kindSOS, UpdateID: 103, At: at(20)},
				{Citizen: 1, Kind: kindPlain, UpdateID: 104, At: at(30)},
				{Citizen: 0, Kind: kindDuress, UpdateID: 105, At: at(40)},
			},
			Replies: []seenReply{
				{Citizen: 1, Text: ack + " Where are you?", At: at(15)},
				{Citizen: 0, Text: ack, At: at(25)},
				{Citizen: 0, Text: "Check-in received.", At: at(45)},
			},
			Confirmed: 106,
		}
		ev := func(id, typ, cs string, seq int, who string) receivedEvent {
			e := receivedEvent{ID: id, Type: typ, CaseID: cs, CaseSeq: seq}
			if who != "" {
				e.Registrant = &struct {
					ID     string `json:"id"`
					Handle string `json:"handle"`
				}{ID: "reg_" + who, Handle: who}
			}
			return e
		}
		r.Received = []receivedEvent{
			ev("evt_hb", dialogs.EventEndpointHeartbeat, "", 0, ""),
			ev("evt_1", dialogs.EventDuressTriggered, "case_1", 1, "@c0"),
			ev("evt_2", dialogs.EventSOSRaised, "case_2", 1, "@c1"),
			ev("evt_3", dialogs.EventSOSRaised, "case_1", 2, "@c0"),
			ev("evt_4", dialogs.EventCaseUpdated, "case_2", 2, "@c1"),
			ev("evt_5", dialogs.EventDuressTriggered, "case_1", 3, "@c0"),
			ev("evt_6", dialogs.EventRegistrationCreated, "", 0, "@c1"),
			ev("evt_sr", "service.resumed", "", 0, ""),
		}
		return r
	}
	cases := []struct {
		name  string
		spoil func(*crashRecord)
		want  problemKind
		who   int
	}{
		{"lost duress", func(r *crashRecord) {
			// The last event of its case: no gap betrays it, only the ledger.
			r.Received = slices.Delete(r.Received, 5, 6)
		}, probMissing, 0},
		{"lost SOS", func(r *crashRecord) {
			// Renumbered as the store would if it never wrote it.
			r.Received = slices.Delete(r.Received, 3, 4)
			r.Received[4].CaseSeq = 2
		}, probMissing, 0},
		{"SOS raised as something else", func(r *crashRecord) { r.Received[2].Type = dialogs.EventCaseUpdated }, probMissing, 1},
		{"alarm about the wrong citizen", func(r *crashRecord) { r.Received[2].Registrant.Handle = "@c0" }, probMissing, 1},
		{"duplicated alarm", func(r *crashRecord) {
			dup := r.Received[1]
			dup.ID, dup.CaseSeq = "evt_dup", 4
			r.Received = append(r.Received, dup)
		}, probExtra, 0},
		{"false alarm", func(r *crashRecord) {
			r.Received = append(r.Received, receivedEvent{ID: "evt_fa", Type: dialogs.EventDuressTriggered, CaseID: "case_2", CaseSeq: 3,
				Registrant: r.Received[2].Registrant})
		}, probFalseAlarm, 1},
		{"alarm without a case", func(r *crashRecord) {
			r.Received[1].CaseID = ""
			r.Received[3].CaseSeq, r.Received[5].CaseSeq = 1, 2
		}, probNoCase, 0},
		{"case_seq gap", func(r *crashRecord) { r.Received[4].CaseSeq = 3 }, probGap, 1},
		{"case_seq from 0", func(r *crashRecord) { r.Received[2].CaseSeq, r.Received[4].CaseSeq = 0, 1 }, probGap, 1},
		{"case_seq twice", func(r *crashRecord) { r.Received[5].CaseSeq = 2 }, probGap, 0},
		{"case out of order", func(r *crashRecord) { r.Received[3], r.Received[5] = r.Received[5], r.Received[3] }, probOrder, 0},
		{"one case, two citizens", func(r *crashRecord) { r.Received[4].CaseID = "case_1" }, probMixedCase, 1},
		{"event about a stranger", func(r *crashRecord) { r.Received[6].Registrant.Handle = "@nobody" }, probUnknown, -1},
		{"alarm about nobody", func(r *crashRecord) { r.Received[1].Registrant = nil }, probUnknown, -1},
		{"garbage from the receiver", func(r *crashRecord) { r.Unreadable = []string{"{not json"} }, probUnreadable, -1},
		{"update never confirmed", func(r *crashRecord) { r.Confirmed = 105 }, probUnconfirmed, -1},
		{"SOS not answered", func(r *crashRecord) { r.Replies = r.Replies[1:] }, probNoReply, 1},
		{"SOS answered before it was sent", func(r *crashRecord) { r.Replies[1].At = at(19) }, probNoReply, 0},
		{"one answer for two SOS", func(r *crashRecord) {
			r.Sent = append(r.Sent, sentMsg{Citizen: 1, Kind: kindSOS, UpdateID: 106, At: at(50)})
			r.Received = append(r.Received, receivedEvent{ID: "evt_7", Type: dialogs.EventSOSRaised, CaseID: "case_2", CaseSeq: 3,
				Registrant: r.Received[2].Registrant})
			r.Confirmed = 107
		}, probNoReply, 1},
	}
	if got := checkCrash(clean(), ack); len(got) != 0 {
		t.Fatalf("clean run: %v", got)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := clean()
			c.spoil(&r)
			got := checkCrash(r, ack)
			found := false
			for _, p := range got {
				if p.Kind == c.want && p.Citizen == c.who {
					found = true
				}
			}
			if !found {
				t.Errorf("want a %s problem about citizen %d, got %v", c.want, c.who, fmt.Sprint(got))
			}
		})
	}
}

// TestCrashReceiver shows the crash test's receiver is a verifier, not a
// recorder: it writes a signed delivery once however often it comes, and
// refuses (and does not write) a wrong key, a tampered body, a stale
// timestamp and a body whose id is not its webhook-id.
func TestCrashReceiver(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node")
	}
	dir := t.TempDir()
	key, other := make([]byte, 32), make([]byte, 32)
	rand.Read(key)
	rand.Read(other)
	out := filepath.Join(dir, "received.jsonl")
	url := startReceiver(t, webhook.FormatSecret(key), out, filepath.Join(dir, "receiver.stderr"))
	post := func(keys [][]byte, id string, signed time.Time, body, sent string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(sent))
		req.Header.Set("Content-Type", "application/json")
		webhook.Sign(req.Header, keys, id, signed, []byte(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := `{"id":"evt_a","type":"sos.raised","case_id":"case_1","case_seq":1}`
	now := time.Now()
	for _, c := range []struct {
		name       string
		keys       [][]byte
		id         string
		at         time.Time
		body, sent string
		ok         bool
	}{
		{"signed", [][]byte{key}, "evt_a", now, good, good, true},
		{"redelivered", [][]byte{key}, "evt_a", now, good, good, true},
		{"during rotation", [][]byte{other, key}, "evt_a", now, good, good, true},
		{"wrong key", [][]byte{other}, "evt_b", now, strings.ReplaceAll(good, "evt_a", "evt_b"), strings.ReplaceAll(good, "evt_a", "evt_b"), false},
		{"tampered", [][]byte{key}, "evt_c", now, strings.ReplaceAll(good, "evt_a", "evt_c"), strings.ReplaceAll(good, "evt_a\",\"type\":\"sos.raised", "evt_c\",\"type\":\"checkin.missed"), false},
		{"stale", [][]byte{key}, "evt_d", now.Add(-time.Hour), strings.ReplaceAll(good, "evt_a", "evt_d"), strings.ReplaceAll(good, "evt_a", "evt_d"), false},
		{"id differs", [][]byte{key}, "evt_e", now, good, good, false},
	} {
		status := post(c.keys, c.id, c.at, c.body, c.sent)
		if (status/100 == 2) != c.ok {
			t.Errorf("%s: status %d", c.name, status)
		}
	}
	events, bad, err := readReceived(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 0 || len(events) != 1 || events[0].ID != "evt_a" || events[0].CaseSeq != 1 {
		t.Errorf("receiver wrote %+v (unreadable %q), want evt_a once", events, bad)
	}
}
