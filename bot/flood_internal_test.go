package bot

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// TestFloodGateMatchesItsDefinition drives the gate with random arrivals
// of a few citizens (bursts, pauses, exactly-a-window gaps) and compares
// every mark with the definition, computed naively from the whole
// history: more than Messages arrivals within Window starts a flood (the
// first message over gets FloodStart), which lasts until an arrival comes
// a whole Window after the previous one.
func TestFloodGateMatchesItsDefinition(t *testing.T) {
	limit := FloodLimit{Messages: 5, Window: time.Second}
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var g floodGate
		type model struct {
			since   []time.Time // arrivals since the last calm
			flooded bool
			last    time.Time
		}
		users := map[string]*model{}
		now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		for i := range 400 {
			switch rng.IntN(10) {
			case 0:
				now = now.Add(limit.Window) // exactly a window: calm
			case 1:
				now = now.Add(time.Duration(rng.Int64N(int64(3 * limit.Window))))
			default:
				now = now.Add(time.Duration(rng.Int64N(int64(limit.Window / 4))))
			}
			key := fmt.Sprint("user-", rng.IntN(3))
			m := users[key]
			if m == nil || now.Sub(m.last) >= limit.Window {
				m = &model{}
				users[key] = m
			}
			m.last = now
			want := dialogs.FloodSilent
			if !m.flooded {
				in := 1
				for _, a := range m.since {
					if now.Sub(a) < limit.Window {
						in++
					}
				}
				m.since = append(m.since, now)
				want = dialogs.FloodNone
				if in > limit.Messages {
					m.flooded, want = true, dialogs.FloodStart
				}
			}
			if got := g.arrive(limit, key, now, nil, "test"); got != want {
				t.Fatalf("seed %d, arrival %d (%s at %s): mark %d, want %d", seed, i, key, now.Format(time.StampMilli), got, want)
			}
		}
		if len(g.users) > 3 {
			t.Fatalf("seed %d: %d citizens remembered, at most 3 exist", seed, len(g.users))
		}
	}
}

// TestFloodGateForgetsTheIdle: a citizen silent for a whole window is
// forgotten at the next sweep, so the map holds only recent senders.
func TestFloodGateForgetsTheIdle(t *testing.T) {
	limit := FloodLimit{Messages: 5, Window: time.Second}
	var g floodGate
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for i := range 1000 {
		g.arrive(limit, fmt.Sprint("user-", i), now, nil, "test")
		now = now.Add(10 * time.Millisecond)
	}
	if n := len(g.users); n > 1000 || n < 100 {
		t.Fatalf("%d citizens remembered after 1000 arrivals over 10 s", n)
	}
	now = now.Add(limit.Window)
	g.arrive(limit, "last", now, nil, "test")
	if n := len(g.users); n != 1 {
		t.Errorf("%d citizens remembered after a quiet window, want only the last sender", n)
	}
}

// TestAdmissionMatchesItsDefinition drives reserve and settle with random
// chats, outcomes and clock steps, and compares each answer with the
// definition over the whole history: a chat may start at most
// PerChatPerDay records in any 24 hours, everyone together at most
// PerMinute in any minute; a reservation counts while held.
func TestAdmissionMatchesItsDefinition(t *testing.T) {
	limit := RegistrationLimit{PerChatPerDay: 3, PerMinute: 4}
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 11))
		var a admission
		type record struct {
			key string
			at  time.Time
		}
		var created []record
		now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		for i := range 300 {
			switch rng.IntN(8) {
			case 0:
				now = now.Add(time.Duration(rng.Int64N(int64(30 * time.Hour))))
			case 1:
				now = now.Add(time.Minute)
			default:
				now = now.Add(time.Duration(rng.Int64N(int64(20 * time.Second))))
			}
			key := fmt.Sprint("chat-", rng.IntN(4))
			perChat, perMinute := 0, 0
			for _, c := range created {
				if c.key == key && now.Sub(c.at) < admissionDay {
					perChat++
				}
				if now.Sub(c.at) < time.Minute {
					perMinute++
				}
			}
			want := perChat < limit.PerChatPerDay && perMinute < limit.PerMinute
			got := a.reserve(limit, key, now)
			if got != want {
				t.Fatalf("seed %d step %d: %s may start a record: %v, want %v (%d today, %d this minute)", seed, i, key, got, want, perChat, perMinute)
			}
			if !got {
				continue
			}
			if !a.reserve(limit, key, now) {
				t.Fatalf("seed %d step %d: a held reservation refused when asked again", seed, i)
			}
			ok := rng.IntN(3) > 0 // the store wrote the record (or not: an error, a duplicate, an erase)
			a.settle(key, now, ok)
			if ok {
				created = append(created, record{key, now})
			}
		}
	}
}
