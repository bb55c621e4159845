package bot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store"
)

// sink is a fake channel: it accepts every response at once (reporting it
// accepted, as a platform would) and remembers, per address, what was sent
// in the order it was handed over.
type sink struct {
	mu   sync.Mutex
	sent map[string][]sent
}

// sent is one response as the phone would show it.
type sent struct {
	Priority bot.Priority
	Replies  []dialogs.Reply
}

func newSink() *sink { return &sink{sent: map[string][]sent{}} }

func (s *sink) Send(_ context.Context, address string, r bot.Response) error {
	s.mu.Lock()
	s.sent[address] = append(s.sent[address], sent{r.Priority, r.Replies})
	s.mu.Unlock()
	r.Report(bot.Receipt{})
	return nil
}

// texts lists every reply text sent to address, in order.
func (s *sink) texts(address string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.sent[address] {
		for _, rep := range r.Replies {
			out = append(out, rep.Text)
		}
	}
	return out
}

// transcript is everything sent to address, byte for byte.
func (s *sink) transcript(t *testing.T, address string) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.Marshal(s.sent[address])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// events collects the escalations a runner committed.
type events struct {
	mu  sync.Mutex
	all []store.Event
}

func (e *events) add(evs []store.Event) { e.mu.Lock(); e.all = append(e.all, evs...); e.mu.Unlock() }

// of lists the types of the events about key.
func (e *events) of(key string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		if ev.Registrant != nil && ev.Registrant.ID == dialogs.Pseudonym(key) {
			out = append(out, ev.Type)
		}
	}
	return out
}

// floodRunner is a real runner on a real bbolt file with the fake channel,
// an event collector and a log captured without times.
func floodRunner(t *testing.T) (*bot.Runner, *sink, *events, *bytes.Buffer) {
	t.Helper()
	r := testkit.Runner(t)
	ch := newSink()
	r.Register("telegram", ch)
	evs := &events{}
	r.OnEvents = evs.add
	var logs bytes.Buffer
	r.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	return r, ch, evs, &logs
}

func text(address, id, body string) bot.Inbound {
	return bot.Inbound{Channel: "telegram", Address: address, MessageID: id, Kind: dialogs.KindText, Text: body}
}

// catalogText renders a message as the engine would for lang.
func catalogText(t *testing.T, lang, id string) string {
	t.Helper()
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cat.Text(lang, id, nil)
}

// wait waits for every outcome and fails on any error.
func wait(t *testing.T, dones []<-chan error) {
	t.Helper()
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
}

