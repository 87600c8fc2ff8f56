package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/metrics"
	"github.com/llmkit/llmkit/resilience"
)

func TestPrometheusConformance(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client {
		mw, err := metrics.Prometheus(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return mw(up)
	})
}

// A scripted sequence of calls and events gives exactly this exposition.
// synctest's fake clock makes the durations exact: the fake waits 1.5 s,
// 7 s and 0.3 s (stream: first chunk at 0.3 s, the rest 0.2 s apart).
func TestPrometheusExposition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		mw := must(metrics.Prometheus(reg, metrics.WithModels("gpt-a"), metrics.WithEndpoints("chat"), metrics.WithExemplars(false)))
		fake := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: 1500 * time.Millisecond, Response: &llm.Response{
				Usage: llm.Usage{InputTokens: 10, OutputTokens: 5, CachedInputTokens: 2},
				Quota: &llm.Quota{RemainingRequests: 99, RemainingTokens: 5000, LimitRequests: 100, LimitTokens: -1},
			}},
			{Latency: 7 * time.Second, Err: &llm.Error{Kind: llm.KindRateLimited, Status: 429,
				Quota: &llm.Quota{RemainingRequests: 0, RemainingTokens: -1, LimitRequests: 100, LimitTokens: -1}}},
			{Latency: 300 * time.Millisecond, Chunks: []string{"a", " b"}, ChunkDelay: 200 * time.Millisecond,
				Response: &llm.Response{Usage: llm.Usage{InputTokens: 3, OutputTokens: 2}}},
			{Response: &llm.Response{Usage: llm.Usage{InputTokens: 1, OutputTokens: 1}}},
		}}
		plain := mw(fake)
		ctx := context.Background()
		// Phase 1: no resilience layer, so each call counts as one attempt.
		if _, err := plain.Generate(ctx, &llm.Request{Model: "gpt-a", Endpoint: "chat", Messages: []llm.Message{llm.User("hi")}}); err != nil {
			t.Fatal(err)
		}
		if _, err := plain.Generate(ctx, &llm.Request{Model: "gpt-a", Endpoint: "chat"}); !errors.Is(err, llm.ErrRateLimited) {
			t.Fatalf("want the rate-limit error, got %v", err)
		}
		stream := &llm.Request{Model: "unlisted-model", Endpoint: "unlisted-endpoint", Stream: func(llm.Chunk) error { return nil }}
		if _, err := plain.Generate(ctx, stream); err != nil {
			t.Fatal(err)
		}
		// Phase 2: the decorators inside report attempts, a retry, cache,
		// breaker, fallback and limiter events.
		withEvents := mw(emitting(
			llm.Event{Kind: llm.EventCacheMiss, Source: "memory"},
			llm.Event{Kind: llm.EventAttempt, Attempt: 1, Err: llmtest.Error(llm.KindUnavailable)},
			llm.Event{Kind: llm.EventRetry, Attempt: 1, Delay: time.Second},
			llm.Event{Kind: llm.EventAttempt, Attempt: 2},
			llm.Event{Kind: llm.EventBreakerState, Source: "openai", State: llm.BreakerOpen},
			llm.Event{Kind: llm.EventFallback, Reason: "circuit_open", Source: "backup"},
			llm.Event{Kind: llm.EventFallback, Reason: "not a kind"},
			llm.Event{Kind: llm.EventRejected, Reason: "rate_limit"},
			llm.Event{Kind: llm.EventRejected, Reason: "bulkhead"},
			llm.Event{Kind: llm.EventCacheHit},
			llm.Event{Kind: llm.EventCacheStale},
			llm.Event{Kind: llm.EventCacheCoalesced},
			llm.Event{Kind: llm.EventCacheError},
		)(fake))
		if _, err := withEvents.Generate(ctx, &llm.Request{Model: "gpt-a", Endpoint: "chat"}); err != nil {
			t.Fatal(err)
		}

		want := `
# HELP llm_active_requests LLM calls in flight.
# TYPE llm_active_requests gauge
llm_active_requests 0
# HELP llm_cache_requests_total Cache lookups by result (hit, miss, stale, coalesced, error).
# TYPE llm_cache_requests_total counter
llm_cache_requests_total{result="coalesced"} 1
llm_cache_requests_total{result="error"} 1
llm_cache_requests_total{result="hit"} 1
llm_cache_requests_total{result="miss"} 1
llm_cache_requests_total{result="stale"} 1
# HELP llm_circuit_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open.
# TYPE llm_circuit_breaker_state gauge
llm_circuit_breaker_state{name="openai"} 2
# HELP llm_fallbacks_total Answers produced by a fallback, by the kind of error that triggered it.
# TYPE llm_fallbacks_total counter
llm_fallbacks_total{reason="circuit_open"} 1
llm_fallbacks_total{reason="unknown"} 1
# HELP llm_provider_calls_total Provider attempts (retries and hedges included) by outcome.
# TYPE llm_provider_calls_total counter
llm_provider_calls_total{status="ok"} 3
llm_provider_calls_total{status="rate_limited"} 1
llm_provider_calls_total{status="unavailable"} 1
# HELP llm_quota_remaining Remaining provider quota from its rate-limit headers, by kind (requests, tokens).
# TYPE llm_quota_remaining gauge
llm_quota_remaining{kind="requests"} 0
llm_quota_remaining{kind="tokens"} 5000
# HELP llm_rate_limited_total Calls refused by a client-side limiter, by reason (rate_limit, bulkhead, adaptive_limit, budget).
# TYPE llm_rate_limited_total counter
llm_rate_limited_total{reason="bulkhead"} 1
llm_rate_limited_total{reason="rate_limit"} 1
# HELP llm_request_duration_seconds Duration of LLM calls, retries and waits included.
# TYPE llm_request_duration_seconds histogram
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.1"} 1
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.5"} 1
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="1"} 1
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="2"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="5"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="10"} 3
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="20"} 3
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="30"} 3
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="60"} 3
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="120"} 3
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="+Inf"} 3
llm_request_duration_seconds_sum{endpoint="chat",model="gpt-a"} 8.5
llm_request_duration_seconds_count{endpoint="chat",model="gpt-a"} 3
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.1"} 0
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.5"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="1"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="2"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="5"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="10"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="20"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="30"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="60"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="120"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="+Inf"} 1
llm_request_duration_seconds_sum{endpoint="other",model="other"} 0.5
llm_request_duration_seconds_count{endpoint="other",model="other"} 1
# HELP llm_requests_total LLM calls by final outcome: status is ok or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="chat",model="gpt-a",status="ok"} 2
llm_requests_total{endpoint="chat",model="gpt-a",status="rate_limited"} 1
llm_requests_total{endpoint="other",model="other",status="ok"} 1
# HELP llm_retries_total Retries scheduled.
# TYPE llm_retries_total counter
llm_retries_total 1
# HELP llm_time_to_first_token_seconds Time from the start of a streamed call to its first chunk.
# TYPE llm_time_to_first_token_seconds histogram
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.05"} 0
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.1"} 0
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.25"} 0
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.5"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="1"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="2"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="5"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="10"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="30"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="+Inf"} 1
llm_time_to_first_token_seconds_sum{endpoint="other",model="other"} 0.3
llm_time_to_first_token_seconds_count{endpoint="other",model="other"} 1
# HELP llm_tokens_total Tokens reported by the provider, by type (input, output, cached_input).
# TYPE llm_tokens_total counter
llm_tokens_total{type="cached_input"} 2
llm_tokens_total{type="input"} 14
llm_tokens_total{type="output"} 8
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Fatal(err)
		}
		// Every exported family is one MetricNames lists.
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, n := range metrics.MetricNames("") {
			names[n] = true
		}
		if len(mfs) != len(names) {
			t.Errorf("exported %d families, MetricNames lists %d", len(mfs), len(names))
		}
		for _, mf := range mfs {
			if !names[mf.GetName()] {
				t.Errorf("family %s is not in MetricNames", mf.GetName())
			}
		}
	})
}

// Building the middleware twice on one registry reuses the collectors:
// both count into the same series.
func TestPrometheusIdempotentRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := must(metrics.Prometheus(reg))(&llmtest.Fake{})
	b := must(metrics.Prometheus(reg))(&llmtest.Fake{})
	for _, c := range []llm.Client{a, b} {
		if _, err := c.Generate(context.Background(), &llm.Request{Model: "m", Endpoint: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP llm_requests_total LLM calls by final outcome: status is ok or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="e",model="m",status="ok"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "llm_requests_total"); err != nil {
		t.Fatal(err)
	}
	// A second middleware asking for other histograms than the registered
	// collector exports is an error, not a silent mismatch; the same ones
	// (spelled with a trailing +Inf) are fine.
	if _, err := metrics.Prometheus(reg, metrics.WithDurationBuckets(1, 2, 3)); err == nil {
		t.Error("other duration buckets on a shared registry: want an error")
	}
	if _, err := metrics.Prometheus(reg, metrics.WithNativeHistograms(1.1)); err == nil {
		t.Error("native histograms on a registry whose collector has none: want an error")
	}
	if _, err := metrics.Prometheus(reg, metrics.WithDurationBuckets(append(slices.Clone(metrics.DefaultDurationBuckets), math.Inf(1))...)); err != nil {
		t.Errorf("the same buckets with a trailing +Inf: %v", err)
	}
	// A different collector under the same name is an error, not a panic.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "llm_active_requests", Help: "x"}))
	if _, err := metrics.Prometheus(reg2); err == nil {
		t.Fatal("want an error for a clashing collector")
	}
	// So is a collector of another type with exactly the same descriptors.
	var capture capturingRegisterer
	must(metrics.Prometheus(&capture))
	reg3 := prometheus.NewRegistry()
	reg3.MustRegister(otherCollector{capture.c})
	if _, err := metrics.Prometheus(reg3); err == nil {
		t.Fatal("want an error for a collector of another type with the same descriptors")
	}
}

// capturingRegisterer keeps the collector registered with it.
type capturingRegisterer struct{ c prometheus.Collector }

func (r *capturingRegisterer) Register(c prometheus.Collector) error { r.c = c; return nil }
func (r *capturingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.c = c
	}
}
func (r *capturingRegisterer) Unregister(prometheus.Collector) bool { return false }

// otherCollector is a collector of another type with the same descriptors.
type otherCollector struct{ prometheus.Collector }

func TestPrometheusOptionsValidated(t *testing.T) {
	reg := prometheus.NewRegistry()
	for name, opt := range map[string]metrics.PromOption{
		"namespace":      metrics.WithNamespace("bad-name"),
		"max endpoints":  metrics.WithMaxEndpoints(0),
		"max models":     metrics.WithMaxModels(0),
		"buckets order":  metrics.WithDurationBuckets(1, 0.5),
		"buckets empty":  metrics.WithTTFTBuckets(),
		"native factor":  metrics.WithNativeHistograms(1),
		"reserved model": metrics.WithModels("other"),
	} {
		if _, err := metrics.Prometheus(reg, opt); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if _, err := metrics.Prometheus(nil); err == nil {
		t.Error("nil Registerer: want an error")
	}
	if _, err := metrics.Prometheus(reg, nil, metrics.WithNamespace("svc")); err != nil {
		t.Errorf("a nil option must be ignored: %v", err)
	}
	want := []string{"svc_requests_total", "svc_quota_remaining"}
	got := strings.Join(metrics.MetricNames("svc"), " ")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("MetricNames(svc) = %s, missing %s", got, w)
		}
	}
}

// 100,000 calls with random models, endpoints, tenants and outcomes leave
// at most 50 series in every family.
func TestPrometheusCardinality(t *testing.T) {
	reg := prometheus.NewRegistry()
	mw := must(metrics.Prometheus(reg, metrics.WithModels("gpt-a", "gpt-b", "claude"), metrics.WithMaxEndpoints(5)))
	rng := rand.New(rand.NewPCG(1, 2))
	up := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		llm.Emit(ctx, llm.Event{Kind: llm.EventBreakerState, Source: req.Tenant})
		llm.Emit(ctx, llm.Event{Kind: llm.EventFallback, Reason: req.Tenant})
		llm.Emit(ctx, llm.Event{Kind: llm.EventRejected, Reason: req.Tenant})
		if rng.IntN(10) == 0 {
			return nil, llmtest.Error(llm.KindRateLimited)
		}
		return &llm.Response{Text: "ok", Model: req.Model, Usage: llm.Usage{InputTokens: 1, OutputTokens: 1}}, nil
	})
	c := mw(up)
	models := []string{"gpt-a", "gpt-b", "claude"}
	for i := range 100_000 {
		req := &llm.Request{
			Model:    fmt.Sprintf("model-%d", rng.IntN(1_000_000)),
			Endpoint: fmt.Sprintf("endpoint-%d", rng.IntN(1_000_000)),
			Tenant:   fmt.Sprintf("tenant-%d", rng.IntN(1_000_000)),
		}
		if i%3 == 0 {
			req.Model = models[(i/3)%len(models)]
		}
		if i%50 == 0 {
			req.Stream = func(llm.Chunk) error { return nil }
		}
		_, _ = c.Generate(context.Background(), req)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n := len(mf.Metric); n > 50 {
			t.Errorf("%s has %d series, want <= 50", mf.GetName(), n)
		}
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				// Breaker names come from Event.Source, bounded to the first
				// 16 seen; no other label may carry a tenant or a free-form model.
				if lp.GetName() != "name" && strings.Contains(lp.GetValue(), "tenant") || lp.GetName() == "model" && strings.HasPrefix(lp.GetValue(), "model-") {
					t.Errorf("%s: unbounded label value %s=%q", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	// The allow-listed models keep their own series.
	for _, m := range append(models, metrics.Other) {
		if !hasLabel(mfs, "llm_requests_total", "model", m) {
			t.Errorf("llm_requests_total has no series for model %q", m)
		}
	}
}

func hasLabel(mfs []*dto.MetricFamily, family, name, value string) bool {
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == name && lp.GetValue() == value {
					return true
				}
			}
		}
	}
	return false
}

// With an active span, the duration observation carries its trace id as an
// exemplar.
func TestPrometheusExemplar(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := must(metrics.Prometheus(reg))(&llmtest.Fake{})
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("t").Start(context.Background(), "parent")
	defer span.End()
	if _, err := c.Generate(ctx, &llm.Request{Model: "m"}); err != nil {
		t.Fatal(err)
	}
	mfs := must(reg.Gather())
	want := span.SpanContext().TraceID().String()
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "llm_request_duration_seconds" {
			continue
		}
		for _, b := range mf.Metric[0].GetHistogram().GetBucket() {
			if ex := b.GetExemplar(); ex != nil && ex.GetLabel()[0].GetValue() == want {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("no exemplar with the span's trace id")
	}
}

// Native histograms keep the classic buckets and add a schema; the TTFT
// histogram appears with the first stream; the request counter still
// carries exemplars.
func TestPrometheusNativeHistograms(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := must(metrics.Prometheus(reg, metrics.WithNativeHistograms(1.1)))(&llmtest.Fake{})
	if _, err := c.Generate(context.Background(), &llm.Request{}); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "llm_time_to_first_token_seconds"); err != nil || n != 0 {
		t.Fatalf("TTFT series before any stream: %d (%v), want 0", n, err)
	}
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{15: 9}, SpanID: trace.SpanID{7: 1}, TraceFlags: trace.FlagsSampled,
	}))
	if _, err := c.Generate(ctx, &llm.Request{Stream: func(llm.Chunk) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range must(reg.Gather()) {
		switch mf.GetName() {
		case "llm_request_duration_seconds", "llm_time_to_first_token_seconds":
			h := mf.Metric[0].GetHistogram()
			if h.Schema == nil || len(h.GetBucket()) == 0 {
				t.Fatalf("%s: want native and classic buckets, got %v", mf.GetName(), h)
			}
			if h.GetSampleCount() == 0 {
				t.Errorf("%s: no observation", mf.GetName())
			}
			seen[mf.GetName()] = true
		case "llm_requests_total":
			if ex := mf.Metric[0].GetCounter().GetExemplar(); ex == nil || ex.GetLabel()[0].GetValue() != (trace.TraceID{15: 9}).String() {
				t.Errorf("llm_requests_total: exemplar %v, want the span's trace id", ex)
			}
			seen[mf.GetName()] = true
		}
	}
	if len(seen) != 3 {
		t.Fatalf("families seen: %v", seen)
	}
}

// A traced call allocates one exemplar, kept by its duration bucket and its
// request counter both; a span sampled out makes none.
func TestPrometheusExemplarAllocs(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := must(metrics.Prometheus(reg, metrics.WithEvents(false)))(llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return okResp, nil }))
	req := &llm.Request{Model: "m", Endpoint: "e"}
	span := func(flags trace.TraceFlags) context.Context {
		return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{15: 3}, SpanID: trace.SpanID{7: 1}, TraceFlags: flags,
		}))
	}
	sampled, unsampled := span(trace.FlagsSampled), span(0)
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.Generate(sampled, req) }); n != 1 {
		t.Errorf("a sampled span: %v allocs per call, want 1 (the exemplar)", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.Generate(unsampled, req) }); n != 0 {
		t.Errorf("a span sampled out: %v allocs per call, want 0", n)
	}
	for _, mf := range must(reg.Gather()) {
		if mf.GetName() == "llm_requests_total" {
			if ex := mf.Metric[0].GetCounter().GetExemplar(); ex.GetValue() != 1 {
				t.Errorf("the request counter's exemplar has value %v, want 1", ex.GetValue())
			}
		}
	}
}

// Two stacks on one registry: one whose resilience layer reports attempts,
// one bare. The bare stack's calls still count as provider calls after the
// other has reported attempts.
func TestPrometheusAttemptsArePerChain(t *testing.T) {
	reg := prometheus.NewRegistry()
	mw := must(metrics.Prometheus(reg))
	rmw, err := resilience.New(resilience.Config{Retry: &resilience.RetryConfig{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	withAttempts := mw(rmw(benchLeaf{}))
	bare := mw(benchLeaf{})
	ctx := context.Background()
	req := &llm.Request{Model: "m", Endpoint: "e"}
	if _, err := withAttempts.Generate(ctx, req); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := bare.Generate(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	got := -1.0
	for _, mf := range must(reg.Gather()) {
		if mf.GetName() != "llm_provider_calls_total" {
			continue
		}
		for _, m := range mf.Metric {
			if m.GetLabel()[0].GetValue() == "ok" {
				got = m.GetCounter().GetValue()
			}
		}
	}
	if got != 6 {
		t.Fatalf("llm_provider_calls_total{status=ok} = %v, want 6 (1 reported attempt + 5 bare calls)", got)
	}
}

// The per-call path allocates nothing once its series exist, without events.
func TestPrometheusAllocs(t *testing.T) {
	reg := prometheus.NewRegistry()
	up := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return okResp, nil })
	noEvents := must(metrics.Prometheus(reg, metrics.WithEvents(false)))(up)
	req := &llm.Request{Model: "m", Endpoint: "e"}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = noEvents.Generate(ctx, req) }); n != 0 {
		t.Errorf("WithEvents(false): %v allocs per call, want 0", n)
	}
	withEvents := must(metrics.Prometheus(reg))(up)
	if n := testing.AllocsPerRun(1000, func() { _, _ = withEvents.Generate(ctx, req) }); n != 1 {
		t.Errorf("with events over a ClientFunc: %v allocs per call, want exactly 1 (llm.WithObserver)", n)
	}
	// Over a chain that accepts a subscription (an adapter, resilience
	// over one), the observer is subscribed once and a call allocates
	// nothing.
	subscribed := must(metrics.Prometheus(reg))(benchLeaf{})
	if n := testing.AllocsPerRun(1000, func() { _, _ = subscribed.Generate(ctx, req) }); n != 0 {
		t.Errorf("with events over a subscribing chain: %v allocs per call, want 0", n)
	}
}

// Over resilience, the middleware subscribes at construction: events are
// counted with nothing on the call's context, and two middlewares built
// separately on one registry around one shared client count each event
// once.
func TestPrometheusSubscribes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		leaf := &observedLeaf{Fake: llmtest.Fake{Steps: []llmtest.Step{
			{Err: &llm.Error{Kind: llm.KindUnavailable, Status: 503}},
			{Response: okResp},
			{Response: okResp},
		}}}
		shared := must(resilience.New(resilience.Config{Retry: &resilience.RetryConfig{MaxAttempts: 2, NoJitter: true}}))(leaf)
		a := must(metrics.Prometheus(reg, metrics.WithModels("m")))(shared)
		b := must(metrics.Prometheus(reg, metrics.WithModels("m")))(shared)
		for _, c := range []llm.Client{a, b} {
			if _, err := c.Generate(context.Background(), &llm.Request{Model: "m", Endpoint: "e"}); err != nil {
				t.Fatal(err)
			}
		}
		if leaf.sawObserver {
			t.Fatal("a call carried an observer on its context though the chain accepted the subscription")
		}
		want := `
