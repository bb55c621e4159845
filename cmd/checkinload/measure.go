package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/checkinbot/checkinbot/escalation"
	"github.com/checkinbot/checkinbot/webhook"
)

// What the tool keeps is bounded by the run's shape, not by the calls it
// sees: 8 bytes per send (for the exact sliding-window maximum), 16 bytes
// per citizen (their last send), 8 bytes per measured latency, one map
// entry per webhook id (exactly-once is checked for every event) and one
// record per commit over 50 ms.

// limitMeter counts sends per second overall and per chat, and the
// shortest gap between two sends to one chat.
type limitMeter struct {
	mu       sync.Mutex
	t0       time.Time
	all      []int64         // send times, ns since t0
	last     []int64         // per citizen index: last send, ns since t0 (0: none)
	secN     []uint32        // per citizen index: (second << 8) | sends in it
	other    map[int64]int64 // chats that are no citizen's: last send
	minGap   time.Duration
	maxChat  int
	anyTwice bool
}

func newLimitMeter(n int) *limitMeter {
	return &limitMeter{last: make([]int64, n), secN: make([]uint32, n), other: map[int64]int64{}, minGap: time.Duration(math.MaxInt64)}
}

// count is the sends so far (progress lines).
func (l *limitMeter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

func (l *limitMeter) start(t time.Time) {
	l.mu.Lock()
	l.t0 = t
	l.mu.Unlock()
}

// add records one send to chat at at; i is the citizen's index or -1.
func (l *limitMeter) add(at time.Time, chat int64, i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t0.IsZero() {
		return // start-up is not the day
	}
	t := max(int64(at.Sub(l.t0)), 1) // 0 means "no send yet"
	l.all = append(l.all, t)
	var prev int64
	if i >= 0 {
		prev, l.last[i] = l.last[i], t
		sec := uint32(t/int64(time.Second)) + 1
		cur := l.secN[i]
		if cur>>8 == sec {
			cur++
		} else {
			cur = sec<<8 | 1
		}
		l.secN[i] = cur
		l.maxChat = max(l.maxChat, int(cur&0xff))
	} else {
		prev, l.other[chat] = l.other[chat], t
		l.maxChat = max(l.maxChat, 1)
	}
	if prev != 0 {
		l.anyTwice = true
		l.minGap = min(l.minGap, time.Duration(t-prev))
	}
}

// fill reports the most sends in any one-second sliding window, the most to
// one chat in one (aligned) second, and the shortest per-chat gap.
func (l *limitMeter) fill(rep *Report) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rep.Sends = len(l.all)
	slices.Sort(l.all)
	j := 0
	for i, t := range l.all {
		for t-l.all[j] >= int64(time.Second) {
			j++
		}
		rep.MaxSendsPerSec = max(rep.MaxSendsPerSec, i-j+1)
	}
	rep.MaxChatPerSec = l.maxChat
	if l.anyTwice {
		rep.MinChatGapMs = ms(l.minGap)
	} else {
		rep.MinChatGapMs = -1 // no chat received two messages
	}
}

// sinkRecorder is the embassies' receiver: webhook.Sink verifies every
// signature; around it, every accepted delivery is counted by webhook-id
// (exactly once) and timed against the event's created_at.
type sinkRecorder struct {
	sink webhook.Sink

	mu       sync.Mutex
	dayStart time.Time
	arrivals map[string]uint8 // webhook-id → arrivals (saturating)
	byType   map[string]int   // first arrivals per event type
	cases    map[string]bool  // cases with a checkin.missed
	lat      latencies
	duress   latencies
	dupes    int
	dupTypes map[string]int
}

func newSinkRecorder(key []byte) *sinkRecorder {
	return &sinkRecorder{sink: webhook.Sink{Secrets: [][]byte{key}}, arrivals: map[string]uint8{}, byType: map[string]int{},
		cases: map[string]bool{}}
}

func (s *sinkRecorder) startDay(t time.Time) {
	s.mu.Lock()
	s.dayStart = t
	s.mu.Unlock()
}

func (s *sinkRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	s.sink.ServeHTTP(rw, r)
	if rw.code/100 != 2 {
		return
	}
	var ev struct {
		Type      string    `json:"type"`
		CaseID    string    `json:"case_id"`
		CreatedAt time.Time `json:"created_at"`
	}
	json.Unmarshal(body, &ev)
	id := r.Header.Get(webhook.HeaderID)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.arrivals[id]
	if n < math.MaxUint8 {
		s.arrivals[id] = n + 1
	}
	if n > 0 {
		if s.dupTypes == nil {
			s.dupTypes = map[string]int{}
		}
		s.dupTypes[ev.Type]++
		s.dupes++
		return
	}
	s.byType[ev.Type]++
	if ev.Type == string(escalation.TypeCheckinMissed) {
		s.cases[ev.CaseID] = true
	}
	if s.dayStart.IsZero() || ev.CreatedAt.Before(s.dayStart) {
		return // the seed's registration backlog is not the day's latency
	}
	d := now.Sub(ev.CreatedAt)
	s.lat.add(d)
	if ev.Type == string(escalation.TypeDuressTriggered) {
		s.duress.add(d)
	}
}