// TestFloodUnderLoad is issue 13's flood test: one registered citizen
// sends 1,000 messages a second for two seconds, the duress keyword inside
// the flood, while 20 others check in. The others are all answered, and
// quickly; the flooder gets the ordinary replies up to the limit, exactly
// one hint, then nothing until a whole window passed quietly, and then
// ordinary replies again; the keyword in the silent part of the flood
// still raises duress.triggered, exactly once.
func TestFloodUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-second flood")
	}
	r, ch, evs, _ := floodRunner(t)
	const flooder = "9000"
	others := make([]string, 20)
	var wg sync.WaitGroup
	for i := range others {
		others[i] = fmt.Sprint(9001 + i)
	}
	for _, a := range append([]string{flooder}, others...) {
		wg.Go(func() { register(t, r, a) })
	}
	wg.Wait()
	limit := bot.FloodLimit{Messages: 20, Window: time.Second}
	r.Flood = limit // after registering, which is not what is measured
	before := len(ch.texts(flooder))
	key := store.UserKey(testkit.Pepper, "telegram", flooder)
	eventsBefore := len(evs.of(key))

	// The flooder's messages are processed in order; processed counts
	// them as they commit, before the next of the line may start.
	var submitted, processed atomic.Int64
	bot.SetAfterInput(r, func(in dialogs.Input) {
		if in.Key == key {
			processed.Add(1)
		}
	})
	const rate, seconds, keywordAt = 1000, 2, 1234
	// Backlog: a check-in by another citizen arriving behind at least this
	// many unprocessed messages of the flooder must overtake some of them:
	// it waits for a commit or two of its own, never for the flooder's
	// line. Not a timing bound: a check-in that waited for fifty of the
	// flooder's commits waited behind the flooder.
	const backlog = 50
	var latMu sync.Mutex
	// The others' check-in latencies: first a second with no flood (the
	// baseline, same run, same load), then during the flood.
	var baseline, latencies []time.Duration
	var flooding atomic.Bool
	behind, overtaking := 0, 0
	stop := make(chan struct{})
	for _, a := range others {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				n := len(ch.texts(a))
				start := time.Now()
				ahead := submitted.Load() - processed.Load()
				entered := submitted.Load()
				if err := r.Handle(context.Background(), text(a, fmt.Sprintf("%s-%d", a, i), "ok")); err != nil {
					t.Error(err)
					return
				}
				took := time.Since(start)
				overtook := entered - processed.Load()
				if got := ch.texts(a); len(got) != n+1 {
					t.Errorf("%s: check-in %d answered with %d replies, want 1", a, i, len(got)-n)
				}
				latMu.Lock()
				if !flooding.Load() {
					baseline = append(baseline, took)
					latMu.Unlock()
					continue
				}
				latencies = append(latencies, took)
				if ahead >= backlog {
					behind++
					if overtook > 0 {
						overtaking++
					}
				}
				latMu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	flooding.Store(true)
	var dones []<-chan error
	start := time.Now()
	for i := range rate * seconds {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		body := fmt.Sprintf("hello there %d", i)
		if i == keywordAt {
			body = "the weather is blue mango today"
		}
		dones = append(dones, r.Submit(context.Background(), text(flooder, fmt.Sprint("f", i), body)))
		submitted.Add(1)
	}
	floodEnd := time.Now()
	close(stop)
	wg.Wait()
	wait(t, dones)
	drained := time.Since(floodEnd)

	got := ch.texts(flooder)[before:]
	hint := catalogText(t, "en", "HintFlood")
	if len(got) == 0 {
		t.Fatal("the flooder got no reply at all")
	}
	ordinary := got[0] // "hello there …" outside a flood: the ordinary answer
	want := append(slices.Repeat([]string{ordinary}, limit.Messages), hint)
	if ordinary == hint || !slices.Equal(got, want) {
		t.Errorf("the flooder got %d replies, want %d ordinary ones then one hint:\n%q", len(got), limit.Messages, got)
	}
	if got := evs.of(key)[eventsBefore:]; !slices.Equal(got, []string{dialogs.EventDuressTriggered}) {
		t.Errorf("the flood with the keyword inside raised %v, want duress.triggered exactly once", got)
	}

	// Calm: a whole window with nothing, then an ordinary answer again.
	time.Sleep(time.Until(floodEnd.Add(limit.Window + 50*time.Millisecond)))
	n := len(ch.texts(flooder))
	if err := r.Handle(context.Background(), text(flooder, "calm", "ok")); err != nil {
		t.Fatal(err)
	}
	if after := ch.texts(flooder)[n:]; len(after) != 1 || after[0] == hint || after[0] == ordinary {
		t.Errorf("after the flood calmed, a check-in got %q, want its ordinary reply", after)
	}

	slices.Sort(latencies)
	slices.Sort(baseline)
	if len(latencies) == 0 || len(baseline) == 0 {
		t.Fatal("no check-in of the others was answered")
	}
	q := func(l []time.Duration, q float64) time.Duration { return l[int(q*float64(len(l)-1))] }
	p := func(f float64) time.Duration { return q(latencies, f) }
	t.Logf("others' check-in latency: without a flood (%d) p50 %s p99 %s; during the flood (%d) p50 %s p99 %s max %s",
		len(baseline), q(baseline, 0.5), q(baseline, 0.99), len(latencies), p(0.5), p(0.99), latencies[len(latencies)-1])
	t.Logf("%d check-ins arrived behind %d+ unprocessed flood messages, %d overtook them; the flooder's backlog drained %s after the flood",
		behind, backlog, overtaking, drained)
	if overtaking != behind {
		t.Errorf("%d of %d check-ins that arrived behind the flooder's backlog waited for it", behind-overtaking, behind)
	}
	// The overtaking check above is the proof; this bound is only a
	// sanity check, generous for a loaded machine (2 cores shared by many
	// processes measured 40–720 ms).
	if p(0.99) > 5*time.Second {
		t.Errorf("others' p99 latency %s during the flood: the flooder delays them", p(0.99))
	}
}

