package dialogs_test

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/locales"
)

// utcSlot is the slot of hh:mm UTC.
func utcSlot(hh, mm int) int { return dialogs.SlotOf(time.Date(2026, 3, 2, hh, mm, 0, 0, time.UTC)) }

// khSlot is the UTC slot of hh:mm in Phnom Penh (UTC+7, no daylight
// saving time), where the test citizen lives.
func khSlot(hh, mm int) int {
	return utcSlot((hh+24-7)%24, mm)
}

// loads builds a load from slot → count.
func loads(m map[int]int) [dialogs.SlotsPerDay]int {
	var l [dialogs.SlotsPerDay]int
	for s, n := range m {
		l[s] = n
	}
	return l
}

// TestLateness: a prompt is late only when the queue it joins — what
// earlier slots could not send, plus its own slot — exceeds what the
// channel sends in one slot; the lateness is that queue at the channel's
// rate, and the queue of the end of the day spills into its start.
func TestLateness(t *testing.T) {
	const rate = 1.0 // 900 prompts a slot
	for _, tc := range []struct {
		name string
		c    *dialogs.Crowding
		slot int
		want time.Duration
	}{
		{"no data", nil, 0, 0},
		{"unlimited", &dialogs.Crowding{Rate: math.Inf(1), Load: loads(map[int]int{4: 1e6})}, 4, 0},
		{"zero rate is no limit", &dialogs.Crowding{Rate: 0, Load: loads(map[int]int{4: 1e6})}, 4, 0},
		{"empty", &dialogs.Crowding{Rate: rate}, 4, 0},
		{"fits the slot", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{4: 899})}, 4, 0},
		{"one over", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{4: 900})}, 4, 901 * time.Second},
		{"crowded", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{4: 5000})}, 4, 5001 * time.Second},
		{"the backlog spills into the next slot", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{4: 5000})}, 5, (5000 - 900 + 1) * time.Second},
		{"and stops when sent", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{4: 2000})}, 6, 0},
		{"the slot before is untouched", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{4: 5000})}, 3, 0},
		{"23:45 spills into 00:00", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{dialogs.SlotsPerDay - 1: 2000})}, 0, (2000 - 900 + 1) * time.Second},
		{"out of range", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{4: 5000})}, dialogs.SlotsPerDay, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Lateness(tc.slot); got != tc.want {
				t.Errorf("Lateness(%d) = %v, want %v", tc.slot, got, tc.want)
			}
		})
	}
}

// timeQuestion asks a registered citizen the time question (settings) with
// crowding data c, and returns its buttons' labels.
func timeQuestion(t *testing.T, e *dialogs.Engine, c *dialogs.Crowding) []string {
	t.Helper()
	st := registered(t, e)
	st.Step = dialogs.StepSettingsMenu
	in := dialogs.Input{Kind: dialogs.KindButton, Key: st.Key, Channel: "telegram", Address: "1001",
		Text: string(dialogs.StepSettingsTime), Crowding: c}
	res := e.Handle(st, in, testNow)
	if res.State.Step != dialogs.StepSettingsTime || len(res.Replies) == 0 {
		t.Fatalf("the time question was not asked: %+v", res.Replies)
	}
	var labels []string
	for _, b := range res.Replies[len(res.Replies)-1].Buttons {
		if b.Label != b.Data {
			t.Errorf("button %q answers %q: a time's button must answer its time", b.Label, b.Data)
		}
		labels = append(labels, b.Label)
	}
	return labels
}

