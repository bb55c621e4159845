// Package fakeapi is a local stand-in for Telegram's Bot API, for tests:
// it queues updates for getUpdates, records every method call with its
// parameters and time, and can answer any method with a 429, 403 or 5xx.
// It understands the multipart forms go-telegram/bot sends as well as JSON.
//
// A load run of a million citizens cannot keep every call: NewWith with
// Options.Forget keeps nothing per call or update and hands each call to
// Options.Observe instead, so the caller aggregates what it measures in
// bounded memory.
package fakeapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is a fake Bot API for one bot token.
type Server struct {
	*httptest.Server
	Token string

	mu         sync.Mutex
	updates    []update
	history    map[int64]map[string]any
	nextUpdate int64
	nextMsg    int
	calls      []Call
	failures   map[string][]Failure
	arrived    chan struct{}
	opt        Options
}

// Options change what the fake API keeps.
type Options struct {
	// Observe, when set, is called with every call as it is answered (the
	// sendMessage result id filled in), concurrently from the HTTP
	// handlers: a load tool measures from it instead of from Calls.
	Observe func(Call)
	// Forget keeps no call (Calls and Sent return nothing) and no update
	// history (Update returns nil): memory stays bounded however long a
	// run. Updates queued for getUpdates are still kept until confirmed.
	Forget bool
}

type update struct {
	id   int64
	body map[string]any
}

// Call is one API request.
type Call struct {
	Method string
	Params map[string]string // JSON values stay JSON text (reply_markup …)
	At     time.Time
	Result int // message_id returned by sendMessage
	Status int // HTTP status answered
}

// Failure is an injected error answer.
type Failure struct {
	Status     int // 429, 403, 500 …
	RetryAfter int // seconds, for 429
}

// New starts a fake API. Close it when done.
func New(token string) *Server { return NewWith(token, Options{}) }

// NewWith starts a fake API with options (a load run: Observe and Forget).
func NewWith(token string, opt Options) *Server {
	s := &Server{Token: token, nextUpdate: 100, nextMsg: 1000, failures: map[string][]Failure{}, arrived: make(chan struct{}),
		history: map[int64]map[string]any{}, opt: opt}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// User is who sends an update.
type User struct {
	ID       int64
	Username string
	Lang     string
}

func (u User) json() map[string]any {
	return map[string]any{"id": u.ID, "is_bot": false, "first_name": "Test", "username": u.Username, "language_code": u.Lang}
}

// push queues an update and returns its id.
func (s *Server) push(body map[string]any) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextUpdate++
	body["update_id"] = s.nextUpdate
	if !s.opt.Forget {
		s.history[s.nextUpdate] = body
	}
	s.updates = append(s.updates, update{id: s.nextUpdate, body: body})
	close(s.arrived)
	s.arrived = make(chan struct{})
	return s.nextUpdate
}

func (s *Server) newMessageID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextMsg++
	return s.nextMsg
}

func (s *Server) message(u User, chatType string, chatID int64, extra map[string]any) (map[string]any, int) {
	id := s.newMessageID()
	m := map[string]any{"message_id": id, "date": time.Now().Unix(), "from": u.json(),
		"chat": map[string]any{"id": chatID, "type": chatType}}
	for k, v := range extra {
		m[k] = v
	}
	return m, id
}

// Text queues a private text message from u; it returns the update id and
// the message id.
func (s *Server) Text(u User, text string) (int64, int) {
	m, id := s.message(u, "private", u.ID, map[string]any{"text": text})
	return s.push(map[string]any{"message": m}), id
}

// TextUpdate builds the update of a private text message from u with a
// fresh update id, without queuing it for getUpdates or keeping it: for a
// bot in webhook mode, where the caller posts the update itself.
func (s *Server) TextUpdate(u User, text string) map[string]any {
	m, _ := s.message(u, "private", u.ID, map[string]any{"text": text})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextUpdate++
	return map[string]any{"update_id": s.nextUpdate, "message": m}
}

// GroupText queues a text message in a group chat.
func (s *Server) GroupText(u User, group int64, text string) int64 {
	m, _ := s.message(u, "group", group, map[string]any{"text": text})
	return s.push(map[string]any{"message": m})
}

// Location queues a shared location.
func (s *Server) Location(u User, lat, lon float64) int64 {
	m, _ := s.message(u, "private", u.ID, map[string]any{"location": map[string]any{"latitude": lat, "longitude": lon}})
	return s.push(map[string]any{"message": m})
}

// Sticker queues a sticker.
func (s *Server) Sticker(u User) int64 {
	m, _ := s.message(u, "private", u.ID, map[string]any{"sticker": map[string]any{"file_id": "x", "file_unique_id": "y",
		"type": "regular", "width": 512, "height": 512, "is_animated": false, "is_video": false}})
	return s.push(map[string]any{"message": m})
}

// Photo queues a photo with a caption.
func (s *Server) Photo(u User, caption string) int64 {
	m, _ := s.message(u, "private", u.ID, map[string]any{"caption": caption,
		"photo": []map[string]any{{"file_id": "p", "file_unique_id": "q", "width": 90, "height": 90}}})
	return s.push(map[string]any{"message": m})
}

