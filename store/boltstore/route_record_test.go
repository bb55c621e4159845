package boltstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
)

// RouteOnRecord (delivery.go) routes an escalation in the transaction that
// records it, so the deliverer's next round has no routing commit to make
// before it sends a duress event. It must route exactly what Route would:
// the same rows for the same events, none twice, none missed, in recording
// order even when it is turned on over a backlog.

// recordTargets is a pure targets function that depends on the event's
// embassy, type and severity (never on its random id), so two stores fed
// the same events must get the same rows.
func recordTargets(ev store.Event) []store.Target {
	crit := ev.Severity.Critical()
	switch {
	case ev.Type == dialogs.EventEndpointHeartbeat:
		return []store.Target{{Endpoint: ev.EmbassyID}}
	case ev.EmbassyID == "emb-c":
		return nil // no endpoint at all (an id nobody serves)
	case ev.Type == dialogs.EventDuressTriggered:
		return []store.Target{{Endpoint: ev.EmbassyID, Critical: crit}, {Endpoint: ev.EmbassyID + "/partner", Critical: crit}}
	default:
		return []store.Target{{Endpoint: ev.EmbassyID, Critical: crit}}
	}
}

type routedRow struct {
	Endpoint, Type, Case string
	Seq                  uint64
	Critical             bool
}

func routedRows(t *testing.T, s *Store) []routedRow {
	t.Helper()
	pending, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var rows []routedRow
	for _, d := range pending {
		rows = append(rows, routedRow{Endpoint: d.Endpoint, Type: string(d.Type), Case: d.CaseID, Seq: d.Seq, Critical: d.Critical})
	}
	slices.SortFunc(rows, func(a, b routedRow) int {
		if a.Seq != b.Seq {
			return int(a.Seq) - int(b.Seq)
		}
		if a.Endpoint < b.Endpoint {
			return -1
		}
		return 1
	})
	return rows
}

// TestRouteOnRecordRoutesWhatRouteWould: random sequences of escalations
// (several types, severities and embassies, some with no target) and
// heartbeats are recorded on two stores — one routing only by Route, the
// other with RouteOnRecord turned on part-way (over a backlog) and Route
// called at random moments. After a last Route on both, their pending rows
// are the same, and every one is routed exactly once. With routing on
// record ignoring a backlog (jumping the routing mark over older events),
// the older events' rows are missing; with routing on record removed, the
// no-commit property below fails.
func TestRouteOnRecordRoutesWhatRouteWould(t *testing.T) {
	types := []escalation.Type{dialogs.EventCheckinMissed, dialogs.EventDuressTriggered, dialogs.EventSOSRaised, dialogs.EventCaseUpdated}
	severities := []dialogs.Severity{dialogs.SeverityInfo, dialogs.SeverityHigh, dialogs.SeverityCritical}
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 15))
			plain, inline := mustOpen(t), mustOpen(t)
			onAt := rng.IntN(10) // steps before RouteOnRecord is turned on
			now := t0
			for step := range 40 {
				now = now.Add(time.Minute)
				if step == onAt {
					inline.RouteOnRecord(recordTargets)
				}
				if rng.IntN(8) == 0 {
					embassy := []string{"emb-a", "emb-b"}[rng.IntN(2)]
					for _, s := range []*Store{plain, inline} {
						if _, err := s.Heartbeat(embassy, embassy, now, 0); err != nil {
							t.Fatal(err)
						}
					}
				} else {
					key := fmt.Sprintf("%064x", rng.IntN(5))
					var escs []dialogs.Escalation
					for range 1 + rng.IntN(2) {
						escs = append(escs, dialogs.Escalation{
							Type: types[rng.IntN(len(types))], Severity: severities[rng.IntN(len(severities))],
							EmbassyID: []string{"emb-a", "emb-b", "emb-c"}[rng.IntN(3)], Case: dialogs.CaseOpen,
						})
					}
					for _, s := range []*Store{plain, inline} {
						if _, err := s.Process(key, "", now, result(func(_ *dialogs.State, r *dialogs.Result) { r.Escalations = escs })); err != nil {
							t.Fatal(err)
						}
					}
				}
				if rng.IntN(6) == 0 { // the deliverer's round, now and then
					if _, err := inline.Route(now, recordTargets); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, s := range []*Store{plain, inline} {
				if _, err := s.Route(now, recordTargets); err != nil {
					t.Fatal(err)
				}
			}
			want, got := routedRows(t, plain), routedRows(t, inline)
			if !slices.Equal(got, want) {
				t.Fatalf("routing on record left %d rows, Route alone %d:\n got %v\nwant %v", len(got), len(want), got, want)
			}
			if len(want) == 0 {
				t.Fatal("no rows routed: the test routed nothing")
			}
			inline.Close()
			if rep, err := Check(inline.Path()); err != nil || len(rep.Problems) > 0 {
				t.Fatalf("check after routing on record: %v %v", err, rep.Problems)
			}
		})
	}
}

// TestRouteOnRecordNeedsNoRoutingCommit: with RouteOnRecord on, an
// escalation's rows exist as soon as the write that recorded it returns —
// the deliverer's Route finds nothing to do (no write transaction), so the
// webhook waits for one commit, not two. Turned off again, Route routes.
func TestRouteOnRecordNeedsNoRoutingCommit(t *testing.T) {
	s := mustOpen(t)
	s.RouteOnRecord(recordTargets)
	duress := result(func(_ *dialogs.State, r *dialogs.Result) {
		r.Escalations = []dialogs.Escalation{{Type: dialogs.EventDuressTriggered, Severity: dialogs.SeverityCritical, EmbassyID: "emb-a", Case: dialogs.CaseOpen}}
	})
	if _, err := s.Process(fmt.Sprintf("%064x", 1), "", t0, duress); err != nil {
		t.Fatal(err)
	}
	if backlog, err := s.unrouted(); err != nil || backlog {
		t.Fatalf("after recording with RouteOnRecord: unrouted %v (%v), want nothing left for Route", backlog, err)
	}
	if rows := routedRows(t, s); len(rows) != 2 || !rows[0].Critical {
		t.Fatalf("rows %v, want the duress event's two critical rows", rows)
	}
	due, _, err := s.DueDeliveries(t0)
	if err != nil || len(due) != 2 {
		t.Fatalf("due at the event's time: %d (%v), want 2", len(due), err)
	}
	s.RouteOnRecord(nil)
	if _, err := s.Process(fmt.Sprintf("%064x", 2), "", t0, duress); err != nil {
		t.Fatal(err)
	}
	if backlog, _ := s.unrouted(); !backlog {
		t.Fatal("with RouteOnRecord off the event was routed anyway")
	}
	if n, err := s.Route(t0, recordTargets); err != nil || n != 2 {
		t.Fatalf("Route after turning it off: %d rows (%v), want 2", n, err)
	}
}
