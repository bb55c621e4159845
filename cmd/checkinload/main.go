// Command checkinload is the load tool of issue 15 (item 6): it seeds N
// registrants through the real store API (encrypted with a generated master
// key, every optional field filled), runs the App that serve builds against
// the in-repo fake Telegram Bot API and a signature-verifying local webhook
// sink, plays a day compressed into real time (the App has no clock to
// compress, so the day's hours and the missed check-in ladder are scaled
// into -day), and prints what it measured: throughput, reply and webhook
// latency, Telegram send-limit compliance, CPU, peak RSS, store commit
// pauses (every commit over 50 ms with what ran during it) and lost
// escalations.
//
// Seeding runs each registration through the real engine in memory and
// stores it with one Store.Process, in parallel; with -dir the seed is kept
// (seed.db, seed.json) and later runs with the same -n play their day on a
// fresh copy of it instead of seeding again.
//
//	go run ./cmd/checkinload -n 10000 -day 60s [-json]
//	go run ./cmd/checkinload -n 1000000 -dir /var/tmp/load1m -seed-only   # seed once
//	go run ./cmd/checkinload -n 1000000 -dir /var/tmp/load1m -day 30m     # run many
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "checkinload:", err)
		os.Exit(1)
	}
}

// run parses the flags, runs the load and prints the report; an error means
// the run could not be made or an event was lost or a limit broken.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("checkinload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var p Params
	fs.IntVar(&p.N, "n", 10000, "registrants to seed")
	fs.DurationVar(&p.Day, "day", 60*time.Second, "real time the 24 h day is compressed into")
	fs.Float64Var(&p.Rate, "rate", 30, "Telegram sender's global limit, messages/s (Telegram: 30; paid broadcast: up to 1000)")
	fs.DurationVar(&p.PerChat, "per-chat", time.Second, "Telegram sender's interval between two messages to one chat")
	fs.Float64Var(&p.Miss, "miss", 0.10, "share of citizens who miss their check-in (the ladder escalates)")
	fs.Float64Var(&p.SOS, "sos", 0.005, "share of citizens who send /sos")
	fs.Float64Var(&p.Duress, "duress", 0.005, "share of citizens who answer with their duress keyword")
	fs.Float64Var(&p.Status, "status", 0.05, "share of answering citizens who then send /status")
	fs.IntVar(&p.Workers, "workers", 64, "concurrent registrations while seeding (and prompts moved while scheduling)")
	fs.Uint64Var(&p.Seed, "seed", 1, "random seed of roles and check-in times")
	fs.StringVar(&p.Dir, "dir", "", "data directory: the seed is made there once and reused by later runs with the same -n (default: a temporary one, removed)")
	fs.StringVar(&p.CPUProfile, "cpuprofile", "", "write a CPU profile of the day (App, fake API, sink and driver) to this file")
	fs.BoolVar(&p.SeedOnly, "seed-only", false, "make the seed in -dir (or check it is there) and stop")
	fs.DurationVar(&p.Grace, "grace", 2*time.Minute, "how long after the day to wait for the last escalations")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*quiet {
		p.Log = stderr
	}
	if p.SeedOnly && p.Dir == "" {
		return fmt.Errorf("-seed-only needs -dir (a temporary seed would be removed at once)")
	}
	rep, err := Run(ctx, p)
	if err != nil {
		return err
	}
	if p.SeedOnly {
		fmt.Fprintf(stdout, "seed of %d registrants in %s: written in %.1f s (%.0f/s), delivered in %.1f s, %.0f MiB (reused %v)\n",
			rep.N, p.Dir, rep.SeedSeconds, rep.SeedPerSec, rep.SeedDeliverSecs, rep.FileMB, rep.SeedReused)
		return nil
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printTable(stdout, rep)
	}
	if !rep.Finished {
		return fmt.Errorf("cut off after %.0f s of the day: %d citizens had not answered, %d events not arrived (raise -grace or -day)",
			rep.DaySeconds, rep.Unanswered, rep.Lost)
	}
	if rep.Lost > 0 || rep.DuplicateWebhooks > DuplicatesTolerated(rep.Webhooks) || !rep.LimitsKept {
		return fmt.Errorf("failed: %d lost, %d duplicate webhooks (%v; %d tolerated), limits kept %v",
			rep.Lost, rep.DuplicateWebhooks, rep.DuplicateTypes, DuplicatesTolerated(rep.Webhooks), rep.LimitsKept)
	}
	return nil
}