# HELP llm_provider_calls_total Provider attempts (retries and hedges included) by outcome.
# TYPE llm_provider_calls_total counter
llm_provider_calls_total{status="ok"} 2
llm_provider_calls_total{status="unavailable"} 1
# HELP llm_requests_total LLM calls by final outcome: status is ok or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="e",model="m",status="ok"} 2
# HELP llm_retries_total Retries scheduled.
# TYPE llm_retries_total counter
llm_retries_total 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "llm_provider_calls_total", "llm_requests_total", "llm_retries_total"); err != nil {
			t.Fatal(err)
		}
	})
}

var okResp = &llm.Response{Text: "ok", Model: "m", Usage: llm.Usage{InputTokens: 3, OutputTokens: 2}}

// A panic in the wrapped client is a failure (status unknown), frees its
// slot in llm_active_requests, and goes on to the caller.
func TestPrometheusPanicCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	var inFlight float64
	up := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		inFlight = gatherValue(t, reg, "llm_active_requests")
		panic("boom")
	})
	c := must(metrics.Prometheus(reg, metrics.WithModels("m"), metrics.WithEndpoints("e")))(up)
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the upstream's panic", r)
			}
		}()
		_, _ = c.Generate(context.Background(), &llm.Request{Model: "m", Endpoint: "e"})
	}()
	if inFlight != 1 {
		t.Errorf("llm_active_requests during the call = %v, want 1", inFlight)
	}
	want := `
# HELP llm_active_requests LLM calls in flight.
# TYPE llm_active_requests gauge
llm_active_requests 0
# HELP llm_requests_total LLM calls by final outcome: status is ok or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="e",model="m",status="unknown"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "llm_active_requests", "llm_requests_total"); err != nil {
		t.Fatal(err)
	}
}

// gatherValue returns the value of the one series of an unlabelled gauge
// or counter.
func gatherValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	for _, mf := range must(g.Gather()) {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no family %s", name)
	return 0
}

// A traced call leaves the latest exemplar (trace_id, value, the time the
// call ended) on its duration bucket and on its request counter; an
// untraced call leaves the exemplars as they are.
func TestPrometheusExemplarExposition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		fake := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: 1500 * time.Millisecond},
			{Latency: 1700 * time.Millisecond},
			{Latency: 1600 * time.Millisecond},
			{Latency: 300 * time.Millisecond, Err: llmtest.Error(llm.KindTimeout)},
		}}
		c := must(metrics.Prometheus(reg, metrics.WithModels("m"), metrics.WithEndpoints("e")))(fake)
		req := &llm.Request{Model: "m", Endpoint: "e"}
		traced := func(id byte) context.Context {
			return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{15: id}, SpanID: trace.SpanID{7: 1}, TraceFlags: trace.FlagsSampled,
			}))
		}
		_, _ = c.Generate(traced(1), req)
		_, _ = c.Generate(traced(2), req) // same bucket (le=2): replaces trace 1
		end2 := time.Now()
		_, _ = c.Generate(context.Background(), req) // untraced: no change
		_, _ = c.Generate(traced(3), req)            // a timeout, in le=0.5
		end4 := time.Now()

		check := func(what string, ex *dto.Exemplar, value float64, id byte, at time.Time) {
			t.Helper()
			if ex == nil {
				t.Errorf("%s: no exemplar", what)
				return
			}
			wantID := trace.TraceID{15: id}.String()
			if len(ex.GetLabel()) != 1 || ex.GetLabel()[0].GetName() != "trace_id" || ex.GetLabel()[0].GetValue() != wantID {
				t.Errorf("%s: labels %v, want trace_id=%s", what, ex.GetLabel(), wantID)
			}
			if ex.GetValue() != value {
				t.Errorf("%s: value %v, want %v", what, ex.GetValue(), value)
			}
			if got := ex.GetTimestamp().AsTime(); !got.Equal(at) {
				t.Errorf("%s: timestamp %v, want %v", what, got, at)
			}
		}
		for _, mf := range must(reg.Gather()) {
			switch mf.GetName() {
			case "llm_request_duration_seconds":
				for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
					switch b.GetUpperBound() {
					case 0.5:
						check("bucket le=0.5", b.GetExemplar(), 0.3, 3, end4)
					case 2:
						check("bucket le=2", b.GetExemplar(), 1.7, 2, end2)
					default:
						if b.GetExemplar() != nil {
							t.Errorf("bucket le=%v has an exemplar", b.GetUpperBound())
						}
					}
				}
			case "llm_requests_total":
				for _, m := range mf.GetMetric() {
					switch status := m.GetLabel()[2].GetValue(); status {
					case "ok":
						check("status ok", m.GetCounter().GetExemplar(), 1, 2, end2)
					case "timeout":
						check("status timeout", m.GetCounter().GetExemplar(), 1, 3, end4)
					default:
						t.Errorf("unexpected status %q", status)
					}
				}
			}
		}

		// WithExemplars(false): none at all.
		reg2 := prometheus.NewRegistry()
		c2 := must(metrics.Prometheus(reg2, metrics.WithExemplars(false)))(&llmtest.Fake{})
		_, _ = c2.Generate(traced(4), req)
		for _, mf := range must(reg2.Gather()) {
			for _, m := range mf.GetMetric() {
				if m.GetCounter().GetExemplar() != nil {
					t.Errorf("%s: exemplar with WithExemplars(false)", mf.GetName())
				}
				for _, b := range m.GetHistogram().GetBucket() {
					if b.GetExemplar() != nil {
						t.Errorf("%s: exemplar with WithExemplars(false)", mf.GetName())
					}
				}
			}
		}
	})
}

// A duration exactly on a bucket bound counts in that bucket (le), as in
// any Prometheus histogram; a trailing +Inf bound is the implicit one.
func TestPrometheusBucketBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		latencies := []time.Duration{0, 300 * time.Millisecond, 300*time.Millisecond + 1, time.Second, 3 * time.Second}
		var steps []llmtest.Step
		for _, l := range latencies {
			steps = append(steps, llmtest.Step{Latency: l})
		}
		c := must(metrics.Prometheus(reg, metrics.WithDurationBuckets(0.3, 1, math.Inf(1)), metrics.WithModels("m"), metrics.WithEndpoints("e")))(&llmtest.Fake{Steps: steps})
		for range latencies {
			_, _ = c.Generate(context.Background(), &llm.Request{Model: "m", Endpoint: "e"})
		}
		want := `
