// Command testworker is the worker process of the queue's tests: the sim
// model at zero latency (or a call that hangs, or waits for a gate)
// behind a stack without retry and fallback, counted in a file shared by
// every process, working the queue until SIGTERM.
//
// The tests build it with `go build`, without -race even when they run
// under it: modernc's SQLite is C translated to Go, and the race
// detector's instrumentation of its every memory access cost about six
// times the CPU per job (see docs/queue.md, Tests). The test process
// itself, which inserts and checks the jobs, still runs under -race.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
	"github.com/llmkit/llmkit/queue"
	"github.com/llmkit/llmkit/resilience"
	"github.com/llmkit/llmkit/stack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dsn      = flag.String("dsn", "", "SQLite path or postgres:// URL")
		schema   = flag.String("schema", "", "PostgreSQL schema of River's tables")
		callsLog = flag.String("calls", "", "file the provider appends one byte to per call")
		mode     = flag.String("mode", "", `"" (answer at once), "hang" (never answer) or "gate" (read the FIFO -gate first)`)
		gate     = flag.String("gate", "", "FIFO a gate call reads to its end before answering")
		workers  = flag.Int("workers", 0, "jobs at once (0: the queue's default)")
		rescue   = flag.Duration("rescue", 0, "RescueAfter, with JobTimeout half of it (0: the defaults)")
		fail     = flag.Float64("fail", 0, "share of calls failing with unavailable")
		attempts = flag.Int("attempts", 0, "MaxAttempts (0: the default)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	calls, err := os.OpenFile(*callsLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer calls.Close()
	simCfg := sim.Config{TTFT: -1, PerToken: -1, Jitter: -1, Seed: int64(os.Getpid())}
	if *fail > 0 {
		simCfg.Errors = map[llm.Kind]float64{llm.KindUnavailable: *fail}
	}
	model, err := sim.New(simCfg)
	if err != nil {
		return err
	}
	provider := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		if _, err := calls.Write([]byte{'x'}); err != nil { // O_APPEND: one atomic write per call
			return nil, err
		}
		switch *mode {
		case "hang": // a stuck call that ignores its context: only SIGKILL ends it
			select {}
		case "gate":
			f, err := os.Open(*gate) // a FIFO: blocks until the test opens it to write
			if err != nil {
				return nil, err
			}
			_, _ = io.ReadAll(f)
			f.Close()
		}
		return model.Generate(ctx, req)
	})
	st, err := stack.New(provider, stack.Config{
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), NoCache: true,
		Resilience: &resilience.Config{Timeout: resilience.TimeoutConfig{Total: 30 * time.Second, Attempt: 30 * time.Second}},
	})
	if err != nil {
		return err
	}
	defer st.Close()
	cfg := queue.Config{
		Client: st, Workers: *workers, MaxAttempts: *attempts, Schema: *schema,
		BaseDelay: 10 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		DrainTimeout: 30 * time.Second, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if *rescue > 0 {
		cfg.JobTimeout, cfg.RescueAfter = *rescue/2, *rescue
	}
	cfg.Test.Enabled = true // no staggered start of the maintenance services
	q, err := queue.Open(ctx, *dsn, cfg)
	if err != nil {
		return err
	}
	defer q.Close()
	go func() {
		<-ctx.Done()
		fmt.Fprintln(os.Stderr, "worker: draining")
	}()
	fmt.Fprintln(os.Stderr, "worker: running")
	return q.Run(ctx)
}