// TestDuressFloodLooksLikeNormalFlood: two floods that differ only in one
// message — the duress keyword, or other words of the same script in its
// place — at every place a flood has (before the limit, the message that
// starts the flood, inside the silence, with a help word), then a calm
// check-in. What the phone gets (texts, buttons, count, order, priority)
// and what the log says are byte-identical; only the silent effects differ,
// and they are there.
func TestDuressFloodLooksLikeNormalFlood(t *testing.T) {
	const flooder, size = "8000", 60
	limit := bot.FloodLimit{Messages: 20, Window: 300 * time.Millisecond}
	// The alarm; the next flooded message, taken as the location (the SOS
	// questions take every answer as given); the rest of the flood unable
	// to answer "is it safe to call you?", so silent; and after the calm,
	// "ok" answering it (a yes there).
	sos := []string{dialogs.EventSOSRaised, dialogs.EventCaseUpdated, dialogs.EventCaseUpdated}
	for _, c := range []struct {
		name            string
		at              int
		duress, normal  string
		wantD, wantN    []string // events of the duress run and the normal run
		visibleSOSReply bool
	}{
		{"keyword before the limit", 5, "it rains, blue mango", "it rains, green melon",
			[]string{dialogs.EventDuressTriggered}, nil, false},
		{"keyword starts the flood", limit.Messages, "it rains, blue mango", "it rains, green melon",
			[]string{dialogs.EventDuressTriggered}, nil, false},
		{"keyword in the silence", 40, "it rains, blue mango", "it rains, green melon",
			[]string{dialogs.EventDuressTriggered}, nil, false},
		{"keyword and help word in the silence", 30, "help, blue mango", "help, green melon",
			append([]string{dialogs.EventDuressTriggered}, sos...), sos, true},
		{"help word in the silence", 30, "help", "help", sos, sos, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := func(odd string) (*sink, []byte, []string) {
				r, ch, evs, logs := floodRunner(t)
				register(t, r, flooder)
				key := store.UserKey(testkit.Pepper, "telegram", flooder)
				skip := len(evs.of(key))
				r.Flood = limit
				var dones []<-chan error
				for i := range size {
					body := fmt.Sprintf("it rains %d", i)
					if i == c.at {
						body = odd
					}
					dones = append(dones, r.Submit(context.Background(), text(flooder, fmt.Sprint("f", i), body)))
				}
				last := time.Now()
				wait(t, dones)
				time.Sleep(time.Until(last.Add(limit.Window + 50*time.Millisecond)))
				if err := r.Handle(context.Background(), text(flooder, "calm", "ok")); err != nil {
					t.Fatal(err)
				}
				return ch, logs.Bytes(), evs.of(key)[skip:]
			}
			chD, logD, evD := run(c.duress)
			chN, logN, evN := run(c.normal)
			if !slices.Equal(evD, c.wantD) || !slices.Equal(evN, c.wantN) {
				t.Errorf("events: duress run %v, want %v; normal run %v, want %v", evD, c.wantD, evN, c.wantN)
			}
			if d, n := chD.transcript(t, flooder), chN.transcript(t, flooder); !bytes.Equal(d, n) {
				t.Errorf("the phone sees a difference:\nduress: %s\nnormal: %s", d, n)
			}
			if !bytes.Equal(logD, logN) {
				t.Errorf("the log differs:\nduress:\n%s\nnormal:\n%s", logD, logN)
			}
			if !bytes.Contains(logD, []byte("inbound flood")) || bytes.Contains(logD, []byte(flooder)) {
				t.Errorf("the log should say that a flood began, naming nobody:\n%s", logD)
			}
			texts := chN.texts(flooder)
			hints := 0
			for _, s := range texts {
				if s == catalogText(t, "en", "HintFlood") {
					hints++
				}
			}
			if hints != 1 {
				t.Errorf("%d flood hints, want exactly 1", hints)
			}
			if got := slices.Contains(texts, catalogText(t, "en", "SOSRaised")); got != c.visibleSOSReply {
				t.Errorf("the SOS reply was sent: %v, want %v (an SOS is answered inside a flood)", got, c.visibleSOSReply)
			}
		})
	}
}

