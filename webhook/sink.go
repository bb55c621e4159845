package webhook

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// Sink is the reference receiver an embassy can start from. It verifies
// each delivery's signature and timestamp (401 otherwise), drops
// redeliveries by webhook-id, appends each new event to Out as one JSON
// line, and writes a one-line summary to Summary.
type Sink struct {
	Secrets   [][]byte
	Tolerance time.Duration // default DefaultTolerance
	Out       io.Writer     // JSON lines; may be nil
	Summary   io.Writer     // one line per event; may be nil
	Now       func() time.Time
	// OnEvent, if set, sees every new event (the demo prints it).
	OnEvent func(Event)

	mu   sync.Mutex
	seen map[string]bool
}

// Event is the part of a delivered body the sink summarises.
type Event struct {
	ID           string `json:"id"`
	Type         string `json:"type"`
	CaseID       string `json:"case_id"`
	CaseSeq      int    `json:"case_seq"`
	Severity     string `json:"severity"`
	EmbassyID    string `json:"embassy_id"`
	DoNotContact bool   `json:"do_not_contact"`
}

// Remember marks ids as received, e.g. from an earlier run's output file.
func (s *Sink) Remember(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	for _, id := range ids {
		s.seen[id] = true
	}
}

// LoadSeen reads the ids of the events already in a JSON-lines file.
func LoadSeen(path string) ([]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev Event
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.ID != "" {
			ids = append(ids, ev.ID)
		}
	}
	return ids, sc.Err()
}

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, `{"error":"method_not_allowed"}`, http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, `{"error":"unreadable_body"}`, http.StatusBadRequest)
		return
	}
	now, tolerance := time.Now(), s.Tolerance
	if s.Now != nil {
		now = s.Now()
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	if err := Verify(r.Header, body, s.Secrets, now, tolerance); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "{\"error\":\"unauthorized\",\"detail\":%q}\n", err.Error())
		return
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, `{"error":"not_json"}`, http.StatusBadRequest)
		return
	}
	id := r.Header.Get(HeaderID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if s.seen[id] {
		w.WriteHeader(http.StatusNoContent) // a redelivery: already have it
		return
	}
	if s.Out != nil {
		if _, err := fmt.Fprintf(s.Out, "%s\n", body); err != nil {
			http.Error(w, `{"error":"storage_failed"}`, http.StatusServiceUnavailable)
			return // not marked seen: the sender will retry
		}
	}
	s.seen[id] = true
	if s.Summary != nil {
		fmt.Fprintln(s.Summary, summary(ev))
	}
	if s.OnEvent != nil {
		s.OnEvent(ev)
	}
	w.WriteHeader(http.StatusNoContent)
}

// summary is one line about an event, without personal data.
func summary(ev Event) string {
	line := fmt.Sprintf("%s %s case=%s severity=%s embassy=%s", ev.Type, ev.ID, dash(ev.CaseID), ev.Severity, dash(ev.EmbassyID))
	if ev.DoNotContact {
		line += " do_not_contact=true"
	}
	return line
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
