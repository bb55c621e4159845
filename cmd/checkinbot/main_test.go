package main

import (
	"bytes"
	"fmt"
	"github.com/checkinbot/checkinbot/internal/testkit/syncbuf"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runMain runs the program with args and stdin, returning exit code and output.
func runMain(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestScriptedDemo is the README's promise: a piped session registers,
// checks in, sends the duress keyword inside a sentence, gets a reply
// identical to the check-in reply, and the embassy line appears.
func TestScriptedDemo(t *testing.T) {
	t.Setenv("CHECKIN_PEPPER", "")
	script := strings.Join([]string{"hi", "1", "1", "1", "1", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
		"1", "09:00", "blue mango", "blue mango", "1", "ok", "I am fine, really. Blue Mango!", ":sticker", "sos",
		":location 11.55,104.92"}, "\n") + "\n"
	dir := t.TempDir()
	code, out, errOut := runMain(t, script, "demo", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"data in " + filepath.Join(dir, "checkinbot.db"),
		"generated a pepper",
		"EMBASSY <- registration.created",
		"EMBASSY <- duress.triggered case=case_",
		"do_not_contact=true",
		"EMBASSY <- sos.raised",
		"EMBASSY <- case.updated",
		"Sorry, I can only read text",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q\n%s", want, out)
		}
	}
	// The replies to "ok" and to the duress sentence are the same line.
	// Deliveries arrive asynchronously: set the EMBASSY lines aside.
	var dialogue []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "EMBASSY <- ") {
			dialogue = append(dialogue, l)
		}
	}
	replies := regexp.MustCompile(`(?m)^you> (ok|I am fine, really\. Blue Mango!)\n(bot> .*)$`).FindAllStringSubmatch(strings.Join(dialogue, "\n"), -1)
	if len(replies) != 2 || replies[0][2] != replies[1][2] || !strings.Contains(replies[0][2], "Check-in received") {
		t.Errorf("check-in and duress replies differ or are missing: %q", replies)
	}
	if strings.Contains(errOut, "blue mango") || strings.Contains(strings.ToLower(out), "secret word: blue") {
		t.Error("the keyword leaked into output")
	}
}

func TestDemoRefusesLockedDataDir(t *testing.T) {
	dir := t.TempDir()
	r, w, _ := os.Pipe()
	defer w.Close()
	done := make(chan int)
	go func() {
		var out, errOut bytes.Buffer
		done <- run([]string{"demo", "--data-dir", dir}, r, &out, &errOut)
	}()
	// Wait for the first demo to hold the file, then start a second. bbolt
	// creates the file before it takes the lock and writes its first pages
	// after: a non-empty file is a locked one.
	for i := 0; i < 200; i++ {
		if fi, err := os.Stat(filepath.Join(dir, "checkinbot.db")); err == nil && fi.Size() > 0 {
			break
		}
		waitABit()
	}
	code, _, errOut := runMain(t, "", "demo", "--data-dir", dir)
	if code != 1 || !strings.Contains(errOut, "in use by another checkinbot process") {
		t.Errorf("second demo: exit %d, %s", code, errOut)
	}
	w.Close()
	if code := <-done; code != 0 {
		t.Errorf("first demo exit %d", code)
	}
}

func TestServeRefusesWithoutPepper(t *testing.T) {
	t.Setenv("CHECKIN_PEPPER", "short")
	code, _, errOut := runMain(t, "", "serve", "--data-dir", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "CHECKIN_PEPPER") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestServeWithoutChannelExplains(t *testing.T) {
	t.Setenv("CHECKIN_PEPPER", strings.Repeat("p", 40))
	t.Setenv("CHECKIN_MASTER_KEY", testMasterKey)
	code, _, errOut := runMain(t, "", "serve", "--data-dir", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "no channel is configured") || !strings.Contains(errOut, "checkinbot demo") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join("..", "..", "checkinbot.example.toml")
	if code, out, errOut := runMain(t, "", "config", "check", good); code != 0 || !strings.Contains(out, "ok (2 embassies") {
		t.Errorf("example config: exit %d %s %s", code, out, errOut)
	}
	for _, c := range []struct{ name, text, want string }{
		{"syntax", "operator = \n", "line 1"},
		{"unknown key", "operatr = \"x\"\n", "operatr: unknown key"},
		{"bad duration", "[checkin]\nremind_after = \"soon\"\n", "checkin.remind_after"},
		{"missing operator", "notice_version = \"1\"\n", "operator: missing"},
	} {
		path := filepath.Join(dir, c.name+".toml")
		os.WriteFile(path, []byte(c.text), 0o600)
		code, _, errOut := runMain(t, "", "config", "check", path)
		if code != 1 || !strings.Contains(errOut, path) || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, %q; want file name and %q", c.name, code, errOut, c.want)
		}
	}
	if code, _, _ := runMain(t, "", "config", "check"); code != 2 {
		t.Errorf("usage error exit %d", code)
	}
	if code, _, _ := runMain(t, "", "frobnicate"); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
}

func waitABit() { <-time.After(10 * time.Millisecond) }

// TestDemoFastEscalatesMissedCheckin: with --fast, walking away after
// registering shows the reminders and a checkin.missed delivered to the
// demo's sink within seconds (here with a one-minute interval, one second
// when fast).
func TestDemoFastEscalatesMissedCheckin(t *testing.T) {
	t.Setenv("CHECKIN_PEPPER", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fast.toml")
	os.WriteFile(cfg, []byte(strings.Replace(exampleConfigFor(t, "", ""), `intervals = ["24h", "12h", "48h", "72h"]`, `intervals = ["1m"]`, 1)), 0o600)
	r, w := io.Pipe()
	go func() {
		fmt.Fprint(w, strings.Join([]string{"hi", "1", "1", "1", "1", "Phnom Penh", "Siti Aminah", "skip", "skip", "skip",
			"1", "09:00", "blue mango", "blue mango", "1"}, "\n")+"\n")
		time.Sleep(8 * time.Second) // walk away
		w.Close()
	}()
	var out, errOut syncbuf.Buffer
	if code := run([]string{"demo", "--fast", "--config", cfg, "--data-dir", dir}, r, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"Time to check in", "Reminder", "EMBASSY <- checkin.missed case=case_000001 severity=high"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestWhatsAppCommandErrors(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runMain(t, "", "whatsapp", "link", "--data-dir", dir, "--phone", "0123"); code != 1 || !strings.Contains(errOut, "+ then country code") {
		t.Errorf("malformed number: exit %d %s", code, errOut)
	}
	if code, _, errOut := runMain(t, "", "whatsapp", "unlink", "--data-dir", dir); code != 1 || !strings.Contains(errOut, "no WhatsApp account is linked") {
		t.Errorf("unlink with nothing linked: exit %d %s", code, errOut)
	}
	if code, _, _ := runMain(t, "", "whatsapp"); code != 2 {
		t.Errorf("usage: exit %d", code)
	}
}