// registrations is how many registration.created events arrived.
func (s *sinkRecorder) registrations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byType[string(escalation.TypeRegistrationCreated)]
}

func (s *sinkRecorder) counts() (duress, sos, missed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byType[string(escalation.TypeDuressTriggered)], s.byType[string(escalation.TypeSOSRaised)], len(s.cases)
}

func (s *sinkRecorder) fill(rep *Report) {
	rep.DuressArrived, rep.SOSArrived, rep.MissedArrived = s.counts()
	s.mu.Lock()
	defer s.mu.Unlock()
	rep.Webhooks = s.lat.len()
	rep.WebhookP50ms, rep.WebhookP99ms = s.lat.pct(50), s.lat.pct(99)
	rep.DuressP99ms = s.duress.pct(99)
	rep.DuplicateWebhooks, rep.DuplicateTypes = s.dupes, s.dupTypes
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// latencies is a concurrent list of durations with percentiles (8 bytes
// each: exact percentiles for a million measurements cost 8 MB).
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// pct is the p-th percentile in milliseconds (nearest rank); -1 if empty.
func (l *latencies) pct(p float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return -1
	}
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	i := int(math.Ceil(p/100*float64(len(l.d)))) - 1
	return ms(l.d[min(max(i, 0), len(l.d)-1)])
}

func (l *latencies) over(d time.Duration) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.d {
		if x > d {
			n++
		}
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuSeconds is the process's user and system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// peakRSSMB is VmHWM from /proc/self/status, in MiB; -1 where unreadable.
func peakRSSMB() float64 { return procStatusMB("VmHWM:") }

// rssMB is the current VmRSS, in MiB; -1 where unreadable.
func rssMB() float64 { return procStatusMB("VmRSS:") }

func procStatusMB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return -1
}

func fileMB(path string) float64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return float64(fi.Size()) / (1 << 20)
}

// LongCommit is one store group commit over 50 ms and what was happening
// while it ran, to say what long commits are.
type LongCommit struct {
	// AtSeconds is when it began, seconds into the day (negative: before).
	AtSeconds float64 `json:"at_s"`
	Ms        float64 `json:"ms"`
	Writes    int     `json:"writes"` // writes in the group
	// Maintenance is the deliverer's store calls in flight during it
	// (route, prune, record, due: their writes ride group commits too).
	Maintenance []string `json:"maintenance,omitempty"`
	// GCs is how many garbage collections finished during it, GCPauseMs
	// their stop-the-world pauses.
	GCs       int     `json:"gcs"`
	GCPauseMs float64 `json:"gc_pause_ms"`
	// DiskProbeMs is the slowest fsync of the tool's own probe file on the
	// same disk that overlapped it: a slow probe means a slow disk.
	DiskProbeMs float64 `json:"disk_probe_ms"`
	HeapMB      float64 `json:"heap_mb"`
}

// commitLog keeps every commit's duration (for percentiles) and, for each
// over 50 ms, what was happening.
type commitLog struct {
	durs     latencies
	dayStart atomic.Int64 // unix ns
	ops      *opTracker
	probe    *diskProbe
	mu       sync.Mutex
	long     []LongCommit
}

const longCommit = 50 * time.Millisecond

func (c *commitLog) observe(took time.Duration, writes int) {
	c.durs.add(took)
	if took <= longCommit {
		return
	}
	end := time.Now()
	begin := end.Add(-took)
	lc := LongCommit{AtSeconds: begin.Sub(time.Unix(0, c.dayStart.Load())).Seconds(), Ms: ms(took), Writes: writes}
	if c.ops != nil {
		lc.Maintenance = c.ops.during(begin, end)
	}
	var gc debug.GCStats
	gc.Pause = make([]time.Duration, 0, 256)
	debug.ReadGCStats(&gc)
	for i, pe := range gc.PauseEnd {
		if !pe.Before(begin) && !pe.After(end) && i < len(gc.Pause) {
			lc.GCs++
			lc.GCPauseMs += ms(gc.Pause[i])
		}
	}
	c.mu.Lock()
	n := len(c.long)
	c.mu.Unlock()
	var m runtime.MemStats
	if n < 1000 { // ReadMemStats stops the world: only for the first thousand
		runtime.ReadMemStats(&m)
		lc.HeapMB = float64(m.HeapAlloc) / (1 << 20)
	}
	c.mu.Lock()
	c.long = append(c.long, lc)
	c.mu.Unlock()
	if c.probe != nil {
		go func() { // the probe's fsync overlapping the commit may still be running
			time.Sleep(time.Second)
			p := c.probe.maxDuring(begin, end)
			c.mu.Lock()
			for i := len(c.long) - 1; i >= 0; i-- {
				if c.long[i].AtSeconds == lc.AtSeconds && c.long[i].Ms == lc.Ms {
					c.long[i].DiskProbeMs = p
					break
				}
			}
			c.mu.Unlock()
		}()
	}
}

