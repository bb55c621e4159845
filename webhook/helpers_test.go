package webhook

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// safeBuffer is a bytes.Buffer safe for the sink's goroutines.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *safeBuffer) lines() []string {
	return strings.Split(strings.TrimSpace(s.String()), "\n")
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
