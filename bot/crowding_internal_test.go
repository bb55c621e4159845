package bot

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// slotStore is a store that only answers SlotLoads, counting the reads.
type slotStore struct {
	Store // nil: nothing else is called
	reads int
	loads map[string][dialogs.SlotsPerDay]int
	err   error
}

func (s *slotStore) SlotLoads() (map[string][dialogs.SlotsPerDay]int, error) {
	s.reads++
	return s.loads, s.err
}

type ratedSender struct{ rate float64 }

func (ratedSender) Send(context.Context, string, Response) error { return nil }
func (s ratedSender) SendRate() float64                          { return s.rate }

type plainSender struct{}

func (plainSender) Send(context.Context, string, Response) error { return nil }

// TestCrowdingCache: the runner reads the slot counters at most once a
// minute, hands each channel its own loads with its own rate, gives
// nothing for a channel without a finite rate, and keeps the last loads
// when a read fails.
func TestCrowdingCache(t *testing.T) {
	st := &slotStore{loads: map[string][dialogs.SlotsPerDay]int{"telegram": {4: 7}, "whatsapp": {5: 9}}}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	r := NewRunner(nil, st, nil)
	r.Now = func() time.Time { return now }
	r.Register("telegram", ratedSender{30})
	r.Register("whatsapp", ratedSender{1})
	r.Register("terminal", ratedSender{math.Inf(1)})
	r.Register("plain", plainSender{})

	tg := r.crowding("telegram")
	if tg == nil || tg.Rate != 30 || tg.Load[4] != 7 {
		t.Fatalf("telegram: %+v, want rate 30 and 7 prompts in slot 4", tg)
	}
	if wa := r.crowding("whatsapp"); wa == nil || wa.Rate != 1 || wa.Load[5] != 9 || wa.Load[4] != 0 {
		t.Errorf("whatsapp: %+v, want its own loads at rate 1", wa)
	}
	for _, ch := range []string{"terminal", "plain", "unregistered"} {
		if c := r.crowding(ch); c != nil {
			t.Errorf("%s: %+v, want no advice", ch, c)
		}
	}
	if st.reads != 1 {
		t.Errorf("%d reads for inputs in one minute, want 1", st.reads)
	}
	st.loads = map[string][dialogs.SlotsPerDay]int{"telegram": {4: 8}}
	now = now.Add(59 * time.Second)
	if r.crowding("telegram").Load[4] != 7 || st.reads != 1 {
		t.Errorf("re-read within the minute (%d reads)", st.reads)
	}
	now = now.Add(time.Second)
	if got := r.crowding("telegram"); got.Load[4] != 8 || st.reads != 2 {
		t.Errorf("after a minute: load %d, %d reads; want 8 and 2", got.Load[4], st.reads)
	}
	if tg.Load[4] != 7 {
		t.Error("a value handed out earlier changed under its reader")
	}
	st.err = errors.New("disk gone")
	now = now.Add(time.Minute)
	if got := r.crowding("telegram"); got == nil || got.Load[4] != 8 || st.reads != 3 {
		t.Errorf("a failed read: %+v after %d reads, want the last loads kept", got, st.reads)
	}
}