func printTable(w io.Writer, r *Report) {
	row := func(name, format string, a ...any) {
		fmt.Fprintf(w, "%-34s "+format+"\n", append([]any{name}, a...)...)
	}
	reused := ""
	if r.SeedReused {
		reused = ", reused"
	}
	row("registrants", "%d", r.N)
	row("seed: write; deliver (s)", "%.1f (%.0f/s); %.1f%s", r.SeedSeconds, r.SeedPerSec, r.SeedDeliverSecs, reused)
	row("copy; schedule (s); data file MiB", "%.1f; %.1f; %.0f", r.CopySeconds, r.ScheduleSeconds, r.FileMB)
	row("day (real seconds)", "%.1f", r.DaySeconds)
	row("inbound messages", "%d (%.1f/s)", r.Inbound, r.InboundPerSec)
	row("reply latency p50/p95/p99 (ms)", "%.1f / %.1f / %.1f (%d replies)", r.ReplyP50ms, r.ReplyP95ms, r.ReplyP99ms, r.Replies)
	row("webhook latency p50/p99 (ms)", "%.1f / %.1f (%d webhooks)", r.WebhookP50ms, r.WebhookP99ms, r.Webhooks)
	row("duress → webhook p99 (ms)", "%.1f", r.DuressP99ms)
	row("telegram sends", "%d", r.Sends)
	row("max sends/s overall (limit)", "%d (%.0f)", r.MaxSendsPerSec, r.SendLimit)
	row("max sends/s one chat; min gap ms", "%d; %.0f (interval %.0f)", r.MaxChatPerSec, r.MinChatGapMs, r.ChatLimitGapMs)
	row("limits kept", "%v", r.LimitsKept)
	row("CPU seconds (all; the day)", "%.1f; %.1f", r.CPUSeconds, r.DayCPUSeconds)
	row("peak RSS (MiB)", "%.0f", r.PeakRSSMB)
	row("commits; p50/p99/max (ms); >50ms", "%d; %.1f / %.1f / %.1f; %d", r.Commits, r.CommitP50ms, r.CommitP99ms, r.CommitMaxms, r.CommitsOver50ms)
	row("duress sent / arrived", "%d / %d", r.DuressSent, r.DuressArrived)
	row("SOS sent / arrived", "%d / %d", r.SOSSent, r.SOSArrived)
	row("missed expected / cases escalated", "%d / %d", r.MissedExpected, r.MissedArrived)
	row("duplicate webhooks", "%d", r.DuplicateWebhooks)
	row("lost events", "%d", r.Lost)
	row("finished (unanswered)", "%v (%d)", r.Finished, r.Unanswered)
	if len(r.LongCommits) > 0 {
		fmt.Fprintln(w, "\ncommits over 50 ms (at: s into the day; in flight: the deliverer's store calls; disk: the probe's fsync meanwhile):")
	}
	for _, c := range r.LongCommits {
		fmt.Fprintf(w, "  at %8.1fs %7.1f ms  %4d writes  in flight %-28s  GC %d (%.1f ms)  disk %.1f ms  heap %.0f MiB\n",
			c.AtSeconds, c.Ms, c.Writes, strings.Join(c.Maintenance, ","), c.GCs, c.GCPauseMs, c.DiskProbeMs, c.HeapMB)
	}
}
