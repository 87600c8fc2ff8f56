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
	"go.opentelemetry.io/otel/trace"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/metrics"
)

func TestPrometheusConformance(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client {
		return must(metrics.NewPrometheus(prometheus.NewRegistry())).Middleware()(up)
	})
}

// counted gathers g without the counters and histograms still at 0, so
// that an exposition lists what the calls did. Gauges stay: 0 is a state.
func counted(g prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		out := mfs[:0]
		for _, mf := range mfs {
			mf.Metric = slices.DeleteFunc(mf.Metric, func(m *dto.Metric) bool {
				return m.Counter != nil && m.GetCounter().GetValue() == 0 || m.Histogram != nil && m.GetHistogram().GetSampleCount() == 0
			})
			if len(mf.Metric) > 0 {
				out = append(out, mf)
			}
		}
		return out, err
	})
}

// A scripted sequence of calls and events gives exactly this exposition.
// synctest's fake clock makes the durations exact: the fake waits 1.5 s,
// 7 s and 0.3 s (stream: first chunk at 0.3 s, the second 0.2 s later).
func TestPrometheusExposition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		p := must(metrics.NewPrometheus(reg, metrics.WithModels("gpt-a"), metrics.WithEndpoints("chat"), metrics.WithExemplars(false)))
		fake := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: 1500 * time.Millisecond, Response: &llm.Response{
				Usage: llm.Usage{InputTokens: 10, OutputTokens: 5, CachedInputTokens: 2},
				Quota: &llm.Quota{RemainingRequests: 99, RemainingTokens: 5000, LimitRequests: 100, LimitTokens: -1},
			}},
			{Latency: 7 * time.Second, Err: &llm.Error{Kind: llm.KindRateLimited, Status: 429,
				Quota: &llm.Quota{RemainingRequests: 0, RemainingTokens: -1, LimitRequests: 100, LimitTokens: -1}}},
			{Latency: 300 * time.Millisecond, Chunks: []string{"a", " b"}, ChunkDelay: 200 * time.Millisecond,
				Response: &llm.Response{Usage: llm.Usage{InputTokens: 3, OutputTokens: 2}}},
			{Response: &llm.Response{Degraded: true, DegradedReason: llm.KindTimeout, Usage: llm.Usage{InputTokens: 1, OutputTokens: 1}}},
			{Response: &llm.Response{Usage: llm.Usage{InputTokens: 1, OutputTokens: 1}}},
		}}
		chat := &llm.Request{Model: "gpt-a", Endpoint: "chat"}
		ctx := context.Background()
		// Phase 1: nothing inside reports attempts, so each call counts as one.
		plain := p.Middleware()(fake)
		if _, err := plain.Generate(ctx, chat); err != nil {
			t.Fatal(err)
		}
		if _, err := plain.Generate(ctx, chat); !errors.Is(err, llm.ErrRateLimited) {
			t.Fatalf("want the rate-limit error, got %v", err)
		}
		stream := &llm.Request{Model: "unlisted-model", Endpoint: "unlisted-endpoint", Stream: func(llm.Chunk) error { return nil }}
		if _, err := plain.Generate(ctx, stream); err != nil {
			t.Fatal(err)
		}
		if resp, err := plain.Generate(ctx, chat); err != nil || !resp.Degraded {
			t.Fatalf("want a degraded answer, got %v, %v", resp, err)
		}
		// Phase 2: a decorator given p reports attempts, a retry, cache,
		// breaker, fallback and limiter events.
		withEvents := p.Middleware()(reporting(p,
			llm.Event{Kind: llm.EventCacheMiss, Source: "memory"},
			llm.Event{Kind: llm.EventAttempt, Attempt: 1, Err: llmtest.Error(llm.KindUnavailable)},
			llm.Event{Kind: llm.EventRetry, Attempt: 1, Delay: time.Second},
			llm.Event{Kind: llm.EventAttempt, Attempt: 2},
			llm.Event{Kind: llm.EventBreakerState, Source: "openai", State: llm.BreakerOpen},
			llm.Event{Kind: llm.EventFallback, Reason: "circuit_open", Source: "backup"},
			llm.Event{Kind: llm.EventFallback, Reason: "not a kind"},
			llm.Event{Kind: llm.EventRejected, Reason: "rate_limit"},
			llm.Event{Kind: llm.EventRejected, Reason: "bulkhead"},
			llm.Event{Kind: llm.EventRejected, Reason: "something new"},
			llm.Event{Kind: llm.EventCacheHit},
			llm.Event{Kind: llm.EventCacheStale},
			llm.Event{Kind: llm.EventCacheCoalesced},
			llm.Event{Kind: llm.EventCacheError},
			llm.Event{Kind: llm.EventCacheMiss, Reason: "bypass"}, // the older reason: other
			llm.Event{Kind: llm.EventCacheMiss, Reason: "nondeterministic"},
			llm.Event{Kind: llm.EventCacheMiss, Reason: "nondeterministic"},
			llm.Event{Kind: llm.EventCacheMiss, Reason: "no_key"},
			llm.Event{Kind: llm.EventCacheStore},
			llm.Event{Kind: llm.EventRoute, Source: "east", Reason: "ok", Duration: time.Second},
			llm.Event{Kind: llm.EventRoute, Source: "east", Reason: "overloaded"},
			llm.Event{Kind: llm.EventRoute, Source: "west", Reason: "not a kind"},
			llm.Event{Kind: llm.EventCooldown, Source: "east", Delay: 30 * time.Second, Reason: "overloaded"},
			llm.Event{Kind: llm.EventCooldown, Source: "west", Delay: 30 * time.Second, Reason: "shared"},
			llm.Event{Kind: llm.EventCooldown, Source: "west", Delay: 0},
			llm.Event{Kind: llm.EventLimit, Source: "tpm", Reason: "allowed", Tokens: 500},
			llm.Event{Kind: llm.EventLimitSettle, Source: "tpm", Tokens: 120},
			llm.Event{Kind: llm.EventLimit, Source: "tpm", Reason: "rejected"},
			llm.Event{Kind: llm.EventLimit, Source: "tpm", Reason: "fail_open", Tokens: 40},
			llm.Event{Kind: llm.EventLimit, Source: "rpm", Reason: "something new"},
		)(fake))
		if _, err := withEvents.Generate(ctx, chat); err != nil {
			t.Fatal(err)
		}

		want := `
# HELP llm_active_requests LLM calls in flight.
# TYPE llm_active_requests gauge
llm_active_requests 0
# HELP llm_cache_bypass_total Requests the cache did not look up, by reason (nondeterministic, opted_out, skip_read, no_key, other).
# TYPE llm_cache_bypass_total counter
llm_cache_bypass_total{reason="no_key"} 1
llm_cache_bypass_total{reason="nondeterministic"} 2
llm_cache_bypass_total{reason="other"} 1
# HELP llm_cache_requests_total Requests through the cache by result (hit, miss, stale, coalesced, bypass, error).
# TYPE llm_cache_requests_total counter
llm_cache_requests_total{result="bypass"} 4
llm_cache_requests_total{result="coalesced"} 1
llm_cache_requests_total{result="error"} 1
llm_cache_requests_total{result="hit"} 1
llm_cache_requests_total{result="miss"} 1
llm_cache_requests_total{result="stale"} 1
# HELP llm_circuit_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open.
# TYPE llm_circuit_breaker_state gauge
llm_circuit_breaker_state{name="openai"} 2
# HELP llm_limiter_decisions_total Shared limiter decisions: allowed, rejected, or the degraded mode (fail_open, fail_closed, local_share) that decided when its store failed.
# TYPE llm_limiter_decisions_total counter
llm_limiter_decisions_total{limiter="rpm",result="other"} 1
llm_limiter_decisions_total{limiter="tpm",result="allowed"} 1
llm_limiter_decisions_total{limiter="tpm",result="fail_open"} 1
llm_limiter_decisions_total{limiter="tpm",result="rejected"} 1
# HELP llm_limiter_tokens_total Tokens a shared limiter reserved for admitted calls and the tokens they used.
# TYPE llm_limiter_tokens_total counter
llm_limiter_tokens_total{limiter="tpm",type="reserved"} 540
llm_limiter_tokens_total{limiter="tpm",type="used"} 120
# HELP llm_fallbacks_total Answers produced by a fallback, by the kind of error that triggered it.
# TYPE llm_fallbacks_total counter
llm_fallbacks_total{reason="circuit_open"} 1
llm_fallbacks_total{reason="unknown"} 1
# HELP llm_provider_calls_total Provider attempts (retries and hedges included) by outcome.
# TYPE llm_provider_calls_total counter
llm_provider_calls_total{status="ok"} 4
llm_provider_calls_total{status="rate_limited"} 1
llm_provider_calls_total{status="unavailable"} 1
# HELP llm_quota_remaining Remaining provider quota from its rate-limit headers, by kind (requests, tokens); gone at its reset.
# TYPE llm_quota_remaining gauge
llm_quota_remaining{kind="requests"} 0
llm_quota_remaining{kind="tokens"} 5000
# HELP llm_quota_updated_timestamp_seconds Unix time of the last report of llm_quota_remaining, by kind; gone with it.
# TYPE llm_quota_updated_timestamp_seconds gauge
llm_quota_updated_timestamp_seconds{kind="requests"} 946684808.5
llm_quota_updated_timestamp_seconds{kind="tokens"} 946684801.5
# HELP llm_rate_limited_total Calls refused by a client-side limiter, by reason (rate_limit, bulkhead, adaptive_limit, budget).
# TYPE llm_rate_limited_total counter
llm_rate_limited_total{reason="bulkhead"} 1
llm_rate_limited_total{reason="other"} 1
llm_rate_limited_total{reason="rate_limit"} 1
# HELP llm_request_duration_seconds Duration of LLM calls, retries and waits included.
# TYPE llm_request_duration_seconds histogram
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.05"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.1"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.15"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.2"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.3"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.4"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.5"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="0.75"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="1"} 2
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="1.5"} 3
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="2"} 3
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="3"} 3
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="5"} 3
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="10"} 4
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="20"} 4
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="30"} 4
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="60"} 4
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="120"} 4
llm_request_duration_seconds_bucket{endpoint="chat",model="gpt-a",le="+Inf"} 4
llm_request_duration_seconds_sum{endpoint="chat",model="gpt-a"} 8.5
llm_request_duration_seconds_count{endpoint="chat",model="gpt-a"} 4
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.05"} 0
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.1"} 0
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.15"} 0
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.2"} 0
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.3"} 0
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.4"} 0
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.5"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="0.75"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="1"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="1.5"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="2"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="3"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="5"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="10"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="20"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="30"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="60"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="120"} 1
llm_request_duration_seconds_bucket{endpoint="other",model="other",le="+Inf"} 1
llm_request_duration_seconds_sum{endpoint="other",model="other"} 0.5
llm_request_duration_seconds_count{endpoint="other",model="other"} 1
# HELP llm_requests_total LLM calls by final outcome: status is ok, degraded or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="chat",model="gpt-a",status="degraded"} 1
llm_requests_total{endpoint="chat",model="gpt-a",status="ok"} 2
llm_requests_total{endpoint="chat",model="gpt-a",status="rate_limited"} 1
llm_requests_total{endpoint="other",model="other",status="ok"} 1
# HELP llm_retries_total Retries scheduled.
# TYPE llm_retries_total counter
llm_retries_total 1
# HELP llm_router_deployment_cooling 1 while a router deployment cools down after failures, 0 otherwise.
# TYPE llm_router_deployment_cooling gauge
llm_router_deployment_cooling{deployment="east"} 1
llm_router_deployment_cooling{deployment="west"} 0
# HELP llm_router_requests_total Router attempts by deployment and outcome (ok or the error kind).
# TYPE llm_router_requests_total counter
llm_router_requests_total{deployment="east",outcome="ok"} 1
llm_router_requests_total{deployment="east",outcome="overloaded"} 1
llm_router_requests_total{deployment="west",outcome="unknown"} 1
# HELP llm_time_to_first_token_seconds Time from the start of a streamed call to its first chunk.
# TYPE llm_time_to_first_token_seconds histogram
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.05"} 0
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.1"} 0
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.15"} 0
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.2"} 0
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.3"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.4"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.5"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="0.75"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="1"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="1.5"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="2"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="3"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="5"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="10"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="20"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="30"} 1
llm_time_to_first_token_seconds_bucket{endpoint="other",model="other",le="+Inf"} 1
llm_time_to_first_token_seconds_sum{endpoint="other",model="other"} 0.3
llm_time_to_first_token_seconds_count{endpoint="other",model="other"} 1
# HELP llm_tokens_total Tokens reported by the provider, by type (input, output, cached_input).
# TYPE llm_tokens_total counter
llm_tokens_total{type="cached_input"} 2
llm_tokens_total{type="input"} 15
llm_tokens_total{type="output"} 9
`
		if err := testutil.GatherAndCompare(counted(reg), strings.NewReader(want)); err != nil {
			t.Fatal(err)
		}
		// Every family exported is one MetricNames lists, and the reverse.
		var got []string
		for _, mf := range must(reg.Gather()) {
			got = append(got, mf.GetName())
		}
		names := metrics.MetricNames("")
		slices.Sort(names)
		if !slices.Equal(got, names) {
			t.Errorf("exported families %v, MetricNames lists %v", got, names)
		}
	})
}

