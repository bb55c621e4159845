package webhook

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// scripted is a real loopback endpoint whose answer to each request is
// decided by a function of the event and how many requests came before.
type scripted struct {
	mu     sync.Mutex
	answer func(n int, id string) int
	ids    []string // every request, in order
	ok     []string // accepted ids, in order
}

func (e *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := r.Header.Get(HeaderID)
	code := e.answer(len(e.ids), id)
	e.ids = append(e.ids, id)
	if code < 300 {
		e.ok = append(e.ok, id)
	}
	w.WriteHeader(code)
}

func (e *scripted) accepted() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ok)
}

// TestBacklogChainsInOneRound drives rounds explicitly on a fake clock: a
// case's queued events go out one after the other in the same round, with
// no poll interval between them, while per-case order, refusals and the
// stop at an endpoint failure still hold.
func TestBacklogChainsInOneRound(t *testing.T) {
	type ev struct {
		key      string // registrant: one case each
		critical bool
	}
	three := []ev{{"a", false}, {"a", false}, {"a", true}}
	tests := []struct {
		name string
		evs  []ev
		// answer for each request once the endpoint is back; poison marks
		// the index of an event refused with 413.
		poison  int
		failAt  int // the n-th request after recovery fails with 503 (-1: none)
		want    []int
		wantReq int
	}{
		{name: "three in one case", evs: three, poison: -1, failAt: -1, want: []int{0, 1, 2}, wantReq: 3},
		{name: "SOS behind others in three cases",
			evs:    []ev{{"a", false}, {"b", false}, {"c", false}, {"a", false}, {"b", false}, {"a", true}, {"b", true}, {"c", true}},
			poison: -1, failAt: -1, want: []int{0, 1, 2, 3, 4, 5, 6, 7}, wantReq: 8},
		{name: "refused head holds its case only",
			evs:    []ev{{"a", false}, {"b", false}, {"a", true}, {"b", true}},
			poison: 0, failAt: -1, want: []int{1, 3}, wantReq: 3},
		{name: "failure mid-chain stops the endpoint",
			evs:    three,
			poison: -1, failAt: 1, want: []int{0}, wantReq: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			var ids []string
			for _, e := range tc.evs {
				sev := dialogs.SeverityInfo
				if e.critical {
					sev = dialogs.SeverityCritical
				}
				ids = append(ids, record(t, s, e.key, esc(dialogs.EventCaseUpdated, sev, dialogs.CaseOpen))[0].ID)
			}
			up := false
			ep := &scripted{answer: func(n int, id string) int {
				switch {
				case !up:
					return http.StatusServiceUnavailable
				case tc.poison >= 0 && id == ids[tc.poison]:
					return http.StatusRequestEntityTooLarge
				case tc.failAt >= 0 && n-1 == tc.failAt: // request 0 was the outage's
					return http.StatusServiceUnavailable
				}
				return http.StatusNoContent
			}}
			srv := httptest.NewServer(ep)
			defer srv.Close()
			clock := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
			p := DefaultPolicy()
			p.HeartbeatEvery, p.Jitter = 0, 0
			d := &Deliverer{Store: s, Policy: p, Now: func() time.Time { return clock },
				Endpoints: []Endpoint{{ID: "my-mekong", URL: srv.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong"}}}

			// The outage: one request, refused with 503; the rest waits.
			next, err := d.Round(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(ep.ids) != 1 || len(ep.accepted()) != 0 {
				t.Fatalf("during the outage: %d requests, %d accepted", len(ep.ids), len(ep.accepted()))
			}
			// Back up; the clock moves to the retry and not a second more.
			up = true
			clock = next
			if _, err := d.Round(context.Background()); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, i := range tc.want {
				want = append(want, ids[i])
			}
			// The same set (order across cases is free: critical first in
			// each wave); per-case order is checked below.
			got := ep.accepted()
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("one round delivered %v, want %v", got, want)
			}
			if got := len(ep.ids) - 1; got != tc.wantReq {
				t.Errorf("%d requests in the round, want %d", got, tc.wantReq)
			}
			// Per-case order as the sink saw it.
			pos := map[string]int{}
			for i, id := range ep.accepted() {
				pos[id] = i
			}
			for i := range tc.evs {
				for j := i + 1; j < len(tc.evs); j++ {
					pi, iok := pos[ids[i]]
					pj, jok := pos[ids[j]]
					if tc.evs[i].key == tc.evs[j].key && jok && (!iok || pj < pi) {
						t.Errorf("case %s: event %d delivered before event %d", tc.evs[i].key, j, i)
					}
				}
			}
		})
	}
}

// TestRunDrainsWithoutPolling: with a poll interval of an hour, one nudge
// delivers a whole queued case (and a backlog larger than one round's
// batch) — nothing waits for the poll.
func TestRunDrainsWithoutPolling(t *testing.T) {
	s := openStore(t)
	r := newReceiver(t, [][]byte{key1})
	const cases, each = 3, maxBatch/2 + 1 // more than one batch
	for c := range cases {
		escs := make([]dialogs.Escalation, each)
		for i := range escs {
			escs[i] = esc(dialogs.EventCaseUpdated, dialogs.SeverityInfo, dialogs.CaseOpen)
		}
		record(t, s, fmt.Sprint("k", c), escs...)
	}
	p := fastPolicy()
	p.Poll = time.Hour
	d := &Deliverer{Store: s, Policy: p, Endpoints: []Endpoint{{ID: "my-mekong", URL: r.srv.URL, Secrets: [][]byte{key1}, Embassy: "my-mekong"}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	d.Nudge()
	waitFor(t, "the whole backlog without a poll", func() bool { return len(r.received()) == cases*each })
	// The receiver answers before the deliverer records the outcome: wait
	// for the record rather than racing it (the poll is an hour away, so
	// only this run can settle it).
	waitFor(t, "the backlog recorded as delivered", func() bool { n, _ := s.Backlog(); return n == 0 })
}
