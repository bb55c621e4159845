package main

import (
	"bufio"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot/telegram/fakeapi"
	"github.com/checkinbot/checkinbot/locales"
	"github.com/checkinbot/checkinbot/webhook"
)

// The crash test's driver: it builds the real binary, runs `checkinbot
// serve` against the fake Telegram Bot API as a handful of citizens, kills
// it with SIGKILL at random moments and starts it again on the same data
// directory, while an independent Node receiver takes the embassy's
// webhooks. It keeps its own ledger (crash_ledger_test.go) and never reads
// the data file.

// crashOptions sizes one run.
type crashOptions struct {
	Tags     string   // go build -tags
	Env      []string // extra environment for serve
	Citizens int
	Messages int           // messages after registration
	Gap      time.Duration // longest pause between two messages
	// KillMin and KillMax bound the random time serve runs before the next SIGKILL.
	KillMin, KillMax time.Duration
	Drain            time.Duration // longest wait for delivery after the last message
	Seed             uint64
}

// crashRun is the outcome of one run.
type crashRun struct {
	Record         crashRecord
	Starts, Kills  int
	SOSAck         string
	Elapsed        time.Duration
	ServeLog       string
	ReceiverStderr string
}

// crashKeywords are the citizens' secret words: two ordinary words each,
// none a word of any check-in, help or command phrase.
var crashKeywords = []string{"blue mango", "amber falcon", "silver pumpkin", "velvet canyon", "copper lantern",
	"crimson walrus", "golden pebble", "violet harbor", "ivory tractor", "maple comet", "coral saddle",
	"granite tulip", "olive trumpet", "jade kestrel", "cobalt meadow", "rusty anchor"}

// nodeReceiver returns node and the receiver script, skipping (or, under
// CI=true, failing) when node or the locked npm packages are missing.
func nodeReceiver(t testing.TB) (node, script string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "webhook", "testdata", "interop"))
	if err != nil {
		t.Fatal(err)
	}
	node, err = exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks"))
	if err != nil || modErr != nil {
		msg := "node or the standardwebhooks package is missing (run: npm ci --prefix webhook/testdata/interop)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node, filepath.Join(dir, "receiver.js")
}

// buildCheckinbot builds this command into dir.
func buildCheckinbot(t testing.TB, dir, tags string) string {
	t.Helper()
	bin := filepath.Join(dir, "checkinbot")
	args := []string{"build", "-o", bin}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// startReceiver runs receiver.js appending to out; it returns its URL.
func startReceiver(t testing.TB, secret, out, stderr string) string {
	t.Helper()
	node, script := nodeReceiver(t)
	cmd := exec.Command(node, script, out)
	cmd.Env = append(os.Environ(), "RECEIVER_SECRET="+secret)
	errf, err := os.Create(stderr)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = errf
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		errf.Close()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case first := <-lines:
		url, ok := strings.CutPrefix(first, "receiver: listening on ")
		if !ok {
			t.Fatalf("receiver said %q", first)
		}
		return url
	case <-time.After(20 * time.Second):
		b, _ := os.ReadFile(stderr)
		t.Fatalf("receiver did not start: %s", b)
	}
	return ""
}

// crashConfig writes the test's own configuration: one embassy whose
// webhooks go to the receiver, and fast Telegram pacing.
func crashConfig(t testing.TB, path, url string) {
	t.Helper()
	text := fmt.Sprintf(`operator = "Crash test ministry"
notice_version = "crash-1"
retention_days = 30

[checkin]
intervals = ["24h"]

[telegram]
per_chat_interval = "10ms"

[[country]]
code = "MY"
name = "Malaysia"
timezone = "Asia/Kuala_Lumpur"

[[country]]
code = "KH"
name = "Cambodia"
timezone = "Asia/Phnom_Penh"

[[embassy]]
id = "my-crash"
name = "Embassy of Malaysia (crash test)"
nationalities = ["MY"]
countries = ["KH"]
webhook_url = %q
secret_env = ["CRASH_SECRET"]
`, url)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serveProc is the serve process of the moment.
type serveProc struct {
	bin, cfg, data string
	env            []string
	log            *os.File
	cmd            *exec.Cmd
	done           chan struct{} // closed when cmd has exited
	starts, kills  int
}

// start runs serve; it may be called from the killer goroutine, so it
// returns its error instead of failing the test.
func (p *serveProc) start() error {
	p.cmd = exec.Command(p.bin, "serve", "--config", p.cfg, "--data-dir", p.data)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start serve: %w", err)
	}
	p.starts++
	fmt.Fprintf(p.log, "--- crash test: serve start %d (pid %d)\n", p.starts, p.cmd.Process.Pid)
	done, cmd := make(chan struct{}), p.cmd
	p.done = done
	go func() { cmd.Wait(); close(done) }()
	return nil
}

