package bot

import (
	"math"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// Crowding (issue 15 item 5): the time question offers times by how free
// they are. The store counts, per channel, how many registrants' prompts
// fall in each 15-minute UTC slot (kept in each write's transaction); the
// runner reads those counters at most once a minute and hands them, with
// the channel's send rate, to the engine as plain data (Input.Crowding),
// so the engine stays pure.

// SlotLoader is the optional store port behind the crowding advice: the
// slot counters by channel. A store without it gives no advice.
type SlotLoader interface {
	SlotLoads() (map[string][dialogs.SlotsPerDay]int, error)
}

// crowdingEvery is how long the cached slot counters are used before the
// store is read again.
const crowdingEvery = time.Minute

// crowdingCache holds the last read of the slot counters, built into one
// shared, read-only dialogs.Crowding per channel.
type crowdingCache struct {
	mu   sync.Mutex
	read time.Time
	by   map[string]*dialogs.Crowding
}

// crowding is the send capacity and prompt load of channel for the engine:
// nil when the channel reports no finite rate or the store keeps no slot
// counters. A failed read keeps the previous values (and is retried a
// minute later); the advice is a courtesy, never a reason to fail an input.
func (r *Runner) crowding(channel string) *dialogs.Crowding {
	loader, ok := r.Store.(SlotLoader)
	if !ok {
		return nil
	}
	sender, err := r.sender(channel)
	if err != nil {
		return nil
	}
	rater, ok := sender.(SendRater)
	if !ok {
		return nil
	}
	rate := rater.SendRate()
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return nil
	}
	c := &r.crowd
	c.mu.Lock()
	defer c.mu.Unlock()
	now := r.Now()
	if c.by == nil || now.Sub(c.read) >= crowdingEvery || now.Before(c.read) {
		c.read = now
		loads, err := loader.SlotLoads()
		if err != nil {
			r.Log.Warn("crowding: slot counters unreadable; the time question keeps its last advice", "err", err)
		} else {
			c.by = map[string]*dialogs.Crowding{}
			for ch, load := range loads {
				c.by[ch] = &dialogs.Crowding{Load: load}
			}
		}
	}
	cr, ok := c.by[channel]
	if !ok {
		cr = &dialogs.Crowding{}
		if c.by == nil {
			c.by = map[string]*dialogs.Crowding{}
		}
		c.by[channel] = cr
	}
	if cr.Rate != rate {
		// Shared with inputs in flight: never changed in place.
		cr = &dialogs.Crowding{Rate: rate, Load: cr.Load}
		c.by[channel] = cr
	}
	return cr
}
