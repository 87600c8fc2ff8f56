package main

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/sim"
	"github.com/llmkit/llmkit/metrics"
	"github.com/llmkit/llmkit/profiling"
	"github.com/llmkit/llmkit/resilience"
)

// endpoints are the features of the pretend service that make calls.
var endpoints = []string{"chat", "summarize", "search"}

// stack is the recommended llmkit stack around the simulated model, with
// in-process sinks for what an operator would scrape or collect.
type stack struct {
	model     *sim.Model // nil when a real provider answers
	modelName string
	client    llm.Client
	registry  *prometheus.Registry
	spans     *tracetest.SpanRecorder
	tracer    *sdktrace.TracerProvider
	logs      *syncBuffer
	health    *metrics.Health
	breaker   *resilience.Breaker
	store     *cache.Ristretto
}

// newSimStack builds the stack around the simulated model.
func newSimStack() (*stack, error) {
	model, err := sim.New(sim.Config{
		Seed: 1, TTFT: 40 * time.Millisecond, PerToken: time.Millisecond,
		MinTokens: 8, MaxTokens: 48, RetryAfter: 100 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	st, err := newStack(model, "sim", sim.DefaultModel)
	if err != nil {
		return nil, err
	}
	st.model = model
	return st, nil
}

// newStack builds the recommended stack around provider (named
// providerName in traces), whose default model is modelName.
func newStack(provider llm.Client, providerName, modelName string) (*stack, error) {
	st := &stack{modelName: modelName, logs: &syncBuffer{}}
	var err error

	// Observability, outermost: sees every call, hits and fallbacks too.
	st.registry = prometheus.NewRegistry()
	prom, err := metrics.Prometheus(st.registry,
		metrics.WithEndpoints(endpoints...), metrics.WithModels(st.modelName))
	if err != nil {
		return nil, err
	}
	st.spans = tracetest.NewSpanRecorder()
	st.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(st.spans))
	otel, err := metrics.OTel(metrics.WithTracerProvider(st.tracer), metrics.WithProviderName(providerName))
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewJSONHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	logs, err := metrics.Log(logger)
	if err != nil {
		return nil, err
	}
	if st.health, err = metrics.NewHealth(); err != nil {
		return nil, err
	}
	labels, err := profiling.Labels(profiling.Endpoints(endpoints...), profiling.Models(st.modelName))
	if err != nil {
		return nil, err
	}

	// The cache, outside resilience: a hit costs no limiter permit or
	// breaker probe, and nothing a fallback produced is stored.
	if st.store, err = cache.NewRistretto(cache.RistrettoConfig{MaxCost: 16 << 20}); err != nil {
		return nil, err
	}
	responses, err := cache.New(st.store, cache.WithTTL(2*time.Second), cache.WithGrace(time.Minute))
	if err != nil {
		return nil, err
	}

	// Resilience: a breaker that opens when half the calls of the last two
	// seconds failed, retries with backoff, timeouts, a bulkhead, and a
	// fallback to a stale cache entry, then to a static message.
	if st.breaker, err = resilience.NewBreaker(resilience.BreakerConfig{
		Name: "provider", FailureRate: 0.5, MinCalls: 20, Period: 2 * time.Second,
		Delay: 500 * time.Millisecond, Probes: 3,
	}); err != nil {
		return nil, err
	}
	res, err := resilience.New(resilience.Config{
		Fallback: &resilience.FallbackConfig{Stale: responses.Stale},
		Timeout:  resilience.TimeoutConfig{Total: 2 * time.Second, Attempt: 500 * time.Millisecond},
		Bulkhead: &resilience.BulkheadConfig{MaxConcurrent: 64, MaxWait: 200 * time.Millisecond},
		Retry:    &resilience.RetryConfig{MaxAttempts: 3, BaseDelay: 50 * time.Millisecond, MaxDelay: 400 * time.Millisecond},
		Breaker:  st.breaker,
		Budget:   &resilience.BudgetConfig{MaxRate: 0.5},
	})
	if err != nil {
		return nil, err
	}

	st.client = llm.Wrap(provider, otel, prom, logs, st.health.Middleware(), labels, responses.Middleware(), res)
	return st, nil
}

func (st *stack) close() {
	st.store.Close()
	_ = st.tracer.Shutdown(context.Background())
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
