package bot

import (
	"sync"
	"time"
)

// Counters for /metrics and /readyz. They are keyed only by channel name,
// priority and outcome — never by a citizen, a chat or anything an input
// said — so no number here can name a person.

// Stats is a snapshot of the runner's counters since it started.
type Stats struct {
	// Inbound counts updates submitted, by channel.
	Inbound map[string]int64
	// Sent and Failed count queued reply rows the channels accepted or
	// refused, by channel.
	Sent, Failed map[string]int64
	// Queued counts reply rows handed to a channel's queue, by priority
	// ("safety", "reply", "reminder").
	Queued map[string]int64
	// InFlight is how many submitted updates are not yet processed, and
	// OldestInFlight when the oldest of them arrived (zero: none). An old
	// one means intake is stuck (a store that cannot write, a wedged
	// citizen queue).
	InFlight       int
	OldestInFlight time.Time
	// GivenUp counts updates given up (see Runner.GivenUp).
	GivenUp int64
}

// PriorityName is a priority's label value in metrics.
func PriorityName(p Priority) string {
	switch p {
	case PrioritySafety:
		return "safety"
	case PriorityReply:
		return "reply"
	case PriorityReminder:
		return "reminder"
	}
	return "other"
}

// stats is the runner's counters; the zero value is ready.
type stats struct {
	mu                            sync.Mutex
	inbound, sent, failed, queued map[string]int64
	intake                        map[uint64]time.Time
	next                          uint64
}

func bump(m *map[string]int64, k string) {
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[k]++
}

// arrive counts an update and marks it in flight until leave(id).
func (s *stats) arrive(channel string, at time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	bump(&s.inbound, channel)
	if s.intake == nil {
		s.intake = map[uint64]time.Time{}
	}
	s.next++
	s.intake[s.next] = at
	return s.next
}

func (s *stats) leave(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.intake, id)
}

func (s *stats) handed(p Priority) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bump(&s.queued, PriorityName(p))
}

func (s *stats) settled(channel string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		bump(&s.sent, channel)
	} else {
		bump(&s.failed, channel)
	}
}

func clone(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Stats returns a snapshot of the runner's counters.
func (r *Runner) Stats() Stats {
	s := &r.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Inbound: clone(s.inbound), Sent: clone(s.sent), Failed: clone(s.failed), Queued: clone(s.queued),
		InFlight: len(s.intake), GivenUp: r.givenUp.Load()}
	for _, at := range s.intake {
		if st.OldestInFlight.IsZero() || at.Before(st.OldestInFlight) {
			st.OldestInFlight = at
		}
	}
	return st
}
