package fakeapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// call posts one form-encoded Bot API call and returns the HTTP status.
func call(t *testing.T, s *Server, method string, form url.Values) int {
	t.Helper()
	resp, err := http.Post(s.URL+"/bot"+s.Token+"/"+method, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestForgetObserves: with Forget the server keeps no call and no update
// history, and Observe still sees every call — answered or failed — with
// its parameters; without Forget, Calls and Sent keep working as before.
func TestForgetObserves(t *testing.T) {
	for _, forget := range []bool{false, true} {
		var mu sync.Mutex
		var seen []Call
		s := NewWith("1:t", Options{Forget: forget, Observe: func(c Call) {
			mu.Lock()
			seen = append(seen, c)
			mu.Unlock()
		}})
		s.Fail("sendMessage", Failure{Status: 429, RetryAfter: 1})
		codes := []int{
			call(t, s, "sendMessage", url.Values{"chat_id": {"7"}, "text": {"a"}}),
			call(t, s, "sendMessage", url.Values{"chat_id": {"7"}, "text": {"b"}}),
			call(t, s, "getMe", nil),
		}
		if codes[0] != 429 || codes[1] != 200 || codes[2] != 200 {
			t.Fatalf("forget=%v: statuses %v, want 429 200 200", forget, codes)
		}
		id, _ := s.Text(User{ID: 7}, "hello")
		mu.Lock()
		got := append([]Call(nil), seen...)
		mu.Unlock()
		if len(got) != 3 || got[0].Status != 429 || got[1].Status != 200 || got[1].Params["chat_id"] != "7" ||
			got[1].Params["text"] != "b" || got[1].Result == 0 || got[2].Method != "getMe" {
			t.Errorf("forget=%v: observed %+v", forget, got)
		}
		kept, sent, hist := len(s.Calls("")), len(s.Sent(7)), s.Update(id)
		if forget && (kept != 0 || sent != 0 || hist != nil) {
			t.Errorf("Forget kept %d calls, %d sends, update %v", kept, sent, hist)
		}
		if !forget && (kept != 3 || sent != 1 || hist == nil) {
			t.Errorf("default kept %d calls, %d sends, update %v; want 3, 1, the update", kept, sent, hist)
		}
		s.Close()
	}
}

// TestTextUpdate: an update built for webhook mode has a fresh id, the
// user's text and chat, and is neither queued for getUpdates nor kept.
func TestTextUpdate(t *testing.T) {
	s := New("1:t")
	defer s.Close()
	a := s.TextUpdate(User{ID: 42, Username: "u", Lang: "en"}, "ok")
	b := s.TextUpdate(User{ID: 42}, "ok")
	if a["update_id"] == b["update_id"] {
		t.Errorf("two updates share id %v", a["update_id"])
	}
	raw, _ := json.Marshal(a)
	var u struct {
		Message struct {
			Text string `json:"text"`
			Chat struct {
				ID int64 `json:"id"`
			} `json:"chat"`
		} `json:"message"`
	}
	if err := json.Unmarshal(raw, &u); err != nil || u.Message.Text != "ok" || u.Message.Chat.ID != 42 {
		t.Errorf("update %s: %+v %v", raw, u, err)
	}
	s.mu.Lock()
	queued, kept := len(s.updates), len(s.history)
	s.mu.Unlock()
	if queued != 0 || kept != 0 {
		t.Errorf("TextUpdate queued %d and kept %d updates", queued, kept)
	}
}