// exited reports whether serve has stopped by itself.
func (p *serveProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs serve: no chance to flush, reply or deliver anything.
func (p *serveProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
	p.kills++
	fmt.Fprintf(p.log, "--- crash test: SIGKILL %d\n", p.kills)
}

// stop ends serve with SIGTERM, as an operator would, and reports how it
// exited; after 20 s it is killed.
func (p *serveProc) stop() error {
	if p.exited() {
		return fmt.Errorf("serve had exited by itself: %v", p.cmd.ProcessState)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			return fmt.Errorf("serve exited with %v after SIGTERM", p.cmd.ProcessState)
		}
		return nil
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("serve did not stop within 20 s of SIGTERM")
	}
}

// runCrashScenario runs the whole scenario once and returns what the
// ledger and the receiver hold; checkCrash judges it.
func runCrashScenario(t *testing.T, o crashOptions) crashRun {
	t.Helper()
	began := time.Now()
	rng := mrand.New(mrand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	dir := t.TempDir()
	bin := buildCheckinbot(t, dir, o.Tags)

	cat, err := locales.Load()
	if err != nil {
		t.Fatal(err)
	}
	sosAck, ok := cat.Lookup("en", "SOSRaised")
	if !ok || sosAck == "" {
		t.Fatal("the English catalog has no SOSRaised text")
	}
	registered, _, _ := strings.Cut(cat.Text("en", "Registered", map[string]any{"When": "\x00"}), "\x00")
	if registered == "" {
		t.Fatal("the English catalog has no Registered text")
	}

	key := make([]byte, 32)
	rand.Read(key)
	secret := webhook.FormatSecret(key)
	received := filepath.Join(dir, "received.jsonl")
	url := startReceiver(t, secret, received, filepath.Join(dir, "receiver.stderr"))

	api := fakeapi.New("4242:crash-test")
	t.Cleanup(api.Close)
	cfg := filepath.Join(dir, "checkinbot.toml")
	crashConfig(t, cfg, url)
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "serve.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	env := append(os.Environ(), "CHECKIN_PEPPER="+strings.Repeat("crash-test-pepper-", 3), "CHECKIN_MASTER_KEY="+testMasterKey, "CRASH_SECRET="+secret,
		"CHECKIN_TELEGRAM_TOKEN="+api.Token, "CHECKIN_TELEGRAM_API_URL="+api.URL)
	proc := &serveProc{bin: bin, cfg: cfg, data: data, env: append(env, o.Env...), log: logf}

	var citizens []crashCitizen
	users := make([]fakeapi.User, o.Citizens)
	for i := range o.Citizens {
		users[i] = fakeapi.User{ID: 7_000_000 + int64(i), Username: fmt.Sprintf("citizen%02d", i), Lang: "en"}
		citizens = append(citizens, crashCitizen{Chat: users[i].ID, Handle: "@" + users[i].Username,
			Keyword: crashKeywords[i%len(crashKeywords)], Duress: i%3 != 2})
	}

	// Registration, without kills: the run is about what comes after.
	if err := proc.start(); err != nil {
		t.Fatal(err)
	}
	for step := range 15 {
		for i, u := range users {
			kw := citizens[i].Keyword
			msg := []string{"/start", "en", "1", "MY", "KH", "Phnom Penh", fmt.Sprintf("Citizen %c", 'A'+i), "skip", "skip",
				"skip", "24h", "09:00", kw, kw, "1"}[step]
			api.Text(u, msg)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < len(users); {
		if shown(api, users[i].ID, registered) {
			i++
			continue
		}
		if time.Now().After(deadline) || proc.exited() {
			proc.stop()
			log, _ := os.ReadFile(logPath)
			t.Fatalf("citizen %d was not registered within 60 s; replies: %v\nserve log:\n%s", i, texts(api.Sent(users[i].ID)), log)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The run: messages in random order while serve is killed and
	// restarted at random moments.
	var (
		mu   sync.Mutex
		sent []sentMsg
	)
	stopKiller := make(chan struct{})
	killerErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stopKiller:
				killerErr <- nil
				return
			case <-time.After(o.KillMin + time.Duration(rng.Int64N(int64(o.KillMax-o.KillMin)))):
			}
			proc.kill()
			time.Sleep(time.Duration(rng.Int64N(int64(200 * time.Millisecond)))) // down for a moment
			if err := proc.start(); err != nil {
				killerErr <- err
				return
			}
		}
	}()
	mrng := mrand.New(mrand.NewPCG(o.Seed+1, o.Seed^0x5851f42d4c957f2d)) // the killer owns rng
	for range o.Messages {
		c := mrng.IntN(len(users))
		kind := kindPlain
		text := "ok"
		other := citizens[(c+1+mrng.IntN(len(users)-1))%len(users)].Keyword
		switch r := mrng.IntN(10); {
		case r < 3 && citizens[c].Duress:
			kind, text = kindDuress, []string{"ok ", "OK, ", "ok, all fine. "}[mrng.IntN(3)]+citizens[c].Keyword
		case r < 3:
			// Someone else's keyword, in the form that would raise the
			// alarm for them: no alarm for this citizen.
			text = []string{"ok ", "OK, ", "ok, all fine. "}[mrng.IntN(3)] + other
		case r < 5:
			kind, text = kindSOS, "/sos"
		case r < 7:
			text = "ok " + other
		case r < 8:
			text = "/checkin"
		}
		at := time.Now()
		id, _ := api.Text(users[c], text)
		mu.Lock()
		sent = append(sent, sentMsg{Citizen: c, Kind: kind, UpdateID: id, At: at})
		mu.Unlock()
		time.Sleep(time.Duration(mrng.Int64N(int64(o.Gap))))
	}
	close(stopKiller)
	if err := <-killerErr; err != nil {
		t.Fatal(err)
	}
	lastCitizenUpdate := sent[len(sent)-1].UpdateID

	// Drain: wait until the receiver has everything, or until serve has
	// confirmed every update and no event arrived for longer than the
	// deliverer's 10 s poll plus its first 5 s retry (nothing more is
	// coming).
	record := func() crashRecord {
		rec := crashRecord{Citizens: citizens, Sent: sent}
		rec.Received, rec.Unreadable, err = readReceived(received)
		if err != nil {
			t.Fatal(err)
		}
		deleted := map[string]bool{}
		for _, c := range api.Calls("deleteMessage") {
			deleted[c.Params["chat_id"]+"/"+c.Params["message_id"]] = true
		}
		for i, u := range users {
			for _, c := range api.Sent(u.ID) {
				if !deleted[c.Params["chat_id"]+"/"+strconv.Itoa(c.Result)] {
					rec.Replies = append(rec.Replies, seenReply{Citizen: i, Text: c.Params["text"], At: c.At})
				}
			}
		}
		for _, c := range api.Calls("getUpdates") {
			off, _ := strconv.ParseInt(c.Params["offset"], 10, 64)
			rec.Confirmed = max(rec.Confirmed, off)
		}
		return rec
	}
	drainEnd := time.Now().Add(o.Drain)
	lastCount, lastChange, lastPoke := -1, time.Now(), time.Time{}
	for time.Now().Before(drainEnd) {
		rec := record()
		if n := len(rec.Received); n != lastCount {
			lastCount, lastChange = n, time.Now()
		}
		confirmed := rec.Confirmed > lastCitizenUpdate
		if confirmed && len(blocking(checkCrash(rec, sosAck))) == 0 {
			break
		}
		if confirmed && time.Since(lastChange) > 16*time.Second {
			break
		}
		if !confirmed && time.Since(lastPoke) > 2*time.Second {
			// serve confirms updates with the offset of its next
			// getUpdates, which the fake API records only when it
			// answers: a message in a group (refused, no citizen's)
			// makes it answer.
			api.GroupText(fakeapi.User{ID: 6_999_999, Lang: "en"}, -1_000_777, "hello")
			lastPoke = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := proc.stop(); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
	log, _ := os.ReadFile(logPath)
	recvErr, _ := os.ReadFile(filepath.Join(dir, "receiver.stderr"))
	return crashRun{Record: record(), Starts: proc.starts, Kills: proc.kills, SOSAck: sosAck,
		Elapsed: time.Since(began), ServeLog: string(log), ReceiverStderr: string(recvErr)}
}

// blocking drops the problems a run may still have today: missing SOS
// replies, until durable replies land (requireDurableReplies).
func blocking(ps []problem) []problem {
	var out []problem
	for _, p := range ps {
		if p.Kind != probNoReply || requireDurableReplies {
			out = append(out, p)
		}
	}
	return out
}

// shown reports whether chat was sent a message starting with prefix.
func shown(api *fakeapi.Server, chat int64, prefix string) bool {
	for _, c := range api.Sent(chat) {
		if strings.Contains(c.Params["text"], prefix) {
			return true
		}
	}
	return false
}

func texts(calls []fakeapi.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Params["text"])
	}
	return out
}
