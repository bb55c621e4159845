package boltstore

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/errs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// clearCase is the engine's step on a resolution, as dialogs does it.
func clearCase(id string) store.Handler {
	return func(prev dialogs.State, _ bool) dialogs.Result {
		st := prev
		if st.OpenCase == id {
			st.OpenCase, st.DoNotContact = "", false
		}
		return dialogs.Result{State: st, Audit: []string{"case.resolved"}}
	}
}

// TestResolveCaseIsOneTransaction resolves many cases while a reader
// looks at the file in snapshots: in none may a case be resolved while
// its registrant still has it open and do_not_contact set (nor the
// reverse). Two officers race on every case: one wins, the other gets
// ECONFLICT with the resolved case. (With the case change and the
// engine's step committed in two transactions, the reader sees the gap.)
func TestResolveCaseIsOneTransaction(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "checkinbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 40
	ids := make([]string, n)
	for i := range n {
		key := fmt.Sprintf("%064x", i)
		o, err := s.Process(key, "", t0, func(prev dialogs.State, _ bool) dialogs.Result {
			st := prev
			st.Status, st.DoNotContact = dialogs.StatusActive, true
			return dialogs.Result{State: st, Escalations: []dialogs.Escalation{{Type: escalation.TypeDuressTriggered,
				Severity: escalation.SeverityCritical, EmbassyID: "a", Case: dialogs.CaseOpen}}}
		})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = o.Events[0].CaseID
	}
	stop := make(chan struct{})
	var snapshots, torn atomic.Int64
	var reader sync.WaitGroup
	reader.Add(1)
	first := make(chan struct{}) // the resolutions start once the reader looks
	go func() {
		defer reader.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.db.View(func(tx *bolt.Tx) error {
				for i, id := range ids {
					var c store.Case
					json.Unmarshal(tx.Bucket(bucketCases).Get([]byte(id)), &c)
					var st dialogs.State
					json.Unmarshal(tx.Bucket(bucketRegistrants).Get([]byte(fmt.Sprintf("%064x", i))), &st)
					if (c.Status == escalation.CaseStatusResolved) == (st.OpenCase == id && st.DoNotContact) {
						torn.Add(1)
					}
				}
				return nil
			})
			if snapshots.Add(1) == 1 {
				close(first)
			}
		}
	}()
	<-first
	var wins, conflicts atomic.Int64
	var wg sync.WaitGroup
	for i, id := range ids {
		for officer := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ch := store.CaseChange{Embassy: "a", CaseID: id, Action: escalation.ActionResolve, By: fmt.Sprint("officer-", officer),
					Outcome: escalation.OutcomeSafe}
				c, _, err := s.ResolveCase(ch, fmt.Sprintf("%064x", i), t0, nil, clearCase(id))
				switch {
				case err == nil:
					wins.Add(1)
				case errs.ErrorCode(err) == errs.ECONFLICT && c.Status == escalation.CaseStatusResolved:
					conflicts.Add(1)
				default:
					t.Errorf("resolve %s: %v (%+v)", id, err, c)
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	reader.Wait()
	if wins.Load() != n || conflicts.Load() != n {
		t.Errorf("%d wins and %d conflicts, want %d each", wins.Load(), conflicts.Load(), n)
	}
	if torn.Load() > 0 {
		t.Errorf("%d times in %d snapshots a case and its registrant disagreed", torn.Load(), snapshots.Load())
	}
	audit, _ := s.Audit()
	resolves := 0
	for _, e := range audit {
		if e.Action == store.AuditCaseUpdated {
			resolves++
		}
	}
	if resolves != n {
		t.Errorf("%d case.updated audit entries, want %d (one per case)", resolves, n)
	}
	// Another embassy's case: not found, nothing run.
	if _, _, err := s.ResolveCase(store.CaseChange{Embassy: "b", CaseID: ids[0], Action: escalation.ActionResolve,
		Outcome: escalation.OutcomeSafe}, fmt.Sprintf("%064x", 0), t0, nil, clearCase(ids[0])); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("another embassy's case: %v", err)
	}
}

// TestResolveCaseSurvivesAnUnreadableRegistrant: when the engine cannot
// handle the registrant (its record is corrupt), the resolution is still
// recorded, do_not_contact untouched.
func TestResolveCaseSurvivesAnUnreadableRegistrant(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "checkinbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := fmt.Sprintf("%064x", 1)
	o, err := s.Process(key, "", t0, func(prev dialogs.State, _ bool) dialogs.Result {
		return dialogs.Result{State: prev, Escalations: []dialogs.Escalation{{Type: escalation.TypeSOSRaised,
			Severity: escalation.SeverityCritical, EmbassyID: "a", Case: dialogs.CaseOpen}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	id := o.Events[0].CaseID
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRegistrants).Put([]byte(key), []byte("{")) })
	c, _, err := s.ResolveCase(store.CaseChange{Embassy: "a", CaseID: id, Action: escalation.ActionResolve, By: "o",
		Outcome: escalation.OutcomeSafe}, key, t0, nil, clearCase(id))
	if err != nil || c.Status != escalation.CaseStatusResolved {
		t.Errorf("resolution with an unreadable registrant: %+v, %v", c, err)
	}
}