# HELP llm_request_duration_seconds Duration of LLM calls, retries and waits included.
# TYPE llm_request_duration_seconds histogram
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="0.3"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="1"} 4
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="+Inf"} 5
llm_request_duration_seconds_sum{endpoint="e",model="m"} 4.6
llm_request_duration_seconds_count{endpoint="e",model="m"} 5
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "llm_request_duration_seconds"); err != nil {
			t.Fatal(err)
		}
	})
}

// Two middlewares on one registry share every series; another namespace
// on the same registry is a separate set of families.
func TestPrometheusSharedSeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		fake := &llmtest.Fake{Default: llmtest.Step{Latency: time.Second, Response: &llm.Response{Usage: llm.Usage{InputTokens: 2, OutputTokens: 1}}}}
		a := must(metrics.Prometheus(reg, metrics.WithExemplars(false)))(fake)
		b := must(metrics.Prometheus(reg, metrics.WithModels("m")))(emitting(llm.Event{Kind: llm.EventCacheMiss}, llm.Event{Kind: llm.EventAttempt})(fake))
		other := must(metrics.Prometheus(reg, metrics.WithNamespace("svc")))(fake)
		for _, c := range []llm.Client{a, b, other} {
			if _, err := c.Generate(context.Background(), &llm.Request{Model: "m", Endpoint: "e"}); err != nil {
				t.Fatal(err)
			}
		}
		want := `
# HELP llm_active_requests LLM calls in flight.
# TYPE llm_active_requests gauge
llm_active_requests 0
# HELP llm_cache_requests_total Cache lookups by result (hit, miss, stale, coalesced, error).
# TYPE llm_cache_requests_total counter
llm_cache_requests_total{result="coalesced"} 0
llm_cache_requests_total{result="error"} 0
llm_cache_requests_total{result="hit"} 0
llm_cache_requests_total{result="miss"} 1
llm_cache_requests_total{result="stale"} 0
# HELP llm_provider_calls_total Provider attempts (retries and hedges included) by outcome.
# TYPE llm_provider_calls_total counter
llm_provider_calls_total{status="ok"} 2
# HELP llm_request_duration_seconds Duration of LLM calls, retries and waits included.
# TYPE llm_request_duration_seconds histogram
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="0.1"} 0
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="0.5"} 0
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="1"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="2"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="5"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="10"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="20"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="30"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="60"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="120"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="+Inf"} 2
llm_request_duration_seconds_sum{endpoint="e",model="m"} 2
llm_request_duration_seconds_count{endpoint="e",model="m"} 2
# HELP llm_requests_total LLM calls by final outcome: status is ok or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="e",model="m",status="ok"} 2
# HELP llm_tokens_total Tokens reported by the provider, by type (input, output, cached_input).
# TYPE llm_tokens_total counter
llm_tokens_total{type="cached_input"} 0
llm_tokens_total{type="input"} 4
llm_tokens_total{type="output"} 2
# HELP svc_requests_total LLM calls by final outcome: status is ok or the error kind.
# TYPE svc_requests_total counter
svc_requests_total{endpoint="e",model="m",status="ok"} 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "llm_active_requests", "llm_cache_requests_total",
			"llm_provider_calls_total", "llm_request_duration_seconds", "llm_requests_total", "llm_tokens_total", "svc_requests_total"); err != nil {
			t.Fatal(err)
		}
	})
}

// Calls from many goroutines while the registry is scraped: every call is
// counted exactly once (run with -race).
func TestPrometheusConcurrent(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	up := llm.ClientFunc(func(_ context.Context, req *llm.Request) (*llm.Response, error) {
		if req.Tenant == "fail" {
			return nil, llmtest.Error(llm.KindUnavailable)
		}
		if req.Stream != nil {
			if err := req.Stream(llm.Chunk{Text: "x"}); err != nil {
				return nil, err
			}
		}
		return &llm.Response{Text: "x", Usage: llm.Usage{InputTokens: 3, OutputTokens: 2, CachedInputTokens: 1}}, nil
	})
	c := must(metrics.Prometheus(reg, metrics.WithModels("a", "b")))(up)
	const workers, calls = 8, 500
	done := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-done:
				return
			default:
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				req := &llm.Request{Model: []string{"a", "b"}[i%2], Endpoint: "e"}
				if i%5 == 0 {
					req.Tenant = "fail"
				}
				if w%2 == 0 && i%3 == 0 {
					req.Stream = func(llm.Chunk) error { return nil }
				}
				_, _ = c.Generate(context.Background(), req)
			}
		})
	}
	wg.Wait()
	close(done)
	<-scraped

	const total = workers * calls
	const failed = total / 5
	const ok = total - failed
	wantRequests := map[string]float64{"ok": ok, "unavailable": failed}
	gotRequests := map[string]float64{}
	var histCount uint64
	for _, mf := range must(reg.Gather()) {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "llm_requests_total":
				gotRequests[m.GetLabel()[2].GetValue()] += m.GetCounter().GetValue()
			case "llm_request_duration_seconds":
				histCount += m.GetHistogram().GetSampleCount()
				bs := m.GetHistogram().GetBucket()
				if last := bs[len(bs)-1].GetCumulativeCount(); last > m.GetHistogram().GetSampleCount() {
					t.Errorf("bucket count %d above the sample count %d", last, m.GetHistogram().GetSampleCount())
				}
			case "llm_active_requests":
				if v := m.GetGauge().GetValue(); v != 0 {
					t.Errorf("llm_active_requests = %v after every call returned", v)
				}
			case "llm_tokens_total":
				want := map[string]float64{"input": 3 * ok, "output": 2 * ok, "cached_input": ok}[m.GetLabel()[0].GetValue()]
				if v := m.GetCounter().GetValue(); v != want {
					t.Errorf("llm_tokens_total{type=%q} = %v, want %v", m.GetLabel()[0].GetValue(), v, want)
				}
			case "llm_provider_calls_total":
				if v, want := m.GetCounter().GetValue(), wantRequests[m.GetLabel()[0].GetValue()]; v != want {
					t.Errorf("llm_provider_calls_total{status=%q} = %v, want %v", m.GetLabel()[0].GetValue(), v, want)
				}
			}
		}
	}
	if fmt.Sprint(gotRequests) != fmt.Sprint(wantRequests) {
		t.Errorf("llm_requests_total = %v, want %v", gotRequests, wantRequests)
	}
	if histCount != total {
		t.Errorf("duration histograms count %d calls, want %d", histCount, total)
	}
}

// A middleware that subscribed to a shared client and a second one on the
// same registry that reaches it through an opaque ClientFunc (so it
// registers on the context) count each event of a call through the second
// once, not twice.
func TestPrometheusSubscribedAndOnContextCountsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		leaf := &llmtest.Fake{Steps: []llmtest.Step{{Err: &llm.Error{Kind: llm.KindUnavailable, Status: 503}}, {Response: okResp}}}
		shared := must(resilience.New(resilience.Config{Retry: &resilience.RetryConfig{MaxAttempts: 2, NoJitter: true}}))(leaf)
		_ = must(metrics.Prometheus(reg))(shared) // subscribes to shared
		opaque := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			return shared.Generate(ctx, req)
		})
		b := must(metrics.Prometheus(reg))(opaque) // refused: on the context
		if _, err := b.Generate(context.Background(), &llm.Request{Model: "m", Endpoint: "e"}); err != nil {
			t.Fatal(err)
		}
		want := `
# HELP llm_provider_calls_total Provider attempts (retries and hedges included) by outcome.
# TYPE llm_provider_calls_total counter
llm_provider_calls_total{status="ok"} 1
llm_provider_calls_total{status="unavailable"} 1
# HELP llm_retries_total Retries scheduled.
# TYPE llm_retries_total counter
llm_retries_total 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "llm_provider_calls_total", "llm_retries_total"); err != nil {
			t.Fatal(err)
		}
	})
}
