package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot"
	"github.com/checkinbot/checkinbot/config"
	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/store/boltstore"
	"github.com/checkinbot/checkinbot/store/seal"
)

// acceptor is a platform that accepts every reply at once.
type acceptor struct{}

func (acceptor) Name() string                  { return "telegram" }
func (acceptor) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (acceptor) Send(_ context.Context, _ string, r bot.Response) error {
	r.Report(bot.Receipt{SentIDs: []string{"1"}})
	return nil
}

// TestSeedMatchesRunner: the seed's shortcut (the registration through the
// engine in memory, stored with one Store.Process) leaves exactly what the
// runner's message-by-message registration leaves — the same registrant
// record (times aside), the same escalations in the outbox and the same
// audit actions (fewer entries: one transaction, not several) — for
// several citizens, so the day runs against real
// registrants.
func TestSeedMatchesRunner(t *testing.T) {
	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	pepper := []byte("load-test-pepper-0123456789abcdef")
	eng := &dialogs.Engine{Catalog: cat, Directory: c.Directory(), Policy: c.Policy(), Pepper: pepper}
	master, _ := seal.GenerateMasterKey()
	open := func(name string) *boltstore.Store {
		s, err := boltstore.OpenWith(filepath.Join(t.TempDir(), name), boltstore.Options{Keyring: &seal.Keyring{Current: master}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	viaRunner, viaSeed := open("runner.db"), open("seed.db")
	r := bot.NewRunner(eng, viaRunner, pepper)
	r.ReplyFloor = 0
	r.Register("telegram", acceptor{})
	chats := []int64{chatBase, chatBase + 1, chatBase + 999_999}
	for n, chat := range chats {
		addr := strconv.FormatInt(chat, 10)
		for j, in := range registration() {
			b := bot.Inbound{Kind: in.Kind, Text: in.Text, Lat: in.Lat, Lon: in.Lon, Channel: "telegram", Address: addr,
				Handle: "@load" + strconv.FormatInt(chat-chatBase, 10), LangHint: "en", MessageID: strconv.Itoa(n*100 + j)}
			if err := r.Handle(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		key := store.UserKey(pepper, "telegram", addr)
		res, err := register(eng, key, chat, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := viaSeed.Process(key, "", time.Now(), func(dialogs.State, bool) dialogs.Result { return res }); err != nil {
			t.Fatal(err)
		}
		want, _, err := viaRunner.Registrant(key)
		if err != nil {
			t.Fatal(err)
		}
		got, found, err := viaSeed.Registrant(key)
		if err != nil || !found {
			t.Fatalf("seeded registrant: found %v, %v", found, err)
		}
		if w, g := timeless(t, want), timeless(t, got); !reflect.DeepEqual(w, g) {
			t.Errorf("chat %d: the seed stored\n%v\nthe runner\n%v", chat, g, w)
		}
	}
	if err := r.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	types := func(s *boltstore.Store) []string {
		evs, err := s.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, string(e.Type))
		}
		return out
	}
	if w, g := types(viaRunner), types(viaSeed); !reflect.DeepEqual(w, g) || len(g) < len(chats) {
		t.Errorf("outbox: the seed wrote %v, the runner %v", g, w)
	}
	actions := func(s *boltstore.Store) map[string]int {
		es, err := s.Audit()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, e := range es {
			if e.Subject != "" { // per citizen; the runner's own entries (none expected) aside
				out[e.Action]++
			}
		}
		return out
	}
	// The store audits each transaction that changed a registrant: the
	// runner's registration takes several, the seed one. Same actions, one
	// entry per citizen at least (the trail is a little shorter: noted in
	// docs/benchmarks.md).
	w, g := actions(viaRunner), actions(viaSeed)
	for action, n := range g {
		if w[action] < n {
			t.Errorf("audit: the seed wrote %d %q, the runner %d", n, action, w[action])
		}
	}
	for action := range w {
		if g[action] < len(chats) {
			t.Errorf("audit: the seed wrote %d %q for %d citizens (the runner %d)", g[action], action, len(chats), w[action])
		}
	}
}

// timeless is a state as JSON with every timestamp replaced by "T".
func timeless(t *testing.T, st dialogs.State) any {
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	json.Unmarshal(b, &v)
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				v[k] = walk(x)
			}
		case []any:
			for i, x := range v {
				v[i] = walk(x)
			}
		case string:
			if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return "T"
			}
		}
		return v
	}
	return walk(v)
}

// TestSeedReuse: a seed made in -dir is reused by the next run with the
// same -n (not seeded again), and a seed for another -n, or one that did
// not finish, is refused with an error naming seed.json and the reason.
func TestSeedReuse(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a data file")
	}
	dir := t.TempDir()
	p := Params{N: 20, Day: time.Second, Rate: 1000, PerChat: time.Second, Workers: 8, Dir: dir, SeedOnly: true}
	first, err := Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if first.SeedReused || !again.SeedReused || again.SeedSeconds != first.SeedSeconds {
		t.Errorf("first reused %v, second reused %v (seed %v s then %v s)", first.SeedReused, again.SeedReused, first.SeedSeconds, again.SeedSeconds)
	}
	p.N = 21
	if _, err := Run(context.Background(), p); err == nil || !strings.Contains(err.Error(), metaFile) || !strings.Contains(err.Error(), "20 registrants") {
		t.Errorf("another -n: %v", err)
	}
	// Written but not delivered: the next run resumes the delivery (the
	// store owes nothing more here) and completes the seed.
	m, _, _ := loadMeta(dir, 20)
	m.Complete = false
	m.write(dir)
	p.N = 20
	if rep, err := Run(context.Background(), p); err != nil || rep.SeedReused {
		t.Errorf("resumed delivery: %v (reused %v)", err, rep != nil && rep.SeedReused)
	}
	if m, _, _ := loadMeta(dir, 20); !m.Complete {
		t.Errorf("the resumed seed is not complete")
	}
	m.Written, m.Complete = false, false
	m.write(dir)
	if _, err := Run(context.Background(), p); err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("unfinished seed: %v", err)
	}
	os.WriteFile(filepath.Join(dir, metaFile), []byte("{"), 0o600)
	if _, err := Run(context.Background(), p); err == nil || !strings.Contains(err.Error(), metaFile) {
		t.Errorf("bad seed.json: %v", err)
	}
}
