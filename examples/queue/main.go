// Command queue runs LLM requests as background jobs: a Redis-backed queue
// with workers that call the model through llmkit's stack, retry failed
// jobs later with exponential backoff (the seed document's Celery task,
// max 3 retries, countdown 2^n), and dead-letter what fails for good.
//
//	go run ./examples/queue -jobs 200 -workers 8
//
// It enqueues -jobs jobs for the simulated model, which fails a share of
// calls (-fail), works them off with -workers workers, prints what
// happened and deletes its keys. Redis comes from LLMKIT_REDIS_ADDR
// (default 127.0.0.1:6379).
//
// The workers' stack has a circuit breaker and timeouts but no retry and no
// fallback: the queue owns retries (a retry inside the call would multiply
// with the queue's), and a background job should be retried later rather
// than answered with a degraded placeholder.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	cacheredis "github.com/llmkit/llmkit/cache/redis"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
	"github.com/llmkit/llmkit/resilience"
	"github.com/llmkit/llmkit/stack"
)

type options struct {
	Jobs, Workers int
	Fail          float64
	BaseDelay     time.Duration
	Deadline      time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.Jobs, "jobs", 200, "jobs to enqueue")
	flag.IntVar(&o.Workers, "workers", 8, "concurrent workers")
	flag.Float64Var(&o.Fail, "fail", 0.3, "share of model calls that fail with 503 (0 to 1)")
	flag.DurationVar(&o.BaseDelay, "retry-delay", 100*time.Millisecond, "first retry's wait (doubles per retry)")
	flag.DurationVar(&o.Deadline, "deadline", time.Minute, "give up if the jobs are not done by then")
	flag.Parse()
	rdb := redis.NewClient(&redis.Options{Addr: cacheredis.Addr()})
	defer rdb.Close()
	if err := run(context.Background(), os.Stdout, rdb, o); err != nil {
		fmt.Fprintln(os.Stderr, "queue:", err)
		os.Exit(1)
	}
}

// workerStack is the stack the workers call the model through: metrics,
// logs, the cache, timeouts and a breaker, and no Retry, since the queue
// retries jobs itself: a job's runs and the provider's calls then match
// one for one (TestJobsRetriedNotMultiplied).
func workerStack(provider llm.Client) (*stack.Stack, error) {
	return stack.New(provider, stack.Config{
		ProviderName: "sim", Models: []string{sim.DefaultModel}, Endpoints: []string{"batch"},
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Resilience: &resilience.Config{
			Timeout: resilience.TimeoutConfig{Total: 30 * time.Second, Attempt: 10 * time.Second},
			Breaker: &resilience.BreakerConfig{Name: "queue", FailureRate: 0.9, MinCalls: 50, Period: 10 * time.Second, Delay: time.Second},
		},
	})
}

func run(ctx context.Context, w io.Writer, rdb redis.UniversalClient, o options) error {
	if o.Jobs <= 0 || o.Workers <= 0 || o.Fail < 0 || o.Fail > 1 || o.BaseDelay <= 0 || o.Deadline <= 0 {
		return errors.New("-jobs, -workers, -retry-delay and -deadline must be positive, -fail between 0 and 1")
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", cacheredis.Addr(), err)
	}
	model, err := sim.New(sim.Config{TTFT: 20 * time.Millisecond, PerToken: time.Millisecond,
		Errors: map[llm.Kind]float64{llm.KindUnavailable: o.Fail}})
	if err != nil {
		return err
	}
	st, err := workerStack(model)
	if err != nil {
		return err
	}
	defer st.Close()

	prefix := "llmkit:queue:example:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	q := NewQueue(rdb, prefix)
	q.BaseDelay = o.BaseDelay
	defer rdb.Del(context.WithoutCancel(ctx), q.pending, q.processing, q.delayed, q.results, q.dead)

	var mu sync.Mutex
	done, failed, attempts := 0, 0, map[int]int{}
	all := make(chan struct{})
	q.Filed = func(_ Job, r Result) {
		mu.Lock()
		defer mu.Unlock()
		if r.Kind != "" {
			failed++
		} else {
			done++
		}
		attempts[r.Attempts]++
		if done+failed == o.Jobs {
			close(all)
		}
	}
	jobs := make([]Job, o.Jobs)
	for i := range jobs {
		jobs[i] = Job{ID: strconv.Itoa(i), Prompt: fmt.Sprintf("Classify support ticket #%d", i), Endpoint: "batch"}
	}
	if err := q.Enqueue(ctx, jobs...); err != nil {
		return err
	}

	start := time.Now()
	wctx, stop := context.WithTimeout(ctx, o.Deadline)
	defer stop()
	errc := make(chan error, o.Workers)
	for range o.Workers {
		go func() { errc <- q.Work(wctx, st.Client, 50*time.Millisecond) }()
	}
	var werr error
	select {
	case <-all:
	case <-wctx.Done():
		werr = fmt.Errorf("jobs not done within %v", o.Deadline)
	}
	stop()
	for range o.Workers {
		werr = errors.Join(werr, <-errc)
	}

	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(w, "%d jobs, %d workers, %.0f%% of model calls failing: %d done, %d failed for good, in %v\n",
		o.Jobs, o.Workers, o.Fail*100, done, failed, time.Since(start).Round(time.Millisecond))
	for n := 1; n <= q.MaxAttempts; n++ {
		if attempts[n] > 0 {
			fmt.Fprintf(w, "  %d job(s) took %d attempt(s)\n", attempts[n], n)
		}
	}
	return werr
}