// With allow-lists, every series of the bounded label sets exists, at 0,
// from construction, so that rates and ratios work from the first scrape;
// without them, a pair's series appear with its first call. Quota and
// breaker series appear once reported.
func TestPrometheusSeriesFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	must(metrics.NewPrometheus(reg, metrics.WithModels("a", "b"), metrics.WithEndpoints("chat")))
	statuses := 2 + len(llm.Kinds())
	for name, want := range map[string]int{
		"llm_requests_total":                  2 * 3 * statuses, // endpoints chat, other × models a, b, other
		"llm_request_duration_seconds":        2 * 3,
		"llm_time_to_first_token_seconds":     2 * 3,
		"llm_active_requests":                 1,
		"llm_tokens_total":                    3,
		"llm_provider_calls_total":            statuses - 1, // never degraded
		"llm_retries_total":                   1,
		"llm_cache_requests_total":            6,
		"llm_cache_bypass_total":              5,
		"llm_router_requests_total":           0, // no router configured (WithDeployments)
		"llm_router_deployment_cooling":       0,
		"llm_limiter_decisions_total":         0,
		"llm_quota_updated_timestamp_seconds": 0,
		"llm_fallbacks_total":                 len(llm.Kinds()),
		"llm_rate_limited_total":              5,
		"llm_circuit_breaker_state":           0,
		"llm_quota_remaining":                 0,
	} {
		if n := must(testutil.GatherAndCount(reg, name)); n != want {
			t.Errorf("%s: %d series at construction, want %d", name, n, want)
		}
	}

	reg = prometheus.NewRegistry()
	p := must(metrics.NewPrometheus(reg, metrics.WithModels("a")))
	if n := must(testutil.GatherAndCount(reg, "llm_requests_total")); n != 0 {
		t.Errorf("no endpoint allow-list: %d request series before any call, want 0", n)
	}
	_, _ = p.Middleware()(okClient).Generate(context.Background(), &llm.Request{Model: "a", Endpoint: "e"})
	if n := must(testutil.GatherAndCount(reg, "llm_requests_total")); n != statuses {
		t.Errorf("after one call: %d request series, want the %d of its pair", n, statuses)
	}
}

