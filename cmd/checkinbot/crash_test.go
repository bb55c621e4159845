package main

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/dialogs"
	"github.com/checkinbot/checkinbot/store"
	"github.com/checkinbot/checkinbot/webhook"
)

// TestCrashSafety builds the real binary, drives duress and SOS events into
// it while SIGKILLing it at random moments, restarts it on the same data
// directory each time, and checks that a real sink process received every
// recorded event, verified, exactly under the id it was recorded with.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "checkinbot")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	key := make([]byte, 32)
	rand.Read(key)
	env := append(os.Environ(), "CHECKIN_PEPPER="+strings.Repeat("crash-test-pepper-", 3), "CRASH_SECRET="+webhook.FormatSecret(key))

	// The embassy's receiver: the real sink command, in its own process.
	received := filepath.Join(dir, "received.jsonl")
	sink := exec.Command(bin, "sink", "--listen", "127.0.0.1:0", "--secret-env", "CRASH_SECRET", "--out", received)
	sink.Env = env
	sinkOut, _ := sink.StdoutPipe()
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sink.Process.Kill(); sink.Wait() }()
	first, err := bufio.NewReader(sinkOut).ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "sink: listening on ") {
		t.Fatalf("sink did not start: %q %v", first, err)
	}
	go io.Copy(io.Discard, sinkOut)
	url := strings.TrimSpace(strings.TrimPrefix(first, "sink: listening on "))

	cfg := filepath.Join(dir, "checkinbot.toml")
	os.WriteFile(cfg, []byte(exampleConfigFor(t, url, "CRASH_SECRET")), 0o600)
	data := filepath.Join(dir, "data")

	// run feeds lines to a demo process, one at a time as it takes them
	// (it echoes "you> " when it starts on a line), and SIGKILLs it at a
	// random moment after killAfter lines (never, if negative). It returns
	// how many lines the process started on.
	run := func(lines []string, killAfter int) int {
		cmd := exec.Command(bin, "demo", "--config", cfg, "--data-dir", data)
		cmd.Env = env
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{}, len(lines)+1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "you> ") {
					started <- struct{}{}
				}
			}
		}()
		sent := 0
		for _, l := range lines {
			if killAfter >= 0 && sent == killAfter {
				break
			}
			if _, err := fmt.Fprintln(stdin, l); err != nil {
				break
			}
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("the demo stopped taking input")
			}
			sent++
		}
		if killAfter >= 0 {
			// Somewhere in the last message's commit, reply floor or delivery.
			time.Sleep(time.Duration(mrand.IntN(80)) * time.Millisecond)
			cmd.Process.Kill() // SIGKILL: no chance to flush or deliver anything
			cmd.Wait()
			return sent
		}
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("demo exited with %v", err)
		}
		return sent
	}

	run(strings.Split("hi 1 1 1 1 Phnom_Penh Siti_Aminah skip skip skip 1 09:00 blue_mango blue_mango 1", " "), -1)
	var script []string
	for i := 0; i < 140; i++ {
		script = append(script, "sos", "I am fine, really. Blue Mango!")
	}
	kills := 0
	for len(script) > 0 {
		sent := run(script, 1+mrand.IntN(20))
		script = script[sent:]
		kills++
	}
	run(nil, -1) // a last clean run delivers what the killed ones could not
	if kills < 20 {
		t.Fatalf("only %d kills", kills)
	}

	s, err := store.Open(filepath.Join(data, "checkinbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := s.Outbox()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	critical := 0
	for _, ev := range recorded {
		if ev.Type == dialogs.EventDuressTriggered || ev.Type == dialogs.EventSOSRaised {
			critical++
		}
	}
	if critical < 200 {
		t.Fatalf("only %d duress and SOS events were recorded", critical)
	}
	got := map[string]int{}
	f, err := os.Open(received)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev store.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("sink wrote an unreadable line: %v", err)
		}
		got[ev.ID]++
	}
	lost := 0
	for _, ev := range recorded {
		if got[ev.ID] == 0 {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d recorded events never reached the sink", lost, len(recorded))
	}
	t.Logf("%d kills; %d events recorded (%d duress or SOS), all received", kills, len(recorded), critical)
}