// TestTimeOfferPicksFreeSlots: the time question offers the usual times
// where they are free, and otherwise the freest slot within an hour of
// each (nearest first, earlier on a tie), in the citizen's own time.
func TestTimeOfferPicksFreeSlots(t *testing.T) {
	e := newEngine(t)
	usual := []string{"08:00", "12:00", "20:00"}
	const rate = 1.0 // 900 prompts a slot
	for _, tc := range []struct {
		name string
		c    *dialogs.Crowding
		want []string
	}{
		{"no data", nil, usual},
		{"unlimited channel", &dialogs.Crowding{Rate: math.Inf(1), Load: loads(map[int]int{khSlot(8, 0): 1e6})}, usual},
		{"nobody yet", &dialogs.Crowding{Rate: rate}, usual},
		{"busy but not late", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{khSlot(8, 0): 800})}, usual},
		{"08:00 crowded: the earlier neighbour", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{khSlot(8, 0): 5000})}, []string{"07:45", "12:00", "20:00"}},
		{"07:45 too: two slots earlier", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{khSlot(7, 45): 900, khSlot(8, 0): 5000})}, []string{"07:30", "12:00", "20:00"}},
		{"12:00 crowded, spilling to 12:15", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{khSlot(12, 0): 2000})}, []string{"08:00", "11:45", "20:00"}},
		{"20:00 and earlier crowded: later", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{
			khSlot(19, 0): 900, khSlot(19, 15): 900, khSlot(19, 30): 900, khSlot(19, 45): 900, khSlot(20, 0): 900})}, []string{"08:00", "12:00", "20:15"}},
		// 9,000 at 07:00 take 10 slots to send: every slot from 07:00 to
		// 09:00 is late, 09:00 the least (1,801 s).
		{"nothing free within the hour: the least late", &dialogs.Crowding{Rate: rate, Load: loads(map[int]int{khSlot(7, 0): 9000})},
			[]string{"09:00", "12:00", "20:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := timeQuestion(t, e, tc.c); !slices.Equal(got, tc.want) {
				t.Errorf("offered %v, want %v", got, tc.want)
			}
		})
	}
}

// crowdedAt8 is 5,000 prompts at 08:00 in Phnom Penh on a channel sending
// one a second: a prompt chosen for 08:00 may leave 5,001 s (≈ 83.4 min,
// said as 85) late, and 07:45 is the nearest free time.
var crowdedAt8 = &dialogs.Crowding{Rate: 1, Load: loads(map[int]int{khSlot(8, 0): 5000})}

// TestCrowdedTimeWarnsInEveryLanguage: choosing a crowded time keeps it,
// and adds one line — in the citizen's language, every placeholder filled
// — with the lateness and a button for the nearest free time; pressing it
// moves the time there. A free time warns of nothing.
func TestCrowdedTimeWarnsInEveryLanguage(t *testing.T) {
	e := newEngine(t)
	english := ""
	for _, lang := range locales.Order {
		t.Run(lang, func(t *testing.T) {
			st := registered(t, e)
			st.Lang, st.Step = lang, dialogs.StepSettingsTime
			in := dialogs.Input{Kind: dialogs.KindText, Key: st.Key, Channel: "telegram", Address: "1001", Text: "08:00", Crowding: crowdedAt8}
			res := e.Handle(st, in, testNow)
			if res.State.CheckinTime != "08:00" {
				t.Fatalf("the chosen time was not kept: %q", res.State.CheckinTime)
			}
			var warn *dialogs.Reply
			for i, r := range res.Replies {
				if strings.Contains(r.Text, "<no value>") {
					t.Errorf("a placeholder is unfilled: %q", r.Text)
				}
				if len(r.Buttons) == 1 && strings.HasPrefix(r.Buttons[0].Data, "retime:") {
					warn = &res.Replies[i]
				}
			}
			if warn == nil {
				t.Fatalf("no crowding line among %+v", res.Replies)
			}
			for _, want := range []string{"08:00", "85", "07:45"} {
				if !strings.Contains(warn.Text, want) {
					t.Errorf("the line %q does not say %s", warn.Text, want)
				}
			}
			if b := warn.Buttons[0]; b.Data != "retime:07:45" || !strings.Contains(b.Label, "07:45") {
				t.Errorf("button %+v, want one for 07:45", b)
			}
			if lang == "en" {
				english = warn.Text
			} else if warn.Text == english {
				t.Errorf("the line is in English: %q", warn.Text)
			}

			pressed := e.Handle(res.State, dialogs.Input{Kind: dialogs.KindButton, Key: st.Key, Channel: "telegram",
				Address: "1001", Text: warn.Buttons[0].Data, Crowding: crowdedAt8}, testNow)
			if pressed.State.CheckinTime != "07:45" {
				t.Errorf("pressing the button left the time at %q", pressed.State.CheckinTime)
			}
			if len(pressed.Escalations) != 1 || pressed.Escalations[0].Type != dialogs.EventRegistrationUpdated {
				t.Errorf("pressing the button sent %v, want registration.updated", eventTypes2(pressed.Escalations))
			}

			st.Step = dialogs.StepSettingsTime
			free := e.Handle(st, dialogs.Input{Kind: dialogs.KindText, Key: st.Key, Channel: "telegram", Address: "1001",
				Text: "12:00", Crowding: crowdedAt8}, testNow)
			for _, r := range free.Replies {
				if len(r.Buttons) > 0 {
					t.Errorf("a free time got a reply with buttons: %+v", r)
				}
			}
		})
	}
}