// NewPrometheus twice on one registry shares every series; asking for
// other histograms is an error; a clash with another collector is an
// error that leaves nothing registered.
func TestPrometheusIdempotentRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := must(metrics.NewPrometheus(reg))
	b := must(metrics.NewPrometheus(reg))
	for _, p := range []*metrics.Prometheus{a, b} {
		if _, err := p.Middleware()(okClient).Generate(context.Background(), &llm.Request{Model: "m", Endpoint: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP llm_requests_total LLM calls by final outcome: status is ok, degraded or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="e",model="m",status="ok"} 2
`
	if err := testutil.GatherAndCompare(counted(reg), strings.NewReader(want), "llm_requests_total"); err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]metrics.Option{
		"other duration buckets": metrics.WithDurationBuckets(1, 2, 3),
		"other TTFT buckets":     metrics.WithTTFTBuckets(1, 2, 3),
		"no native histograms":   metrics.WithNativeHistograms(0),
	} {
		if _, err := metrics.NewPrometheus(reg, opt); err == nil {
			t.Errorf("%s on a shared registry: want an error", name)
		}
	}
	if _, err := metrics.NewPrometheus(reg, metrics.WithDurationBuckets(append(slices.Clone(metrics.DefaultDurationBuckets), math.Inf(1))...)); err != nil {
		t.Errorf("the same buckets with a trailing +Inf: %v", err)
	}

	// Another collector under one of the names (another help text, or the
	// same descriptor on a collector of another type): an error, and the
	// families registered before the clash are taken back.
	for _, clash := range []prometheus.Collector{
		prometheus.NewCounter(prometheus.CounterOpts{Name: "llm_retries_total", Help: "Something else."}),
		prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "llm_tokens_total", Help: "Tokens reported by the provider, by type (input, output, cached_input)."}, []string{"type"}),
	} {
		reg := prometheus.NewRegistry()
		reg.MustRegister(clash)
		if _, err := metrics.NewPrometheus(reg); err == nil {
			t.Fatalf("%T: want an error for a clashing collector", clash)
		}
		if err := reg.Register(clash); err == nil {
			t.Errorf("%T: the clashing collector was unregistered", clash)
		}
		if n := must(testutil.GatherAndCount(reg)); n > 3 {
			t.Errorf("%T: %d series left after the clash, want only the clashing collector's", clash, n)
		}
		// Another namespace on the same registry is a separate set of families.
		if _, err := metrics.NewPrometheus(reg, metrics.WithNamespace("svc")); err != nil {
			t.Errorf("another namespace: %v", err)
		}
	}
}

// 100,000 calls with random models, endpoints, tenants and outcomes, and
// events with random sources and reasons, keep every family within its
// bounded label set.
func TestPrometheusCardinality(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := must(metrics.NewPrometheus(reg, metrics.WithModels("gpt-a", "gpt-b", "claude"), metrics.WithMaxEndpoints(5)))
	rng := rand.New(rand.NewPCG(1, 2))
	up := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		p.Observe(ctx, llm.Event{Kind: llm.EventBreakerState, Source: req.Tenant})
		p.Observe(ctx, llm.Event{Kind: llm.EventFallback, Reason: req.Tenant})
		p.Observe(ctx, llm.Event{Kind: llm.EventRejected, Reason: req.Tenant})
		if rng.IntN(10) == 0 {
			return nil, llmtest.Error(llm.KindRateLimited)
		}
		return &llm.Response{Text: "ok", Model: req.Model}, nil
	})
	c := p.Middleware()(up)
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
		_, _ = c.Generate(context.Background(), req)
	}
	mfs := must(reg.Gather())
	statuses := 2 + len(llm.Kinds())
	limits := map[string]int{
		"llm_requests_total":        (5 + 1) * (3 + 1) * statuses,
		"llm_circuit_breaker_state": 16 + 1,
		"llm_fallbacks_total":       len(llm.Kinds()),
		"llm_rate_limited_total":    5,
	}
	for _, mf := range mfs {
		if limit, ok := limits[mf.GetName()]; ok && len(mf.Metric) > limit {
			t.Errorf("%s has %d series, want <= %d", mf.GetName(), len(mf.Metric), limit)
		}
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				// Breaker names come from Event.Source, the first 16 seen;
				// no other label may carry a tenant or a free-form model.
				if lp.GetName() != "name" && strings.Contains(lp.GetValue(), "tenant") || lp.GetName() == "model" && strings.HasPrefix(lp.GetValue(), "model-") {
					t.Errorf("%s: unbounded label value %s=%q", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

func traced(id byte, flags trace.TraceFlags) context.Context {
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{15: id}, SpanID: trace.SpanID{7: 1}, TraceFlags: flags,
	}))
}

// A call with a sampled span leaves its trace id as the latest exemplar of
// its duration bucket and its request counter (client_golang's
// ExemplarObserver and ExemplarAdder); a call without one, or whose span
// is sampled out, leaves them as they are.
func TestPrometheusExemplars(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		fake := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: 1900 * time.Millisecond},
			{Latency: 1700 * time.Millisecond},
			{Latency: 1600 * time.Millisecond},
			{Latency: 300 * time.Millisecond, Err: llmtest.Error(llm.KindTimeout)},
			{Latency: 1800 * time.Millisecond},
		}}
		c := must(metrics.NewPrometheus(reg, metrics.WithModels("m"), metrics.WithEndpoints("e"))).Middleware()(fake)
		req := &llm.Request{Model: "m", Endpoint: "e"}
		_, _ = c.Generate(traced(1, trace.FlagsSampled), req)
		_, _ = c.Generate(traced(2, trace.FlagsSampled), req) // same bucket (le=2): replaces trace 1
		end2 := time.Now()
		_, _ = c.Generate(context.Background(), req)          // untraced: no change
		_, _ = c.Generate(traced(3, trace.FlagsSampled), req) // a timeout, in le=0.3
		end4 := time.Now()
		_, _ = c.Generate(traced(4, 0), req) // sampled out: no change

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
			for _, m := range mf.GetMetric() {
				if l := m.GetLabel(); len(l) < 2 || l[0].GetValue() != "e" || l[1].GetValue() != "m" {
					continue
				}
				switch mf.GetName() {
				case "llm_request_duration_seconds":
					for _, b := range m.GetHistogram().GetBucket() {
						switch b.GetUpperBound() {
						case 0.3:
							check("bucket le=0.3", b.GetExemplar(), 0.3, 3, end4)
						case 2:
							check("bucket le=2", b.GetExemplar(), 1.7, 2, end2)
						default:
							if b.GetExemplar() != nil {
								t.Errorf("bucket le=%v has an exemplar", b.GetUpperBound())
							}
						}
					}
				case "llm_requests_total":
					switch status := m.GetLabel()[2].GetValue(); status {
					case "ok":
						check("status ok", m.GetCounter().GetExemplar(), 1, 2, end2)
					case "timeout":
						check("status timeout", m.GetCounter().GetExemplar(), 1, 3, end4)
					default:
						if m.GetCounter().GetExemplar() != nil {
							t.Errorf("status %s has an exemplar", status)
						}
					}
				}
			}
		}

		// WithExemplars(false): none at all.
		reg2 := prometheus.NewRegistry()
		c2 := must(metrics.NewPrometheus(reg2, metrics.WithExemplars(false))).Middleware()(okClient)
		_, _ = c2.Generate(traced(5, trace.FlagsSampled), req)
		for _, mf := range must(reg2.Gather()) {
			for _, m := range mf.GetMetric() {
				if m.GetCounter().GetExemplar() != nil || len(m.GetHistogram().GetExemplars()) > 0 {
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

// The histograms are native as well as classic by default;
// WithNativeHistograms(0) leaves them classic only.
func TestPrometheusNativeHistograms(t *testing.T) {
	for _, tc := range []struct {
		opts   []metrics.Option
		native bool
	}{{nil, true}, {[]metrics.Option{metrics.WithNativeHistograms(1.5)}, true}, {[]metrics.Option{metrics.WithNativeHistograms(0)}, false}} {
		reg := prometheus.NewPedanticRegistry()
		c := must(metrics.NewPrometheus(reg, tc.opts...)).Middleware()(okClient)
		if _, err := c.Generate(context.Background(), &llm.Request{Stream: func(llm.Chunk) error { return nil }}); err != nil {
			t.Fatal(err)
		}
		for _, mf := range must(reg.Gather()) {
			if mf.GetType() != dto.MetricType_HISTOGRAM {
				continue
			}
			h := mf.Metric[0].GetHistogram()
			if (h.Schema != nil) != tc.native || len(h.GetBucket()) == 0 {
				t.Errorf("%s: schema %v, %d classic buckets; want native %v and classic buckets", mf.GetName(), h.Schema, len(h.GetBucket()), tc.native)
			}
		}
	}
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
		c := must(metrics.NewPrometheus(reg, metrics.WithDurationBuckets(0.3, 1, math.Inf(1)), metrics.WithModels("m"), metrics.WithEndpoints("e"))).Middleware()(&llmtest.Fake{Steps: steps})
		for range latencies {
			_, _ = c.Generate(context.Background(), &llm.Request{Model: "m", Endpoint: "e"})
		}
		want := `
# HELP llm_request_duration_seconds Duration of LLM calls, retries and waits included.
# TYPE llm_request_duration_seconds histogram
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="0.3"} 2
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="1"} 4
llm_request_duration_seconds_bucket{endpoint="e",model="m",le="+Inf"} 5
llm_request_duration_seconds_sum{endpoint="e",model="m"} 4.600000001
llm_request_duration_seconds_count{endpoint="e",model="m"} 5
`
		if err := testutil.GatherAndCompare(counted(reg), strings.NewReader(want), "llm_request_duration_seconds"); err != nil {
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
	c := must(metrics.NewPrometheus(reg, metrics.WithModels("a", "b"))).Middleware()(up)
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
	want := map[string]float64{"ok": ok, "unavailable": failed}
	got := map[string]float64{}
	var histCount uint64
	for _, mf := range must(reg.Gather()) {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "llm_requests_total":
				got[m.GetLabel()[2].GetValue()] += m.GetCounter().GetValue()
			case "llm_request_duration_seconds":
				histCount += m.GetHistogram().GetSampleCount()
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
				if v, w := m.GetCounter().GetValue(), want[m.GetLabel()[0].GetValue()]; v != w {
					t.Errorf("llm_provider_calls_total{status=%q} = %v, want %v", m.GetLabel()[0].GetValue(), v, w)
				}
			}
		}
	}
	for status, n := range got {
		if n != want[status] {
			t.Errorf("llm_requests_total{status=%q} = %v, want %v", status, n, want[status])
		}
	}
	if histCount != total {
		t.Errorf("duration histograms count %d calls, want %d", histCount, total)
	}
}

// A panic in the wrapped client is a failure (status unknown), frees its
// slot in llm_active_requests, and goes on to the caller.
func TestPrometheusPanicCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	var inFlight float64
	up := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		inFlight = gatherValue(t, reg, "llm_active_requests")
		panic("boom")
	})
	c := must(metrics.NewPrometheus(reg, metrics.WithModels("m"), metrics.WithEndpoints("e"))).Middleware()(up)
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
# HELP llm_requests_total LLM calls by final outcome: status is ok, degraded or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="e",model="m",status="unknown"} 1
`
	if err := testutil.GatherAndCompare(counted(reg), strings.NewReader(want), "llm_active_requests", "llm_requests_total"); err != nil {
		t.Fatal(err)
	}
}

