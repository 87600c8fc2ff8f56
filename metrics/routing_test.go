package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/metrics"
)

// With allow-lists, the configured deployments' and limiters' series exist
// at 0 from construction; "other" never has a cooling gauge; a cooldown sets its gauge to 1 and its end
// back to 0; names outside the lists are "other".
func TestPrometheusRoutingAllowLists(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p := must(metrics.NewPrometheus(reg, metrics.WithDeployments("east", "west"), metrics.WithLimiters("tpm")))
	outcomes := 1 + len(llm.Kinds())
	for name, want := range map[string]int{
		"llm_router_requests_total":     2 * outcomes,
		"llm_router_deployment_cooling": 2,
		"llm_limiter_decisions_total":   6,
		"llm_limiter_tokens_total":      2,
	} {
		if n := must(testutil.GatherAndCount(reg, name)); n != want {
			t.Errorf("%s: %d series at construction, want %d", name, n, want)
		}
	}
	ctx := context.Background()
	for _, ev := range []llm.Event{
		{Kind: llm.EventCooldown, Source: "east", Delay: time.Minute},
		{Kind: llm.EventCooldown, Source: "west", Delay: time.Minute},
		{Kind: llm.EventCooldown, Source: "east", Delay: 0},
		{Kind: llm.EventRoute, Source: "north", Reason: "timeout"},
		{Kind: llm.EventCooldown, Source: "north", Delay: time.Minute},
		{Kind: llm.EventLimit, Source: "rpm", Reason: "local_share"},
		{Kind: llm.EventLimitSettle, Source: "tpm", Tokens: 7},
		{Kind: llm.EventLimitSettle, Source: "tpm", Tokens: 0}, // nothing used: no change
	} {
		p.Observe(ctx, ev)
	}
	want := `
# HELP llm_limiter_decisions_total Shared limiter decisions: allowed, rejected, or the degraded mode (fail_open, fail_closed, local_share) that decided when its store failed.
# TYPE llm_limiter_decisions_total counter
llm_limiter_decisions_total{limiter="other",result="local_share"} 1
# HELP llm_limiter_tokens_total Tokens a shared limiter reserved for admitted calls and the tokens they used.
# TYPE llm_limiter_tokens_total counter
llm_limiter_tokens_total{limiter="tpm",type="used"} 7
# HELP llm_router_deployment_cooling 1 while a router deployment cools down after failures, 0 otherwise.
# TYPE llm_router_deployment_cooling gauge
llm_router_deployment_cooling{deployment="east"} 0
llm_router_deployment_cooling{deployment="west"} 1
# HELP llm_router_requests_total Router attempts by deployment and outcome (ok or the error kind).
# TYPE llm_router_requests_total counter
llm_router_requests_total{deployment="other",outcome="timeout"} 1
`
	if err := testutil.GatherAndCompare(counted(reg), strings.NewReader(want),
		"llm_router_requests_total", "llm_router_deployment_cooling", "llm_limiter_decisions_total", "llm_limiter_tokens_total"); err != nil {
		t.Fatal(err)
	}
}

// Without allow-lists, a deployment's series appear with its first event
// (its cooling gauge at 0 from its first routed call), and 10,000 events
// with distinct names stay within 16 names and "other".
func TestPrometheusRoutingCardinality(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := must(metrics.NewPrometheus(reg))
	if n := must(testutil.GatherAndCount(reg, "llm_router_deployment_cooling")); n != 0 {
		t.Fatalf("%d cooling series before any event, want 0", n)
	}
	ctx := context.Background()
	p.Observe(ctx, llm.Event{Kind: llm.EventRoute, Source: "d0", Reason: "ok"})
	if n := must(testutil.GatherAndCount(reg, "llm_router_deployment_cooling")); n != 1 {
		t.Errorf("%d cooling series after d0's first call, want 1 (at 0)", n)
	}
	for i := range 10000 {
		name := fmt.Sprintf("d%d", i)
		p.Observe(ctx, llm.Event{Kind: llm.EventRoute, Source: name, Reason: fmt.Sprint("reason", i)})
		p.Observe(ctx, llm.Event{Kind: llm.EventCooldown, Source: name, Delay: time.Second})
		p.Observe(ctx, llm.Event{Kind: llm.EventLimit, Source: name, Reason: fmt.Sprint("r", i), Tokens: 1})
	}
	outcomes := 1 + len(llm.Kinds())
	for name, want := range map[string]int{
		"llm_router_requests_total":     17 * outcomes,
		"llm_router_deployment_cooling": 16,
		"llm_limiter_decisions_total":   17 * 6,
		"llm_limiter_tokens_total":      17 * 2,
	} {
		if n := must(testutil.GatherAndCount(reg, name)); n != want {
			t.Errorf("%s: %d series, want at most %d", name, n, want)
		}
	}
}

// Router and limiter events cost no allocation once their series exist.
// Checked without -race (make test-allocs).
func TestPrometheusRoutingAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation pins run without -race")
	}
	p := must(metrics.NewPrometheus(prometheus.NewRegistry(), metrics.WithDeployments("east"), metrics.WithLimiters("tpm")))
	ctx := context.Background()
	for _, ev := range []llm.Event{
		{Kind: llm.EventRoute, Source: "east", Reason: "ok"},
		{Kind: llm.EventRoute, Source: "east", Reason: "overloaded"},
		{Kind: llm.EventCooldown, Source: "east", Delay: time.Second},
		{Kind: llm.EventLimit, Source: "tpm", Reason: "allowed", Tokens: 10},
		{Kind: llm.EventLimitSettle, Source: "tpm", Tokens: 8},
		{Kind: llm.EventCacheMiss, Reason: "nondeterministic"},
	} {
		if n := testing.AllocsPerRun(1000, func() { p.Observe(ctx, ev) }); n != 0 {
			t.Errorf("%v %q: %v allocs per event, want 0", ev.Kind, ev.Reason, n)
		}
	}
}
