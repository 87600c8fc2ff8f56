package queue_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
	"github.com/llmkit/llmkit/queue"
	"github.com/llmkit/llmkit/resilience"
	"github.com/llmkit/llmkit/stack"
)

// The test binary doubles as a worker process: with envWorker set it runs
// workerMain instead of the tests (see startWorker).
const (
	envWorker   = "LLMKIT_QUEUE_TEST_WORKER"
	envDSN      = "LLMKIT_QUEUE_TEST_DSN"
	envSchema   = "LLMKIT_QUEUE_TEST_SCHEMA"
	envCalls    = "LLMKIT_QUEUE_TEST_CALLS"    // file the provider appends one byte to per call
	envMode     = "LLMKIT_QUEUE_TEST_MODE"     // "", "hang" or "gate"
	envGate     = "LLMKIT_QUEUE_TEST_GATE"     // FIFO a "gate" call reads before answering
	envWorkers  = "LLMKIT_QUEUE_TEST_WORKERS"  // jobs at once
	envRescue   = "LLMKIT_QUEUE_TEST_RESCUE"   // RescueAfter, with JobTimeout half of it
	envFail     = "LLMKIT_QUEUE_TEST_FAIL"     // share of calls failing with unavailable
	envAttempts = "LLMKIT_QUEUE_TEST_ATTEMPTS" // MaxAttempts
)

func TestMain(m *testing.M) {
	if os.Getenv(envWorker) != "" {
		if err := workerMain(); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		// modernc's SQLite and pgx keep no goroutines after Close; River's
		// are stopped by Run's return. These belong to the runtime's
		// signal handling and database/sql's opener in tests that end
		// while a Close is in flight.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// workerMain is one worker process: the sim model at zero latency (or a
// call that hangs, or waits for a gate) behind a stack without retry and
// fallback, counted in a file shared by every process, working the queue
// until SIGTERM.
func workerMain() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	calls, err := os.OpenFile(os.Getenv(envCalls), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer calls.Close()
	fail, _ := strconv.ParseFloat(os.Getenv(envFail), 64)
	simCfg := sim.Config{TTFT: -1, PerToken: -1, Jitter: -1, Seed: int64(os.Getpid())}
	if fail > 0 {
		simCfg.Errors = map[llm.Kind]float64{llm.KindUnavailable: fail}
	}
	model, err := sim.New(simCfg)
	if err != nil {
		return err
	}
	mode := os.Getenv(envMode)
	provider := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		if _, err := calls.Write([]byte{'x'}); err != nil { // O_APPEND: one atomic write per call
			return nil, err
		}
		switch mode {
		case "hang": // a stuck call that ignores its context: only SIGKILL ends it
			select {}
		case "gate":
			f, err := os.Open(os.Getenv(envGate)) // a FIFO: blocks until the test opens it to write
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
	workers, _ := strconv.Atoi(os.Getenv(envWorkers))
	rescue, _ := time.ParseDuration(os.Getenv(envRescue))
	attempts, _ := strconv.Atoi(os.Getenv(envAttempts))
	cfg := queue.Config{
		Client: st, Workers: workers, MaxAttempts: attempts, Schema: os.Getenv(envSchema),
		BaseDelay: 10 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		DrainTimeout: 30 * time.Second, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if rescue > 0 {
		cfg.JobTimeout, cfg.RescueAfter = rescue/2, rescue
	}
	cfg.Test.Enabled = true // no staggered start of the maintenance services
	q, err := queue.Open(ctx, os.Getenv(envDSN), cfg)
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