// gatherValue returns the value of the one series of an unlabelled gauge
// or counter.
func gatherValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	for _, mf := range must(g.Gather()) {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no family %s", name)
	return 0
}

// Until the observer hears an attempt, each call that is not a cache hit
// counts as one provider call; from then on only reported attempts count.
func TestPrometheusAttempts(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := must(metrics.NewPrometheus(reg))
	ctx := context.Background()
	req := &llm.Request{Model: "m", Endpoint: "e"}
	bare := p.Middleware()(okClient)
	hit := p.Middleware()(llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return &llm.Response{Text: "cached", Cached: true}, nil
	}))
	retried := p.Middleware()(reporting(p,
		llm.Event{Kind: llm.EventAttempt, Attempt: 1, Err: llmtest.Error(llm.KindOverloaded)},
		llm.Event{Kind: llm.EventAttempt, Attempt: 2},
	)(okClient))
	for _, c := range []llm.Client{bare, bare, hit, retried, bare} {
		if _, err := c.Generate(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP llm_provider_calls_total Provider attempts (retries and hedges included) by outcome.
# TYPE llm_provider_calls_total counter
llm_provider_calls_total{status="ok"} 3
llm_provider_calls_total{status="overloaded"} 1
`
	if err := testutil.GatherAndCompare(counted(reg), strings.NewReader(want), "llm_provider_calls_total"); err != nil {
		t.Fatal(err)
	}
}

// The middleware puts nothing on the call's context: the events reach the
// Prometheus through the decorators it is given to, once.
func TestPrometheusNotOnContext(t *testing.T) {
	leaf := &observedLeaf{Client: okClient}
	p := must(metrics.NewPrometheus(prometheus.NewRegistry()))
	if _, err := p.Middleware()(leaf).Generate(context.Background(), llm.Prompt("x")); err != nil {
		t.Fatal(err)
	}
	if leaf.saw {
		t.Fatal("the Prometheus middleware registered an observer on the call's context")
	}
}

// A quota series lives until the reset the provider announced, or
// WithQuotaTTL when it gave none; a later report brings it back.
func TestPrometheusQuotaExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		quotas := []*llm.Quota{
			{RemainingRequests: 5, ResetRequests: 20 * time.Second, RemainingTokens: 900, LimitRequests: -1, LimitTokens: -1},
			{RemainingRequests: 4, ResetRequests: 5 * time.Second, RemainingTokens: -1, LimitRequests: -1, LimitTokens: -1},
			{RemainingRequests: -1, RemainingTokens: 800, LimitRequests: -1, LimitTokens: -1},
		}
		var steps []llmtest.Step
		for _, q := range quotas {
			steps = append(steps, llmtest.Step{Response: &llm.Response{Quota: q}})
		}
		c := must(metrics.NewPrometheus(reg, metrics.WithQuotaTTL(30*time.Second))).Middleware()(&llmtest.Fake{Steps: steps})
		start := time.Now()
		// series lists the remaining counts, each with the age of its
		// report from llm_quota_updated_timestamp_seconds.
		series := func() string {
			var s []string
			updated := map[string]float64{}
			for _, mf := range must(reg.Gather()) {
				for _, m := range mf.Metric {
					switch mf.GetName() {
					case "llm_quota_remaining":
						s = append(s, fmt.Sprintf("%s=%v", m.GetLabel()[0].GetValue(), m.GetGauge().GetValue()))
					case "llm_quota_updated_timestamp_seconds":
						updated[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
					}
				}
			}
			for i, kv := range s {
				kind, _, _ := strings.Cut(kv, "=")
				at, ok := updated[kind]
				if !ok {
					t.Errorf("%s: no llm_quota_updated_timestamp_seconds", kind)
				}
				s[i] = fmt.Sprintf("%s@%v", kv, time.Unix(0, int64(at*1e9)).Sub(start).Seconds())
			}
			if len(updated) != len(s) {
				t.Errorf("%d update timestamps for %d quota series", len(updated), len(s))
			}
			return strings.Join(s, " ")
		}
		call := func() { _, _ = c.Generate(context.Background(), llm.Prompt("x")) }
		at := func(d time.Duration, want string) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if got := series(); got != want {
				t.Errorf("%v later: %q, want %q", d, got, want)
			}
		}
		call() // requests 5 until 20 s, tokens 900 until 30 s
		at(0, "requests=5@0 tokens=900@0")
		at(10*time.Second, "requests=5@0 tokens=900@0")
		call() // requests 4, now resetting at 15 s
		at(4*time.Second, "requests=4@10 tokens=900@0")
		at(2*time.Second, "tokens=900@0") // 16 s
		call()                            // tokens 800 until 46 s
		at(20*time.Second, "tokens=800@16")
		at(11*time.Second, "")
	})
}

// An error whose cause holds a secret comes back redacted, of the same
// kind, from every middleware of the package.
func TestMiddlewaresRedactErrors(t *testing.T) {
	secret := "sk-" + strings.Repeat("s3cret", 5)
	leaky := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return nil, fmt.Errorf("GET https://api.example.com/v1?key=%s: %w", secret, llmtest.Error(llm.KindUnavailable))
	})
	k := newOTelKit(t)
	for name, mw := range map[string]llm.Middleware{
		"prometheus": must(metrics.NewPrometheus(prometheus.NewRegistry())).Middleware(),
		"health":     must(metrics.NewHealth()).Middleware(),
		"log":        must(metrics.Log(discardLogger)),
		"otel":       k.middleware(t),
	} {
		_, err := mw(leaky).Generate(context.Background(), llm.Prompt("x"))
		if err == nil || strings.Contains(err.Error(), "s3cret") || !errors.Is(err, llm.ErrUnavailable) {
			t.Errorf("%s: returned %v, want an unavailable error without the secret", name, err)
		}
	}
}

// A call allocates nothing once its series exist; a sampled span adds
// client_golang's exemplars. Checked without -race (make test-allocs).
func TestPrometheusAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation pins run without -race")
	}
	p := must(metrics.NewPrometheus(prometheus.NewRegistry(), metrics.WithModels("m"), metrics.WithEndpoints("e")))
	c := p.Middleware()(okClient)
	req := &llm.Request{Model: "m", Endpoint: "e"}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		max  float64
	}{
		{"untraced", context.Background(), 0},
		{"sampled out", traced(1, 0), 0},
		// The exemplar labels (map, trace id) and client_golang's two
		// exemplars (counter and bucket), 16 to 18 depending on its
		// native-exemplar bookkeeping.
		{"sampled", traced(1, trace.FlagsSampled), 18},
	} {
		if n := testing.AllocsPerRun(1000, func() { _, _ = c.Generate(tc.ctx, req) }); n > tc.max {
			t.Errorf("%s: %v allocs per call, want <= %v", tc.name, n, tc.max)
		}
	}
	ev := llm.Event{Kind: llm.EventAttempt, Attempt: 1}
	if n := testing.AllocsPerRun(1000, func() { p.Observe(context.Background(), ev) }); n != 0 {
		t.Errorf("Observe: %v allocs per event, want 0", n)
	}
}
