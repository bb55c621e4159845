package telegram_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkinbot/checkinbot/bot/telegram"
	"github.com/checkinbot/checkinbot/internal/testkit"
	"github.com/checkinbot/checkinbot/store/boltstore"
)

// jsonClient re-encodes go-telegram/bot's multipart/form-data requests as
// JSON, because telegram-test-api parses only JSON and urlencoded bodies.
// Only this test uses it; the production client is untouched.
type jsonClient struct{ base *http.Client }

var number = regexp.MustCompile(`^-?[0-9]{1,18}$`)

func (j jsonClient) Do(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.Header.Get("Content-Type"), "multipart/form-data") {
		return j.base.Do(req)
	}
	mr, err := req.MultipartReader()
	if err != nil {
		return nil, err
	}
	fields := map[string]any{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		v, _ := io.ReadAll(part)
		s := string(v)
		switch {
		case (strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[")) && json.Valid(v):
			fields[part.FormName()] = json.RawMessage(v)
		case number.MatchString(s):
			fields[part.FormName()] = json.Number(s)
		case s == "true" || s == "false":
			fields[part.FormName()] = s == "true"
		default:
			fields[part.FormName()] = s
		}
	}
	body, _ := json.Marshal(fields)
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Type", "application/json")
	return j.base.Do(out)
}

// TestAgainstTelegramTestAPI runs a conversation against telegram-test-api,
// a Bot API emulator nobody here wrote: registration with inline buttons,
// a check-in and a duress check-in with identical replies.
func TestAgainstTelegramTestAPI(t *testing.T) {
	dir, _ := filepath.Abs(filepath.Join("testdata", "emulator"))
	node, err := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "telegram-test-api"))
	if err != nil || modErr != nil {
		msg := "node or telegram-test-api missing (run: npm ci --prefix bot/telegram/testdata/emulator)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(node, filepath.Join(dir, "emulator.js"), strconv.Itoa(port))
	cmd.Dir = dir
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("emulator did not start: %q %v", line, err)
	}
	apiURL := strings.TrimSpace(strings.TrimPrefix(line, "ready "))

	r := testkit.Runner(t)
	s := r.Store
	const tok = "777:emulator-token"
	ch, err := telegram.New(telegram.Options{Token: tok, APIURL: apiURL, PerChat: 10 * time.Millisecond, PollTimeout: time.Second,
		HTTPClient: jsonClient{&http.Client{Timeout: 10 * time.Second}}}, r)
	if err != nil {
		t.Fatal(err)
	}
	r.Register(ch.Name(), ch)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ch.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// The citizen's side, through the emulator's client API.
	const chatID = 4242
	from := map[string]any{"id": chatID, "first_name": "Siti", "username": "siti", "is_bot": false, "language_code": "en"}
	chat := map[string]any{"id": chatID, "first_name": "Siti", "type": "private"}
	post := func(path string, body map[string]any) []byte {
		b, _ := json.Marshal(body)
		resp, err := http.Post(apiURL+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return out
	}
	say := func(text string) {
		post("/sendMessage", map[string]any{"botToken": tok, "date": time.Now().Unix(), "from": from, "chat": chat, "text": text})
	}
	press := func(data string) {
		post("/sendCallback", map[string]any{"botToken": tok, "date": time.Now().Unix(), "from": from,
			"message": map[string]any{"from": from, "chat": chat}, "data": data})
	}
	type botMsg struct {
		Text        string          `json:"text"`
		ReplyMarkup json.RawMessage `json:"reply_markup"`
	}
	expect := func(contains string) botMsg {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			var got struct {
				Result []struct {
					Message botMsg `json:"message"`
				} `json:"result"`
			}
			json.Unmarshal(post("/getUpdates", map[string]any{"token": tok, "chatId": chatID}), &got)
			for _, m := range got.Result {
				if strings.Contains(m.Message.Text+string(m.Message.ReplyMarkup), contains) {
					return m.Message
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the bot never said %q through the emulator", contains)
		return botMsg{}
	}

	say("/start")
	lang := expect("Which language")
	if !strings.Contains(string(lang.ReplyMarkup), `"callback_data":"en"`) {
		t.Errorf("no inline keyboard: %s", lang.ReplyMarkup)
	}
	press("en")
	expect("Do you agree?")
	press("agree")
	expect("passport do you have")
	for _, a := range []struct{ send, want string }{
		{"MY", "Which country are you in now"}, {"KH", "Which city"}, {"Phnom Penh", "full name"},
		{"Siti Aminah", "passport number"}, {"skip", "employer"}, {"skip", "contact"}, {"skip", "How often"},
		{"24h", "time of day"}, {"09:00", "secret word"}, {"blue mango", "again"}, {"blue mango", "check your answers"},
		{"1", "You are registered"},
	} {
		say(a.send)
		expect(a.want)
	}
	say("ok")
	normal := expect("Check-in received")
	say("fine, thanks. Blue Mango")
	duress := expect("Check-in received")
	if normal.Text != duress.Text || string(normal.ReplyMarkup) != string(duress.ReplyMarkup) {
		t.Errorf("duress reply differs: %q vs %q", normal.Text, duress.Text)
	}
	box, _ := s.(*boltstore.Store).Outbox()
	var types []string
	for _, ev := range box {
		types = append(types, ev.Type)
	}
	if fmt.Sprint(types) != "[registration.created duress.triggered]" {
		t.Errorf("recorded %v", types)
	}
}
