package boltstore

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
)

// TestLastAliveSurvivesRestart: the mark is durable, absent on a new file.
func TestLastAliveSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkinbot.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.LastAlive(); err != nil || found {
		t.Fatalf("new file: found=%v err=%v", found, err)
	}
	if err := s.MarkAlive(t0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at, found, err := s.LastAlive()
	if err != nil || !found || !at.Equal(t0) {
		t.Fatalf("after reopen: %v found=%v err=%v", at, found, err)
	}
}

// TestRecordGapOnePerEmbassy: one service.resumed per embassy, without a
// registrant, stating the gap; the mark moves to the gap's end in the same
// transaction; the audit chain records it and stays intact.
func TestRecordGapOnePerEmbassy(t *testing.T) {
	for _, g := range []store.Gap{
		{Kind: store.GapDowntime, From: t0, To: t0.Add(26 * time.Hour)},
		{Kind: store.GapClockStep, From: t0, To: t0.Add(48 * time.Hour)},
		{Kind: store.GapClockStep, From: t0, To: t0.Add(-48 * time.Hour)},
	} {
		s := mustOpen(t)
		evs, err := s.RecordGap(g, []string{"my-mekong", "id-mekong", "my-mekong"}, g.To)
		if err != nil {
			t.Fatal(err)
		}
		box, err := s.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || len(box) != 2 {
			t.Fatalf("%s: %d events returned, %d in the outbox; want one per embassy (2)", g.Kind, len(evs), len(box))
		}
		embassies := map[string]bool{}
		for _, ev := range box {
			embassies[ev.EmbassyID] = true
			if ev.Type != dialogs.EventServiceResumed || ev.Registrant != nil || ev.CaseID != "" || ev.Severity != dialogs.SeverityInfo {
				t.Errorf("%s: event %+v", g.Kind, ev)
			}
			// Details as the embassy reads them, after JSON.
			raw, _ := json.Marshal(ev.Details)
			var d struct {
				Kind    string `json:"kind"`
				FromS   string `json:"from"`
				ToS     string `json:"to"`
				Seconds int64  `json:"seconds"`
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			want := int64(g.To.Sub(g.From) / time.Second)
			if d.Kind != g.Kind || d.Seconds != want || d.FromS != g.From.Format(time.RFC3339Nano) || d.ToS != g.To.Format(time.RFC3339Nano) {
				t.Errorf("%s: details %s, want seconds %d", g.Kind, raw, want)
			}
		}
		if !embassies["my-mekong"] || !embassies["id-mekong"] {
			t.Errorf("%s: embassies %v", g.Kind, embassies)
		}
		if at, _, _ := s.LastAlive(); !at.Equal(g.To) {
			t.Errorf("%s: last alive %v, want the gap's end %v", g.Kind, at, g.To)
		}
		entries, err := s.VerifyAudit()
		if err != nil || entries != 1 {
			t.Errorf("%s: audit %d entries, err %v", g.Kind, entries, err)
		}
	}
}