// Press queues a button press (callback query) on message msgID.
func (s *Server) Press(u User, msgID int, data string) int64 {
	q := map[string]any{"id": strconv.Itoa(s.newMessageID()), "from": u.json(), "chat_instance": "ci", "data": data,
		"message": map[string]any{"message_id": msgID, "date": time.Now().Unix(), "chat": map[string]any{"id": u.ID, "type": "private"}}}
	return s.push(map[string]any{"callback_query": q})
}

// Redeliver queues an already delivered update again, as Telegram does
// when it did not get an answer.
func (s *Server) Redeliver(id int64, body map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body["update_id"] = id
	s.updates = append(s.updates, update{id: id, body: body})
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// Update returns the JSON body of an update as first queued (for
// Redeliver and webhook tests).
func (s *Server) Update(id int64) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.history[id]
}

// Fail makes the next calls of method fail, one failure per call.
func (s *Server) Fail(method string, f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = append(s.failures[method], f...)
}

// Calls returns every call of method ("" for all), in order.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Sent returns the successful sendMessage calls to chat.
func (s *Server) Sent(chat int64) []Call {
	var out []Call
	for _, c := range s.Calls("sendMessage") {
		if c.Status == http.StatusOK && c.Params["chat_id"] == strconv.FormatInt(chat, 10) {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	prefix := "/bot" + s.Token + "/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error_code": 401, "description": "Unauthorized"})
		return
	}
	method := strings.TrimPrefix(r.URL.Path, prefix)
	params := map[string]string{}
	switch ct := r.Header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "multipart/form-data"):
		if err := r.ParseMultipartForm(1 << 20); err == nil {
			for k, v := range r.MultipartForm.Value {
				params[k] = v[0]
			}
		}
	case strings.HasPrefix(ct, "application/json"):
		var m map[string]json.RawMessage
		json.NewDecoder(r.Body).Decode(&m)
		for k, v := range m {
			var str string
			if json.Unmarshal(v, &str) == nil {
				params[k] = str
			} else {
				params[k] = string(v)
			}
		}
	default:
		r.ParseForm()
		for k, v := range r.Form {
			params[k] = v[0]
		}
	}
	call := Call{Method: method, Params: params, At: time.Now(), Status: http.StatusOK}
	s.mu.Lock()
	if fs := s.failures[method]; len(fs) > 0 {
		f := fs[0]
		s.failures[method] = fs[1:]
		call.Status = f.Status
		s.mu.Unlock()
		s.record(call)
		body := map[string]any{"ok": false, "error_code": f.Status, "description": http.StatusText(f.Status)}
		if f.RetryAfter > 0 {
			body["parameters"] = map[string]any{"retry_after": f.RetryAfter}
			body["description"] = fmt.Sprintf("Too Many Requests: retry after %d", f.RetryAfter)
		}
		if f.Status == 403 {
			body["description"] = "Forbidden: bot was blocked by the user"
		}
		writeJSON(w, f.Status, body)
		return
	}
	s.mu.Unlock()

	switch method {
	case "getUpdates":
		s.getUpdates(w, r, params)
		return
	case "sendMessage":
		id := s.newMessageID()
		call.Result = id
		chat, _ := strconv.ParseInt(params["chat_id"], 10, 64)
		s.record(call)
		writeJSON(w, 200, map[string]any{"ok": true, "result": map[string]any{"message_id": id, "date": time.Now().Unix(),
			"chat": map[string]any{"id": chat, "type": "private"}, "text": params["text"]}})
	case "getMe":
		s.record(call)
		writeJSON(w, 200, map[string]any{"ok": true, "result": map[string]any{"id": 1, "is_bot": true, "first_name": "checkinbot", "username": "checkin_test_bot"}})
	default: // deleteMessage, answerCallbackQuery, setWebhook, deleteWebhook …
		s.record(call)
		writeJSON(w, 200, map[string]any{"ok": true, "result": true})
	}
}

func (s *Server) record(c Call) {
	if f := s.opt.Observe; f != nil {
		f(c)
	}
	if s.opt.Forget {
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

// getUpdates answers with queued updates from offset on, confirming (and
// forgetting) earlier ones, or waits up to timeout for one to arrive.
func (s *Server) getUpdates(w http.ResponseWriter, r *http.Request, params map[string]string) {
	offset, _ := strconv.ParseInt(params["offset"], 10, 64)
	timeout, _ := strconv.Atoi(params["timeout"])
	deadline := time.Now().Add(time.Duration(timeout) * time.Second)
	for {
		s.mu.Lock()
		var keep []update
		var out []map[string]any
		for _, u := range s.updates {
			if u.id < offset {
				continue // confirmed
			}
			keep = append(keep, u)
			out = append(out, u.body)
		}
		s.updates = keep
		arrived := s.arrived
		s.mu.Unlock()
		if len(out) > 0 || time.Now().After(deadline) {
			s.record(Call{Method: "getUpdates", Params: params, At: time.Now(), Status: http.StatusOK})
			if out == nil {
				out = []map[string]any{}
			}
			writeJSON(w, 200, map[string]any{"ok": true, "result": out})
			return
		}
		select {
		case <-arrived:
		case <-time.After(time.Until(deadline)):
		case <-r.Context().Done():
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
