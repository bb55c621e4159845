package boltstore

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/store"
	bolt "go.etcd.io/bbolt"
)

// serveFile writes a file the way serve does: the registrant index built
// (IndexWith), then random traffic through the store of two embassies —
// registrants changing status and going overdue, escalations opening and
// joining cases, officers acknowledging and resolving, events acknowledged,
// a prune, an erasure — so every index has entries of every kind.
func serveFile(tb testing.TB, path string, seed uint64) {
	tb.Helper()
	s, err := Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	route := func(nationality, _ string) string {
		return map[string]string{"MY": "my-mekong", "ID": "id-mekong"}[nationality]
	}
	if err := s.IndexWith(route, "fp-1"); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	now := t0
	statuses := []dialogs.Status{dialogs.StatusActive, dialogs.StatusActive, dialogs.StatusPaused, dialogs.StatusStopped}
	types := []escalation.Type{escalation.TypeSOSRaised, escalation.TypeCheckinMissed, escalation.TypeDuressTriggered}
	for i := range 120 {
		now = now.Add(time.Minute)
		key := fmt.Sprintf("%064x", rng.IntN(15))
		nat := []string{"MY", "ID"}[rng.IntN(2)]
		erase := i > 100 && rng.IntN(10) == 0
		if i == 30 || i == 70 {
			var members []string
			for m := range 15 {
				members = append(members, fmt.Sprintf("%064x", m))
			}
			if err := s.CreateRollCall(store.RollCall{ID: fmt.Sprintf("rc_%d", i), EmbassyID: "my-mekong", Country: "KH",
				CreatedAt: now, Deadline: now.Add(30 * time.Minute), Members: members}); err != nil {
				tb.Fatal(err)
			}
		}
		if i == 60 {
			if err := s.CloseRollCall("rc_30"); err != nil {
				tb.Fatal(err)
			}
		}
		prompt := i > 30 && rng.IntN(3) == 0
		o, err := s.ProcessSend(key, "", now, &store.Envelope{Channel: "telegram"}, func(prev dialogs.State, _ bool) dialogs.Result {
			st := prev
			st.Key, st.Lang, st.Status = key, "en", statuses[rng.IntN(len(statuses))]
			st.Profile.Nationality, st.Profile.Country = nat, "KH"
			st.Overdue = st.Status == dialogs.StatusActive && rng.IntN(3) == 0
			st.Address = "chat"
			r := dialogs.Result{State: st, Erase: erase}
			if prompt {
				r.Audit, r.Replies, r.Prompt = []string{store.AuditRollCallPrompted}, []dialogs.Reply{{Text: "check in now"}}, true
			} else if rng.IntN(2) == 0 {
				st.LastCheckin = now
				r.State = st
			}
			if !erase && rng.IntN(2) == 0 {
				r.Escalations = []dialogs.Escalation{{Type: types[rng.IntN(len(types))], Severity: escalation.SeverityHigh,
					EmbassyID: route(nat, ""), Case: dialogs.CaseOpen}}
			}
			return r
		})
		if err != nil {
			tb.Fatal(err)
		}
		for _, it := range o.Sends {
			if rng.IntN(4) > 0 {
				if err := s.AckSends([]store.SendAck{{Seq: it.Seq, UserKey: key, Accepted: rng.IntN(3) > 0}}); err != nil {
					tb.Fatal(err)
				}
			}
		}
		for _, ev := range o.Events {
			if rng.IntN(3) == 0 {
				if err := s.AckEvent(ev.EmbassyID, ev.ID, "officer", now); err != nil {
					tb.Fatal(err)
				}
			}
			if rng.IntN(3) == 0 {
				act := []escalation.CaseAction{escalation.ActionAck, escalation.ActionResolve}[rng.IntN(2)]
				s.ChangeCase(store.CaseChange{Embassy: ev.EmbassyID, CaseID: ev.CaseID, Action: act, By: "officer", Outcome: escalation.OutcomeSafe}, now)
			}
		}
		if i == 60 {
			if _, err := s.Route(now, func(store.Event) []store.Target { return nil }); err != nil {
				tb.Fatal(err)
			}
			if _, err := s.Prune(now.Add(-20 * time.Minute)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if _, err := s.Heartbeat("my-primary", "my-mekong", now, time.Hour); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.RecordGap(store.Gap{Kind: "downtime", From: t0, To: now}, []string{"my-mekong", "id-mekong"}, now); err != nil {
		tb.Fatal(err)
	}
}

// TestCheckIndexesOfAServedFile: every index of a file written only
// through the store agrees with its records — the property that each
// index entry is written in the transaction of the change it follows.
// (With an index write left out of a transaction — indexEvent skipped in
// recordEvent, or reindexStatus skipped in ChangeCase — this fails,
// naming the missing entries.)
func TestCheckIndexesOfAServedFile(t *testing.T) {
	for seed := range uint64(4) {
		p := filepath.Join(t.TempDir(), "checkinbot.db")
		serveFile(t, p, seed)
		rep, err := Check(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range rep.Problems {
			t.Errorf("seed %d: %s", seed, pr)
		}
		if rep.Counts["rollcall_accepted"] == 0 {
			t.Errorf("seed %d: no roll-call prompt was accepted: the traffic does not exercise the counters", seed)
		}
		for _, idx := range []string{"case_index", "case_status_index", "regindex", "event_index", "event_unacked", "event_ids", "case_events"} {
			if rep.Counts[idx] == 0 {
				t.Errorf("seed %d: index %s has no entries: the traffic does not exercise it", seed, idx)
			}
		}
	}
}

// TestCheckFindsEachIndexInconsistency breaks one index at a time, in
// each direction, and wants Check to count it as missing or dangling.
func TestCheckFindsEachIndexInconsistency(t *testing.T) {
	// firstIn returns a bucket's first key (and value) for which keep holds.
	firstIn := func(tx *bolt.Tx, name []byte, keep func(k, v []byte) bool) ([]byte, []byte) {
		c := tx.Bucket(name).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if keep == nil || keep(k, v) {
				return bytes.Clone(k), bytes.Clone(v)
			}
		}
		t.Fatalf("bucket %s has no fitting entry", name)
		return nil, nil
	}
	del := func(name []byte) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			k, _ := firstIn(tx, name, nil)
			return tx.Bucket(name).Delete(k)
		}
	}
	for _, tc := range []struct {
		name   string
		break_ func(tx *bolt.Tx) error
		want   string
	}{
		{"case index entry missing", del(bucketCaseIndex), "index case_index: 1 missing entries (case case_"},
		{"case index entry dangling", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketCaseIndex).Put(caseIndexKey("my-mekong", 999), []byte("case_000999"))
		}, "index case_index: 1 dangling entries (case case_000999)"},
		{"status changed without the status index", func(tx *bolt.Tx) error {
			k, v := firstIn(tx, bucketCases, func(_, v []byte) bool { return bytes.Contains(v, []byte(`"status":"open"`)) })
			return tx.Bucket(bucketCases).Put(k, bytes.Replace(v, []byte(`"status":"open"`), []byte(`"status":"acked"`), 1))
		}, "index case_status_index: 1 missing entries"},
		{"status index entry left behind", func(tx *bolt.Tx) error {
			k, v := firstIn(tx, bucketCases, func(_, v []byte) bool { return bytes.Contains(v, []byte(`"status":"open"`)) })
			var c store.Case
			decode(v, &c)
			n, _ := caseNumber(string(k))
			return tx.Bucket(bucketCaseStatusIndex).Put(caseStatusKey(c.EmbassyID, escalation.CaseStatusResolved, n), k)
		}, "index case_status_index: 1 dangling entries"},
		{"registrant index entry missing", func(tx *bolt.Tx) error {
			k, _ := firstIn(tx, bucketRegIndex, nil)
			return tx.Bucket(bucketRegIndex).Delete(k)
		}, "index regindex: 1 missing entries"},
		{"registrant filed under another status", func(tx *bolt.Tx) error {
			k, v := firstIn(tx, bucketRegIndex, func(k, _ []byte) bool { return k[bytes.IndexByte(k, 0)+1] == 'p' })
			tx.Bucket(bucketRegIndex).Delete(k)
			k[bytes.IndexByte(k, 0)+1] = 's'
			if err := tx.Bucket(bucketRegIndex).Put(k, v); err != nil {
				return err
			}
			return tx.Bucket(bucketRegIndexUser).Put(k[bytes.IndexByte(k, 0)+2:], k)
		}, "(filed under another status)"},
		{"registrant erased but still listed", func(tx *bolt.Tx) error {
			k, _ := firstIn(tx, bucketRegIndexUser, nil)
			return tx.Bucket(bucketRegistrants).Delete(k)
		}, "index regindex: 2 dangling entries"},
		{"event index entry missing", del(bucketEventIndex), "index event_index: 1 missing entries (event evt_"},
		{"event index entry dangling", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEventIndex).Put(embassyEventKey("my-mekong", 9999), u64(1))
		}, "index event_index: 1 dangling entries"},
		{"unacknowledged entry of an acknowledged event", func(tx *bolt.Tx) error {
			ack, _ := firstIn(tx, bucketEventAcks, nil)
			i := bytes.IndexByte(ack, 0)
			v := tx.Bucket(bucketEventIDs).Get(ack[i+1:])
			return tx.Bucket(bucketEventUnacked).Put(embassyEventKey(string(ack[:i]), be(v[8:])), bytes.Clone(v[:8]))
		}, "(acknowledged)"},
		{"unacknowledged entry missing", del(bucketEventUnacked), "index event_unacked: 1 missing entries"},
		{"event id missing", del(bucketEventIDs), "index event_ids: 1 missing entries"},
		{"case event missing", del(bucketCaseEvents), "index case_events: 1 missing entries"},
		{"case event dangling", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketCaseEvents).Put(caseEventKey("case_000001", 99999), nil)
		}, "index case_events: 1 dangling entries"},
		{"registrant counter drifted", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketStatCounts).Put([]byte("status:paused"), u64(1000))
		}, "counter status:paused: says 1000, the registrants say"},
		{"registrant counter missing", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketStatCounts).Delete([]byte("status:active"))
		}, "counter status:active: missing"},
		{"roll-call counter drifted", func(tx *bolt.Tx) error {
			return addCount(tx.Bucket(bucketRCCounts), rcCountKey("rc_70", byte(store.MemberResponded)), 1)
		}, "counts"},
		{"roll-call accepted count drifted", func(tx *bolt.Tx) error {
			return addCount(tx.Bucket(bucketRCCounts), rcCountKey("rc_70", rcAccepted), 1)
		}, "prompted (accepted), its members say"},
		{"roll-call list entry missing", del(bucketRCLists), "member is missing from its list"},
		{"roll-call list entry dangling", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketRCLists).Put(rcListKey("rc_70", 'm', fmt.Sprintf("%064x", 99)), nil)
		}, "its lists hold"},
		{"embassy sequence behind", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEventSeq).Put([]byte("my-mekong"), u64(1))
		}, "sequence is behind its events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "checkinbot.db")
			serveFile(t, p, 1)
			boltFile(t, p, tc.break_)
			rep, err := Check(p)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, pr := range rep.Problems {
				found = found || strings.Contains(pr.String(), tc.want)
				t.Log(pr)
			}
			if !found {
				t.Errorf("no problem says %q: %v", tc.want, rep.Problems)
			}
		})
	}
}

func be(b []byte) uint64 {
	var n uint64
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	return n
}