// TestRetimeDuringRegistration: the button pressed while registering
// stores the free time and asks the open question again; a button from
// nowhere (no consent yet) or with a broken time is only a hint.
func TestRetimeDuringRegistration(t *testing.T) {
	e := newEngine(t)
	st, res := say(e, dialogs.State{}, testNow, "/start", "en", "1", "MY", "KH", "Phnom Penh", "Siti Aminah",
		"skip", "skip", "skip", "24h")
	res = e.Handle(st, dialogs.Input{Kind: dialogs.KindText, Key: "user-1", Channel: "telegram", Address: "1001",
		Text: "08:00", Crowding: crowdedAt8}, testNow)
	st = res.State
	if st.Step != dialogs.StepKeyword || st.CheckinTime != "08:00" {
		t.Fatalf("a crowded time blocked registration: step %q, time %q", st.Step, st.CheckinTime)
	}
	res = e.Handle(st, dialogs.Input{Kind: dialogs.KindButton, Key: "user-1", Channel: "telegram", Address: "1001",
		Text: "retime:07:45"}, testNow)
	if res.State.CheckinTime != "07:45" || res.State.Step != dialogs.StepKeyword || len(res.Escalations) != 0 {
		t.Errorf("retime during registration: time %q, step %q, events %v", res.State.CheckinTime, res.State.Step, eventTypes2(res.Escalations))
	}
	if len(res.Replies) != 2 || !strings.Contains(res.Replies[0].Text, "07:45") || !res.Replies[1].Sensitive {
		t.Errorf("want the confirmation and the secret-word question again, got %+v", res.Replies)
	}

	for name, tc := range map[string]struct {
		st   dialogs.State
		data string
	}{
		"no consent":  {dialogs.State{}, "retime:07:45"},
		"broken time": {st, "retime:27:99"},
	} {
		res := e.Handle(tc.st, dialogs.Input{Kind: dialogs.KindButton, Key: "user-1", Channel: "telegram", Address: "1001", Text: tc.data}, testNow)
		if res.State.CheckinTime != tc.st.CheckinTime || len(res.Escalations) != 0 || len(res.Replies) == 0 {
			t.Errorf("%s: time %q → %q, events %v, replies %d", name, tc.st.CheckinTime, res.State.CheckinTime, eventTypes2(res.Escalations), len(res.Replies))
		}
	}
}

// BenchmarkTimeQuestion: the engine's cost of asking the time question
// and of answering it with a crowded time, without crowding data and with
// it, side by side in one run (the advice runs Lateness for every
// candidate slot: at most 27 candidates × 96 slots).
func BenchmarkTimeQuestion(b *testing.B) {
	e := newEngine(b)
	st := registered(b, e)
	for _, bc := range []struct {
		name string
		c    *dialogs.Crowding
	}{{"no data", nil}, {"crowded", crowdedAt8}} {
		b.Run("ask/"+bc.name, func(b *testing.B) {
			ask := st
			ask.Step = dialogs.StepSettingsMenu
			in := dialogs.Input{Kind: dialogs.KindButton, Key: st.Key, Channel: "telegram", Address: "1001",
				Text: string(dialogs.StepSettingsTime), Crowding: bc.c}
			for b.Loop() {
				e.Handle(ask, in, testNow)
			}
		})
		b.Run("answer/"+bc.name, func(b *testing.B) {
			answer := st
			answer.Step = dialogs.StepSettingsTime
			in := dialogs.Input{Kind: dialogs.KindText, Key: st.Key, Channel: "telegram", Address: "1001", Text: "08:00", Crowding: bc.c}
			for b.Loop() {
				e.Handle(answer, in, testNow)
			}
		})
	}
}
