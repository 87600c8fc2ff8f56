package stack_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/metrics"
	"github.com/llmkit/llmkit/resilience"
	"github.com/llmkit/llmkit/stack"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quick is the default resilience config with short backoffs, and without
// the static fallback message (which would answer every failure, so the
// suite could not see error kinds come back).
func quick() *resilience.Config {
	rc := resilience.DefaultConfig()
	rc.Retry = &resilience.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond}
	rc.Fallback = &resilience.FallbackConfig{NoStatic: true}
	return &rc
}

func newStack(t *testing.T, provider llm.Client, cfg stack.Config) *stack.Stack {
	t.Helper()
	if cfg.Registry == nil && cfg.Prometheus == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := stack.New(provider, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// The default stack keeps the Client contract, retrying what is retryable;
// so does a third-party decorator inside it.
func TestConformance(t *testing.T) {
	for name, mws := range map[string][]llm.Middleware{"default": nil, "with CostBudget": {CostBudget(1 << 30)}} {
		t.Run(name, func(t *testing.T) {
			llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client {
				return newStack(t, up, stack.Config{Resilience: quick(), Middlewares: mws})
			}, llmtest.Retrying())
		})
	}
}

// The example decorator alone keeps the contract too.
func TestCostBudgetConformance(t *testing.T) {
	llmtest.Run(t, func(_ *testing.T, up llm.Client) llm.Client { return CostBudget(1 << 30)(up) })
}

// An error whose text holds a secret (an http.Do to a URL with ?key=…)
// leaves the stack redacted, and the log line holds no secret either.
func TestErrorsLeaveRedacted(t *testing.T) {
	const secret = "SECRET-0123456789"
	provider := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return nil, &url.Error{Op: "Post", URL: "https://llm.example/v1?key=" + secret, Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	})
	var logs bytes.Buffer
	st := newStack(t, provider, stack.Config{Resilience: quick(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	_, err := st.Generate(context.Background(), llm.Prompt("hi"))
	if err == nil || llm.KindOf(err) != llm.KindUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), secret) {
			t.Fatalf("the secret is in the returned error chain: %q", e)
		}
	}
	if strings.Contains(logs.String(), secret) || !strings.Contains(logs.String(), "llm call") {
		t.Fatalf("log: %s", logs.String())
	}
}

// New wires the Prometheus metrics into the cache and resilience: their
// retries, attempts, cache results and breaker state are counted, once.
func TestObserversWired(t *testing.T) {
	reg := prometheus.NewRegistry()
	provider := &llmtest.Fake{Steps: []llmtest.Step{{Err: llmtest.Error(llm.KindUnavailable)}}, Default: llmtest.Step{Text: "ok"}}
	store, err := cache.NewRistretto(cache.RistrettoConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	st := newStack(t, provider, stack.Config{Registry: reg, Resilience: quick(), Store: store})
	req := &llm.Request{Messages: []llm.Message{llm.User("hi")}, Temperature: llm.Ptr(0.0)}
	for range 2 {
		if _, err := st.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		store.Wait() // ristretto applies sets asynchronously
	}
	for metric, want := range map[string]float64{
		"llm_retries_total":        1,
		"llm_provider_calls_total": 2,
		"llm_cache_requests_total": 2, // a miss, then a hit
		"llm_requests_total":       2,
	} {
		if got := sum(t, reg, metric); got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}
	if got := hits(t, reg); got != 1 {
		t.Errorf("cache hits = %v, want 1", got)
	}
	if ready, _, reasons := st.Health.Status(); !ready {
		t.Errorf("not ready: %v", reasons)
	}
}

// A Prometheus built by the caller serves the stack and what the caller
// built before it: here a decorator of its own that reports a limiter's
// decision to it.
func TestOwnPrometheus(t *testing.T) {
	reg := prometheus.NewRegistry()
	prom := mustProm(t, reg, metrics.WithLimiters("keys"))
	decide := func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			llm.EmitTo(ctx, prom, llm.Event{Kind: llm.EventLimit, Source: "keys", Reason: "allowed"})
			return next.Generate(ctx, req)
		})
	}
	st := newStack(t, &llmtest.Fake{}, stack.Config{Prometheus: prom, Middlewares: []llm.Middleware{decide}})
	if _, err := st.Generate(context.Background(), &llm.Request{Messages: []llm.Message{llm.User("hi")}}); err != nil {
		t.Fatal(err)
	}
	for metric, want := range map[string]float64{"llm_requests_total": 1, "llm_limiter_decisions_total": 1} {
		if got := sum(t, reg, metric); got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}
}

func mustProm(t *testing.T, reg prometheus.Registerer, opts ...metrics.Option) *metrics.Prometheus {
	t.Helper()
	p, err := metrics.NewPrometheus(reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrors(t *testing.T) {
	fake := &llmtest.Fake{}
	for name, c := range map[string]struct {
		provider llm.Client
		cfg      stack.Config
	}{
		"nil provider":   {nil, stack.Config{Registry: prometheus.NewRegistry()}},
		"nil registry":   {fake, stack.Config{}},
		"bad resilience": {fake, stack.Config{Registry: prometheus.NewRegistry(), Resilience: &resilience.Config{Retry: &resilience.RetryConfig{MaxAttempts: -1}}}},
		"bad cache ttl":  {fake, stack.Config{Registry: prometheus.NewRegistry(), CacheTTL: -time.Second}},
		"two prometheus": {fake, stack.Config{Registry: prometheus.NewRegistry(), Prometheus: mustProm(t, prometheus.NewRegistry())}},
	} {
		if st, err := stack.New(c.provider, c.cfg); err == nil {
			_ = st.Close()
			t.Errorf("%s: New accepted", name)
		}
	}
}

func sum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

func hits(t *testing.T, g prometheus.Gatherer) float64 {
	t.Helper()
	n, err := testutil.GatherAndCount(g, "llm_cache_requests_total")
	if err != nil || n == 0 {
		t.Fatalf("llm_cache_requests_total: %d series, %v", n, err)
	}
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "llm_cache_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "hit" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
