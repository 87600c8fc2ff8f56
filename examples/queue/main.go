// Command queue runs LLM requests as background jobs on River, through
// package github.com/llmkit/llmkit/queue:
//
//	go run ./examples/queue enqueue -n 200      # insert 200 jobs
//	go run ./examples/queue work                # work them until SIGTERM (Ctrl-C)
//	go run ./examples/queue work -until-done    # ... or until none is left to run
//	go run ./examples/queue status              # jobs by state
//	go run ./examples/queue result 42           # job 42's state and answer
//
// The database is an SQLite file, llmkit-queue.db in the current
// directory (-db to change it), so nothing needs a server. With
// DATABASE_URL=postgres://... it is PostgreSQL instead, and any number of
// `work` processes, on any number of machines, share the queue.
//
// The model is the simulator (provider/sim), failing -fail of its calls
// with 503. The workers call it through llmkit's stack with timeouts and a
// breaker but no retry and no fallback: the queue retries (after 1, 2, 4
// s, jittered; 4 attempts), snoozes rate-limited jobs for their
// Retry-After, and cancels jobs that cannot succeed. SIGTERM drains: the
// running jobs finish (within -drain) before the process exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
	"github.com/llmkit/llmkit/queue"
	"github.com/llmkit/llmkit/resilience"
	"github.com/llmkit/llmkit/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "queue:", err)
		os.Exit(1)
	}
}

const usage = `usage: queue <command> [flags]
  enqueue [-n N] [-prompt TEXT] [-unique]   insert jobs
  work [-workers N] [-fail F] [-drain D] [-until-done] [-metrics ADDR]
                                            work jobs until SIGTERM
  status                                    jobs by state
  result ID                                 a job's state and answer
Every command takes -db FILE (default llmkit-queue.db); DATABASE_URL=postgres://... selects PostgreSQL`

// run runs one command; ctx ends it (SIGTERM for work).
func run(ctx context.Context, w io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	db := fs.String("db", "llmkit-queue.db", "SQLite file, when DATABASE_URL is not set")
	n := fs.Int("n", 1, "enqueue: how many jobs")
	prompt := fs.String("prompt", "Classify support ticket #%d", "enqueue: the prompt, %d for the job's number")
	unique := fs.Bool("unique", false, "enqueue: skip a request equal to a pending job")
	workers := fs.Int("workers", 10, "work: jobs at once in this process")
	fail := fs.Float64("fail", 0.3, "work: share of model calls failing with 503 (0 to 1)")
	drain := fs.Duration("drain", 30*time.Second, "work: how long SIGTERM lets running jobs finish")
	untilDone := fs.Bool("until-done", false, "work: exit when no job is left to run")
	metricsAddr := fs.String("metrics", "", "work: serve /metrics on this loopback address (127.0.0.1:9464)")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w\n%s", err, usage)
	}
	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		dsn = *db
	}
	cfg := queue.Config{Unique: *unique, DrainTimeout: *drain, Workers: *workers}
	switch args[0] {
	case "enqueue":
		return enqueue(ctx, w, dsn, cfg, *n, *prompt)
	case "work":
		return work(ctx, w, dsn, cfg, *fail, *untilDone, *metricsAddr)
	case "status":
		return status(ctx, w, dsn)
	case "result":
		if fs.NArg() != 1 {
			return errors.New("result takes one job id")
		}
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil {
			return fmt.Errorf("job id %q: %w", fs.Arg(0), err)
		}
		return result(ctx, w, dsn, id)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

func enqueue(ctx context.Context, w io.Writer, dsn string, cfg queue.Config, n int, prompt string) error {
	if n <= 0 {
		return errors.New("-n must be positive")
	}
	q, err := queue.Open(ctx, dsn, cfg)
	if err != nil {
		return err
	}
	defer q.Close()
	reqs := make([]*llm.Request, n)
	for i := range reqs {
		text := prompt
		if containsVerb(prompt) {
			text = fmt.Sprintf(prompt, i)
		}
		reqs[i] = &llm.Request{Messages: []llm.Message{llm.User(text)}, Endpoint: "batch", Temperature: llm.Ptr(0.0)}
	}
	jobs, err := q.EnqueueMany(ctx, reqs)
	if err != nil {
		return err
	}
	dups := 0
	for _, j := range jobs {
		if j.Duplicate {
			dups++
		}
	}
	fmt.Fprintf(w, "enqueued %d job(s), ids %d..%d", len(jobs)-dups, jobs[0].ID, jobs[len(jobs)-1].ID)
	if dups > 0 {
		fmt.Fprintf(w, " (%d already pending)", dups)
	}
	fmt.Fprintln(w)
	return nil
}

func containsVerb(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' && s[i+1] == 'd' {
			return true
		}
	}
	return false
}

