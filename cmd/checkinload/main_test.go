package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestSmoke is the CI run of the load tool: 300 registrants, a day
// compressed into 15 s, every share high enough that each kind of event
// happens. It asserts nothing was lost or delivered twice, no send limit
// was broken and every metric was measured.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("load run")
	}
	var stdout, stderr bytes.Buffer
	args := []string{"-n", "300", "-day", "15s", "-rate", "1000", "-per-chat", "1s", "-miss", "0.1", "-sos", "0.02",
		"-duress", "0.02", "-status", "0.1", "-grace", "60s", "-json", "-q"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	rep := map[string]float64{}
	for k, v := range raw {
		switch v := v.(type) {
		case float64:
			rep[k] = v
		case bool:
			if v {
				rep[k] = 1
			}
		}
	}
	var want map[string]any
	b, _ := json.Marshal(Report{})
	json.Unmarshal(b, &want)
	for name := range want {
		_, ok := raw[name]
		v := rep[name]
		switch {
		case !ok:
			t.Errorf("metric %s missing", name)
		case v < 0:
			t.Errorf("metric %s not measured (%v)", name, v)
		}
	}
	for _, name := range []string{"inbound_messages", "replies_measured", "webhooks_received", "telegram_sends", "commits",
		"cpu_seconds", "peak_rss_mb", "duress_sent", "sos_sent", "missed_expected", "duress_to_webhook_p99_ms",
		"reply_latency_p99_ms", "webhook_latency_p99_ms", "max_sends_per_second"} {
		if rep[name] <= 0 {
			t.Errorf("%s = %v: the day did not exercise it", name, rep[name])
		}
	}
	if rep["lost_events"] != 0 || int(rep["duplicate_webhooks"]) > DuplicatesTolerated(int(rep["webhooks_received"])) {
		t.Errorf("lost %v, duplicates %v (at least once: %d tolerated)", rep["lost_events"], rep["duplicate_webhooks"], DuplicatesTolerated(int(rep["webhooks_received"])))
	}
	if rep["duress_arrived"] != rep["duress_sent"] || rep["sos_arrived"] != rep["sos_sent"] {
		t.Errorf("duress %v sent, %v arrived; SOS %v sent, %v arrived", rep["duress_sent"], rep["duress_arrived"], rep["sos_sent"], rep["sos_arrived"])
	}
	if rep["limits_kept"] != 1 || rep["max_sends_per_second"] > 1000 || rep["min_gap_per_chat_ms"] < 950 {
		t.Errorf("send limits broken: %v/s overall, %v ms least gap per chat", rep["max_sends_per_second"], rep["min_gap_per_chat_ms"])
	}
}

// TestBadFlags: bad input is a clear error naming the flag, never a panic.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"-day", "0s"}, {"-miss", "0.6", "-sos", "0.6"}, {"-n", "x"}} {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := run(ctx, append(args, "-q"), &out, &errb)
		cancel()
		if err == nil {
			t.Errorf("%v: no error", args)
			continue
		}
		if msg := err.Error() + errb.String(); !strings.Contains(msg, strings.TrimPrefix(args[0], "-")) {
			t.Errorf("%v: error %q does not name the flag", args, msg)
		}
	}
}
