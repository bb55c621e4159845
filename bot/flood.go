package bot

// Flood and abuse control (issue 13 item 6), all in memory in the runner:
//
//   - floodGate counts each citizen's messages in arrival order (Submit's
//     call order, the order the per-citizen queue keeps) and marks those
//     over the limit; the engine then answers the first with one hint and
//     the rest with silence, while still scanning each for the duress
//     keyword and help words (dialogs/flood.go). The mark depends only on
//     arrival times, never on what a message says, so a duress flood and a
//     normal flood are marked, answered, timed and logged alike.
//   - admission limits how many new records (someone with no record writing
//     in) one chat may start per day and the whole service per minute;
//     beyond either, the engine's TryLater hint and no record. It never
//     looks at anyone who has a record, so check-ins are never refused.
//
// Both forget on restart: they bound abuse, they are not a ledger. Their
// maps are bounded: idle entries are dropped on a sweep.

import (
	"log/slog"
	"sync"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
)

// FloodLimit is the per-citizen inbound limit: more than Messages messages
// within Window starts a flood, which lasts until a whole Window passed
// with no message. Zero Messages means no limit (the runner's default, so
// tests and tools that replay many messages are not throttled; the App
// sets DefaultFloodLimit or the configuration's).
type FloodLimit struct {
	Messages int
	Window   time.Duration
}

// DefaultFloodLimit is the limit `serve` uses unless configured: a person
// tapping quickly stays below it, a script does not.
var DefaultFloodLimit = FloodLimit{Messages: 20, Window: 10 * time.Second}

// RegistrationLimit bounds new records. Zero fields mean no limit (the
// runner's default; the App sets DefaultRegistrationLimit or the
// configuration's).
type RegistrationLimit struct {
	// PerChatPerDay is how many records one chat may start in 24 hours: a
	// first contact, and again after each real delete or declined consent.
	PerChatPerDay int
	// PerMinute is how many records all unknown chats together may start
	// in a minute: what stops many accounts filling the data file.
	PerMinute int
}

// DefaultRegistrationLimit allows a declined consent and a withdraw and
// re-register cycle per chat and day, with room for mistakes, and more
// sign-ups a minute than the channels could carry conversations for.
var DefaultRegistrationLimit = RegistrationLimit{PerChatPerDay: 5, PerMinute: 120}

// floodGate is the per-citizen sliding window.
type floodGate struct {
	mu        sync.Mutex
	users     map[string]*floodState
	lastSweep time.Time
	// The log: one line a minute at most, with how many floods began.
	loggedAt time.Time
	unlogged int
}

// floodState is one citizen's recent arrivals.
type floodState struct {
	recent  []time.Time // the last Messages arrivals, a ring
	next    int         // the ring's oldest entry once full
	last    time.Time
	flooded bool
}

// arrive counts one message of key arriving at now under limit and says
// how the engine must treat it. Call it in arrival order.
func (g *floodGate) arrive(limit FloodLimit, key string, now time.Time, log *slog.Logger, channel string) dialogs.Flood {
	if limit.Messages <= 0 || limit.Window <= 0 {
		return dialogs.FloodNone
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.users == nil {
		g.users = map[string]*floodState{}
	}
	if now.Sub(g.lastSweep) >= limit.Window {
		// Whoever sent nothing for a whole window is as good as new.
		for k, u := range g.users {
			if now.Sub(u.last) >= limit.Window {
				delete(g.users, k)
			}
		}
		g.lastSweep = now
	}
	u := g.users[key]
	if u == nil || now.Sub(u.last) >= limit.Window {
		u = &floodState{recent: make([]time.Time, 0, limit.Messages)}
		g.users[key] = u
	}
	u.last = now
	if u.flooded {
		return dialogs.FloodSilent // until a whole window passes with nothing
	}
	if len(u.recent) < limit.Messages {
		u.recent = append(u.recent, now)
		return dialogs.FloodNone
	}
	if now.Sub(u.recent[u.next]) >= limit.Window {
		u.recent[u.next] = now
		u.next = (u.next + 1) % limit.Messages
		return dialogs.FloodNone
	}
	u.flooded = true
	g.logStart(log, channel, limit, now)
	return dialogs.FloodStart
}

// logStart logs that a flood began — no chat, no user, no message, only
// the channel — at most once a minute, counting those in between.
func (g *floodGate) logStart(log *slog.Logger, channel string, limit FloodLimit, now time.Time) {
	g.unlogged++
	if log == nil || (!g.loggedAt.IsZero() && now.Sub(g.loggedAt) < time.Minute) {
		return
	}
	log.Info("inbound flood: a chat sent more than the limit; its replies pause until it calms (messages are still read)",
		"channel", channel, "floods", g.unlogged, "limit", limit.Messages, "window", limit.Window)
	g.loggedAt, g.unlogged = now, 0
}

// admission bounds new records, per chat and overall.
type admission struct {
	mu        sync.Mutex
	chats     map[string][]time.Time // records started per chat, last 24 h
	minute    []time.Time            // records started by anyone, last minute
	held      map[string]bool        // reservations of transactions in flight
	lastSweep time.Time
}

// admissionDay is the per-chat period.
const admissionDay = 24 * time.Hour

// reserve asks whether key, which has no record, may start one at now.
// A yes holds a place until settle; asking again for a key that holds one
// says yes again (a store transaction may run its handler twice).
func (a *admission) reserve(limit RegistrationLimit, key string, now time.Time) bool {
	if limit.PerChatPerDay <= 0 && limit.PerMinute <= 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.held[key] {
		return true
	}
	a.prune(now)
	ts := a.chats[key]
	for len(ts) > 0 && now.Sub(ts[0]) >= admissionDay {
		ts = ts[1:]
	}
	if len(ts) == 0 {
		delete(a.chats, key)
	} else {
		a.chats[key] = ts
	}
	if limit.PerChatPerDay > 0 && len(ts) >= limit.PerChatPerDay {
		return false
	}
	if limit.PerMinute > 0 && len(a.minute)+len(a.held) >= limit.PerMinute {
		return false
	}
	if a.held == nil {
		a.held = map[string]bool{}
	}
	a.held[key] = true
	return true
}

// settle ends key's reservation: created says a record was written.
func (a *admission) settle(key string, now time.Time, created bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.held[key] {
		return
	}
	delete(a.held, key)
	if !created {
		return
	}
	if a.chats == nil {
		a.chats = map[string][]time.Time{}
	}
	a.chats[key] = append(a.chats[key], now)
	a.minute = append(a.minute, now)
}

// prune forgets what fell out of its period: the minute on every call,
// the chats at most once a minute.
func (a *admission) prune(now time.Time) {
	i := 0
	for i < len(a.minute) && now.Sub(a.minute[i]) >= time.Minute {
		i++
	}
	a.minute = a.minute[i:]
	if now.Sub(a.lastSweep) < time.Minute {
		return
	}
	a.lastSweep = now
	for k, ts := range a.chats {
		j := 0
		for j < len(ts) && now.Sub(ts[j]) >= admissionDay {
			j++
		}
		if j == len(ts) {
			delete(a.chats, k)
		} else {
			a.chats[k] = ts[j:]
		}
	}
}
