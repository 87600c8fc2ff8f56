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
	"github.com/llmkit/llmkit/profiling"
	"github.com/llmkit/llmkit/provider/sim"
	"github.com/llmkit/llmkit/resilience"
	"github.com/llmkit/llmkit/stack"
)

// endpoints are the features of the pretend service that make calls.
var endpoints = []string{"chat", "summarize", "search"}

// demoStack is the recommended llmkit stack (package stack) with
// in-process sinks for what an operator would scrape or collect.
type demoStack struct {
	models    map[string]*sim.Model // by deployment; nil when a real provider answers
	routes    *routeWatch           // what the router did; nil without one
	modelName string
	registry  *prometheus.Registry
	spans     *tracetest.SpanRecorder
	tracer    *sdktrace.TracerProvider
	logs      *syncBuffer
	breaker   breakerWatch
	store     *cache.Ristretto
	built     *stack.Stack
	capturer  *profiling.Capturer
	captures  captureLog
	slow      time.Duration
}

// captureLog keeps what the slow-call capturer saved, in memory.
type captureLog struct {
	mu    sync.Mutex
	names []string
	bytes int
}

func (c *captureLog) Save(cp profiling.Capture) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names = append(c.names, cp.FileName())
	c.bytes += len(cp.Data)
	return nil
}

// newSimStack builds the stack around a router over simulated
// deployments of one model: the router takes the provider's place.
func newSimStack(o options) (*demoStack, error) {
	watch := &routeWatch{}
	r, models, err := simDeployments(watch)
	if err != nil {
		return nil, err
	}
	st, err := newStack(r, "sim", sim.DefaultModel, o)
	if err != nil {
		return nil, err
	}
	st.models, st.routes = models, watch
	return st, nil
}

// newStack builds the recommended stack around provider (named
// providerName in traces), whose default model is modelName, tuned to
// show a whole outage and recovery within seconds.
func newStack(provider llm.Client, providerName, modelName string, o options) (*demoStack, error) {
	st := &demoStack{modelName: modelName, logs: &syncBuffer{}, registry: prometheus.NewRegistry(), slow: o.slow}
	st.spans = tracetest.NewSpanRecorder()
	st.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(st.spans))
	var err error
	if st.store, err = cache.NewRistretto(cache.RistrettoConfig{MaxCost: 16 << 20}); err != nil {
		return nil, err
	}
	// Calls slower than o.slow save a runtime/trace flight-recorder
	// snapshot of the moments before, at most one every o.captureEvery.
	if o.slow > 0 {
		if st.capturer, err = profiling.NewCapturer(&st.captures, profiling.Threshold(o.slow),
			profiling.Interval(o.captureEvery), profiling.Endpoints(endpoints...), profiling.Models(modelName)); err != nil {
			st.close()
			return nil, err
		}
	}
	// A breaker that opens when half the calls of the last two seconds
	// failed, retries with short backoffs, timeouts, a bulkhead, and a
	// fallback to a stale cache entry, then to a static message.
	st.built, err = stack.New(provider, stack.Config{
		ProviderName: providerName, Observer: &st.breaker,
		Models: []string{modelName}, Endpoints: endpoints,
		Registry: st.registry, TracerProvider: st.tracer,
		Logger: slog.New(slog.NewJSONHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Store:  st.store, CacheTTL: 2 * time.Second, CacheGrace: time.Minute,
		Capturer: st.capturer,
		Resilience: &resilience.Config{
			Fallback: &resilience.FallbackConfig{},
			Timeout:  resilience.TimeoutConfig{Total: 2 * time.Second, Attempt: 500 * time.Millisecond},
			Bulkhead: &resilience.BulkheadConfig{MaxConcurrent: 64, MaxWait: 200 * time.Millisecond},
			Retry:    &resilience.RetryConfig{MaxAttempts: 3, BaseDelay: 50 * time.Millisecond, MaxDelay: 400 * time.Millisecond},
			Breaker: &resilience.BreakerConfig{
				Name: "provider", FailureRate: 0.5, MinCalls: 20, Period: 2 * time.Second,
				Delay: 500 * time.Millisecond, Probes: 3,
			},
		},
	})
	if err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

func (st *demoStack) close() {
	if st.capturer != nil {
		_ = st.capturer.Close()
	}
	st.store.Close()
	_ = st.tracer.Shutdown(context.Background())
}

// breakerWatch keeps the last state the stack's breaker reported.
type breakerWatch struct {
	mu    sync.Mutex
	name  string
	state llm.BreakerState
}

func (b *breakerWatch) Observe(_ context.Context, ev llm.Event) {
	if ev.Kind == llm.EventBreakerState {
		b.mu.Lock()
		b.name, b.state = ev.Source, ev.State
		b.mu.Unlock()
	}
}

func (b *breakerWatch) last() (string, llm.BreakerState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.name == "" {
		return "provider", llm.BreakerClosed
	}
	return b.name, b.state
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