func (c *commitLog) longCommits() []LongCommit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.long)
}

// span is one timed call.
type span struct {
	name       string
	start, end int64 // unix ns; end 0 while running
}

// opTracker remembers the deliverer's store calls of the last minute.
type opTracker struct {
	mu    sync.Mutex
	spans []span
}

func (t *opTracker) done(name string, start int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.spans) - 1; i >= 0; i-- {
		if s := &t.spans[i]; s.name == name && s.start == start && s.end == 0 {
			s.end = time.Now().UnixNano()
			return
		}
	}
}

// track times one call.
func (t *opTracker) track(name string) func() {
	t.mu.Lock()
	start := t.begin0(name)
	t.mu.Unlock()
	return func() { t.done(name, start) }
}

// begin0 opens a span; the caller holds t.mu. Spans that ended over a
// minute ago are forgotten (bounded memory).
func (t *opTracker) begin0(name string) int64 {
	now := time.Now().UnixNano()
	if len(t.spans) > 4096 {
		keep := t.spans[:0]
		for _, s := range t.spans {
			if s.end == 0 || now-s.end < int64(time.Minute) {
				keep = append(keep, s)
			}
		}
		t.spans = keep
	}
	t.spans = append(t.spans, span{name: name, start: now})
	return now
}

// during names the calls that overlapped [begin, end], with their counts.
func (t *opTracker) during(begin, end time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, e := begin.UnixNano(), end.UnixNano()
	n := map[string]int{}
	for _, s := range t.spans {
		if s.start <= e && (s.end == 0 || s.end >= b) {
			n[s.name]++
		}
	}
	var out []string
	for name, k := range n {
		out = append(out, fmt.Sprintf("%s×%d", name, k))
	}
	sort.Strings(out)
	return out
}

// diskProbe fsyncs a small file next to the data file every 100 ms and
// remembers how long each took: a long commit that coincides with a slow
// probe was the disk's (other work on the machine), not the store's.
type diskProbe struct {
	mu    sync.Mutex
	spans []span // name unused
	stop  chan struct{}
	done  chan struct{}
}

func startDiskProbe(dir string) *diskProbe {
	p := &diskProbe{stop: make(chan struct{}), done: make(chan struct{})}
	f, err := os.OpenFile(filepath.Join(dir, "disk-probe"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		defer os.Remove(f.Name())
		defer f.Close()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		buf := make([]byte, 4096)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			buf[0] = byte(i)
			start := time.Now()
			f.WriteAt(buf, 0)
			f.Sync()
			end := time.Now()
			p.mu.Lock()
			if len(p.spans) >= 1200 { // two minutes
				p.spans = append(p.spans[:0], p.spans[600:]...)
			}
			p.spans = append(p.spans, span{start: start.UnixNano(), end: end.UnixNano()})
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *diskProbe) close() {
	select {
	case <-p.done:
	default:
		close(p.stop)
		<-p.done
	}
}

func (p *diskProbe) maxDuring(begin, end time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, e := begin.UnixNano(), end.UnixNano()
	var m time.Duration
	for _, s := range p.spans {
		if s.start <= e && s.end >= b {
			m = max(m, time.Duration(s.end-s.start))
		}
	}
	return ms(m)
}

// trackedOutbox is the App's outbox as its deliverer sees it, each
// maintenance call timed (route, prune, record, due), so a long commit
// can be attributed to what was in flight.
type trackedOutbox struct {
	webhook.Outbox
	ops *opTracker
}

func (o trackedOutbox) Route(now time.Time, targets func(escalation.Event) []escalation.Target) (int, error) {
	defer o.ops.track("route")()
	return o.Outbox.Route(now, targets)
}

func (o trackedOutbox) Prune(cutoff time.Time) (int, error) {
	defer o.ops.track("prune")()
	return o.Outbox.Prune(cutoff)
}

func (o trackedOutbox) RecordAttempts(now time.Time, attempts []escalation.Attempt) error {
	defer o.ops.track("record")()
	return o.Outbox.RecordAttempts(now, attempts)
}

func (o trackedOutbox) DueChains(now time.Time, skip func(endpoint string) bool, limit int) (escalation.DueBatch, error) {
	defer o.ops.track("due")()
	return o.Outbox.DueChains(now, skip, limit)
}