// workerStack is what the workers call the model through: metrics, logs,
// the cache, timeouts and a breaker, and NO retry and NO fallback: the
// queue owns retries, and a background job is retried rather than
// answered with a placeholder.
func workerStack(provider llm.Client, reg prometheus.Registerer) (*stack.Stack, error) {
	return stack.New(provider, stack.Config{
		ProviderName: "sim", Models: []string{sim.DefaultModel}, Endpoints: []string{"batch"},
		Registry: reg, Logger: slog.New(slog.DiscardHandler),
		Resilience: &resilience.Config{
			Timeout: resilience.TimeoutConfig{Total: 30 * time.Second, Attempt: 30 * time.Second},
			Breaker: &resilience.BreakerConfig{Name: "queue", FailureRate: 0.9, MinCalls: 50, Period: 10 * time.Second, Delay: time.Second},
		},
	})
}

func work(ctx context.Context, w io.Writer, dsn string, cfg queue.Config, fail float64, untilDone bool, metricsAddr string) error {
	if fail < 0 || fail > 1 {
		return errors.New("-fail must be between 0 and 1")
	}
	model, err := sim.New(sim.Config{TTFT: 20 * time.Millisecond, PerToken: time.Millisecond,
		Errors: map[llm.Kind]float64{llm.KindUnavailable: fail}})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	st, err := workerStack(model, reg)
	if err != nil {
		return err
	}
	defer st.Close()
	cfg.Client, cfg.Registerer = st, reg
	q, err := queue.Open(ctx, dsn, cfg)
	if err != nil {
		return err
	}
	defer q.Close()
	if metricsAddr != "" {
		stopMetrics, err := serveMetrics(metricsAddr, reg)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	if untilDone {
		go func() {
			waitIdle(wctx, q)
			stop()
		}()
	}
	start := time.Now()
	fmt.Fprintln(w, "working; SIGTERM or Ctrl-C drains and stops")
	if err := q.Run(wctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "stopped after %v\n", time.Since(start).Round(time.Millisecond))
	return status(context.WithoutCancel(ctx), w, dsn)
}

// waitIdle returns when no job is available, running, scheduled or
// retryable, or when ctx ends; it looks every 200 ms.
func waitIdle(ctx context.Context, q *queue.Queue) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := q.Counts(ctx)
		if err == nil && n["available"]+n["running"]+n["scheduled"]+n["retryable"]+n["pending"] == 0 {
			return
		}
	}
}

// serveMetrics serves the registry on a loopback address.
func serveMetrics(addr string, reg *prometheus.Registry) (func(), error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("-metrics %q: want a loopback address such as 127.0.0.1:9464", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

func status(ctx context.Context, w io.Writer, dsn string) error {
	q, err := queue.Open(ctx, dsn, queue.Config{})
	if err != nil {
		return err
	}
	defer q.Close()
	n, err := q.Counts(ctx)
	if err != nil {
		return err
	}
	for _, s := range []string{"available", "scheduled", "retryable", "running", "pending", "completed", "cancelled", "discarded"} {
		fmt.Fprintf(w, "%-10s %d\n", s, n[s])
	}
	return nil
}

func result(ctx context.Context, w io.Writer, dsn string, id int64) error {
	q, err := queue.Open(ctx, dsn, queue.Config{})
	if err != nil {
		return err
	}
	defer q.Close()
	r, err := q.Result(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "job %d: %s, attempt %d of %d\n", r.ID, r.State, r.Attempt, r.MaxAttempts)
	if o := r.Output; o != nil && o.ErrorKind != "" {
		fmt.Fprintf(w, "last failure: %s (%s)\n", o.ErrorKind, r.LastError)
	} else if o != nil {
		fmt.Fprintf(w, "answer (%s, %d+%d tokens): %s\n", o.Model, o.InputTokens, o.OutputTokens, o.Text)
	}
	return nil
}
