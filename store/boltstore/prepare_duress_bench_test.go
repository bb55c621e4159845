package boltstore

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/seal"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkCommitWorkDuress measures what the commit goroutine itself
// spends on one check-in — the write function run inside the transaction,
// fsync aside — for a plain check-in and a duress one, with writes
// prepared outside the commit and all in it. A prepared duress check-in
// opens a case inside the commit, which changes the state its record and
// index row were sealed from, so both are encoded and sealed again there:
// commit-ns/op shows how much more of the commit a duress check-in takes
// than a plain one on each path (the reply leaves after the commit; the
// runner's reply floor, 50 ms by default, is what hides the difference).
// Each iteration is rolled back, so every one is the first duress
// check-in of a registrant with no open case. The store routes escalations
// on record, as serve does, so the duress side includes its pending row.
func BenchmarkCommitWorkDuress(b *testing.B) {
	errRollback := errors.New("rolled back")
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	env := &store.Envelope{Channel: "telegram", Address: "7700123456", DeleteID: "77", DeleteBy: now.Add(47 * time.Hour)}
	reply := []dialogs.Reply{{Text: "Thank you. Check-in received. Next check-in: 09:00, 03/03."}}
	checkin := func(duress bool) store.Handler {
		return func(prev dialogs.State, _ bool) dialogs.Result {
			st := prev
			st.LastCheckin, st.NextDue = now, now.Add(24*time.Hour)
			res := dialogs.Result{State: st, Replies: reply, DeleteInbound: true, Audit: []string{"checkin"}}
			if duress {
				res.State.DoNotContact = true
				res.Escalations = []dialogs.Escalation{{Type: dialogs.EventDuressTriggered, Severity: dialogs.SeverityCritical,
					DoNotContact: true, EmbassyID: "my-kh", Case: dialogs.CaseOpen,
					Registrant: dialogs.RegistrantView{Name: st.Profile.Name, Phone: st.Profile.Phone},
					Details:    map[string]any{"text": ""}}}
			}
			return res
		}
	}
	for _, side := range []string{"prepared", "all-in-commit"} {
		for _, duress := range []bool{false, true} {
			name := side + "/plain"
			if duress {
				name = side + "/duress"
			}
			b.Run(name, func(b *testing.B) {
				m, _ := seal.NewMasterKey(make([]byte, seal.KeySize))
				s, err := OpenWith(filepath.Join(b.TempDir(), "bench.db"), Options{Keyring: &seal.Keyring{Current: m},
					AuditKey: []byte("bench-audit-key-0123456789abcdef")})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				if err := s.IndexWith(func(string, string) string { return "my-kh" }, "bench"); err != nil {
					b.Fatal(err)
				}
				// As serve: an escalation is routed in its own commit, to
				// the embassy's endpoint (webhook.Deliverer.Targets).
				s.RouteOnRecord(func(ev store.Event) []store.Target {
					return []store.Target{{Endpoint: ev.EmbassyID, Critical: ev.Severity.Critical()}}
				})
				key := "user-bench-0123456789abcdef0123456789abcdef0123456789abcdef01234"
				if _, err := s.Process(key, "", now, func(dialogs.State, bool) dialogs.Result {
					st := dialogs.State{Key: key, Status: dialogs.StatusActive, Lang: "en", Channel: "telegram", Address: env.Address,
						Interval: 24 * time.Hour, NextDue: now, Profile: dialogs.Profile{Name: "Siti Nur Rahmawati", Nationality: "MY",
							Country: "KH", City: "Sihanoukville Ward 07", Passport: "A4410007", Employer: "Golden Orchid Garments",
							Phone: "+85598760007"}}
					return dialogs.Result{State: st}
				}); err != nil {
					b.Fatal(err)
				}
				s.SetPrepare(side == "prepared")
				h := checkin(duress)
				var inCommit time.Duration
				for b.Loop() {
					var out store.Outcome
					write := processIn(s, key, "telegram:1", now, env, h, &out)
					if p := s.prepare(key, "telegram:1", now, env, h); p != nil {
						write = s.applyPrepared(p, key, "telegram:1", now, env, h, &out)
					}
					err := s.db.Update(func(tx *bolt.Tx) error {
						t0 := time.Now()
						if err := write(tx); err != nil {
							return err
						}
						inCommit += time.Since(t0)
						return errRollback
					})
					if !errors.Is(err, errRollback) {
						b.Fatal(err)
					}
					if duress && len(out.Events) != 1 {
						b.Fatalf("%d events", len(out.Events))
					}
				}
				b.ReportMetric(float64(inCommit.Nanoseconds())/float64(b.N), "commit-ns/op")
			})
		}
	}
}