// TestRegistrationLimits: beyond either registration limit someone new
// gets the "try again later" hint in their language and no record is
// written; the limits pass with their period; a registered citizen's
// check-in is never refused. Every language.
func TestRegistrationLimits(t *testing.T) {
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range cat.Languages() {
		t.Run(lang.Tag, func(t *testing.T) {
			r, ch, _, _ := floodRunner(t)
			var mu sync.Mutex
			now := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)
			r.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			register(t, r, "7000") // before any limit: an existing registrant
			r.Registrations = bot.RegistrationLimit{PerChatPerDay: 2, PerMinute: 3}
			later := catalogText(t, lang.Tag, "RegistrationLater")
			if lang.Tag != "en" && later == catalogText(t, "en", "RegistrationLater") {
				t.Fatalf("%s has no RegistrationLater of its own", lang.Tag)
			}
			// say sends one message and reports the replies and whether the
			// chat has a record afterwards.
			say := func(address string, kind dialogs.InputKind, body string) ([]string, bool) {
				t.Helper()
				n := len(ch.texts(address))
				if err := r.Handle(context.Background(), bot.Inbound{Channel: "telegram", Address: address,
					LangHint: lang.Tag, Kind: kind, Text: body}); err != nil {
					t.Fatal(err)
				}
				_, found, err := r.Store.Registrant(store.UserKey(testkit.Pepper, "telegram", address))
				if err != nil {
					t.Fatal(err)
				}
				return ch.texts(address)[n:], found
			}
			refused := func(address string) {
				t.Helper()
				if got, found := say(address, dialogs.KindText, "hi"); !slices.Equal(got, []string{later}) || found {
					t.Errorf("%s over the limit: replies %q, record %v; want only %q and no record", address, got, found, later)
				}
			}
			admitted := func(address string) {
				t.Helper()
				if got, found := say(address, dialogs.KindText, "hi"); slices.Contains(got, later) || !found {
					t.Errorf("%s within the limit: replies %q, record %v", address, got, found)
				}
			}

			// Per chat: a first contact and a declined consent, twice.
			for range 2 {
				admitted("7001")
				say("7001", dialogs.KindButton, lang.Tag)
				if _, found := say("7001", dialogs.KindButton, "decline"); found {
					t.Fatal("a declined consent left a record")
				}
			}
			refused("7001")
			refused("7001") // asked again, still refused, still nothing kept

			// Per minute: 7001 started two records this minute; one more.
			admitted("7002")
			refused("7003")
			if got, _ := say("7000", dialogs.KindText, "ok"); len(got) != 1 || got[0] == later {
				t.Errorf("a registered citizen's check-in over the limits got %q", got)
			}
			advance(time.Minute)
			admitted("7003")
			refused("7001") // its day is not over
			advance(24 * time.Hour)
			admitted("7001")
		})
	}
}
