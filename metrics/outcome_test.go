package metrics_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/codes"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/metrics"
)

// The three say the same outcome: a fallback's answer is "degraded" in
// llm_requests_total, in the log line's status and in the span's
// llm.status (the span's status stays Unset: the call succeeded), and its
// reason is in llm_fallbacks_total; a failure is its kind in all three.
func TestOutcomeAgreesEverywhere(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p := must(metrics.NewPrometheus(reg, metrics.WithModels("m"), metrics.WithEndpoints("chat")))
	var buf bytes.Buffer
	logs := must(metrics.Log(slog.New(slog.NewJSONHandler(&buf, nil))))
	k := newOTelKit(t)
	fake := &llmtest.Fake{Steps: []llmtest.Step{
		{Response: &llm.Response{Degraded: true, DegradedReason: llm.KindUnavailable}},
		{Err: llmtest.Error(llm.KindUnavailable)},
		{Text: "fine"},
	}}
	// The fallback reports its event to p, as resilience given p does.
	fallback := reporting(p, llm.Event{Kind: llm.EventFallback, Reason: "unavailable", Source: "static"})
	c := llm.Wrap(fake, k.middleware(t), p.Middleware(), logs, fallback)
	req := &llm.Request{Model: "m", Endpoint: "chat"}
	for range 3 {
		_, _ = c.Generate(context.Background(), req)
	}

	want := `
# HELP llm_fallbacks_total Answers produced by a fallback, by the kind of error that triggered it.
# TYPE llm_fallbacks_total counter
llm_fallbacks_total{reason="unavailable"} 3
# HELP llm_requests_total LLM calls by final outcome: status is ok, degraded or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="chat",model="m",status="degraded"} 1
llm_requests_total{endpoint="chat",model="m",status="ok"} 1
llm_requests_total{endpoint="chat",model="m",status="unavailable"} 1
`
	if err := testutil.GatherAndCompare(counted(reg), strings.NewReader(want), "llm_requests_total", "llm_fallbacks_total"); err != nil {
		t.Fatal(err)
	}
	lines := jsonLines(t, &buf)
	spans := k.spans.Ended()
	if len(lines) != 3 || len(spans) != 3 {
		t.Fatalf("%d log lines, %d spans; want 3 of each", len(lines), len(spans))
	}
	wantStatus := []string{"degraded", "unavailable", "ok"}
	wantCode := []codes.Code{codes.Unset, codes.Error, codes.Unset}
	for i, s := range spans {
		a := attrMap(s.Attributes())
		if got := a["llm.status"].AsString(); got != wantStatus[i] || lines[i]["status"] != wantStatus[i] || s.Status().Code != wantCode[i] {
			t.Errorf("call %d: span llm.status %q (code %v), log status %v; want %q (code %v) in both", i, got, s.Status().Code, lines[i]["status"], wantStatus[i], wantCode[i])
		}
	}
	if a := attrMap(spans[0].Attributes()); !a["llm.degraded"].AsBool() || a["llm.degraded_reason"].AsString() != "unavailable" || lines[0]["degraded_reason"] != "unavailable" {
		t.Errorf("degraded call: span %v, log %v; want the reason unavailable in both", a, lines[0])
	}
}

// Every request through a real cache is a hit, a miss, or a bypass with
// its reason, in llm_cache_requests_total and llm_cache_bypass_total, in
// the log line and on the span.
func TestCacheBypassReasons(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p := must(metrics.NewPrometheus(reg))
	store, err := cache.NewRistretto(cache.RistrettoConfig{MaxCost: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	cached := must(cache.New(store, cache.WithObserver(p)))
	var buf bytes.Buffer
	logs := must(metrics.Log(slog.New(slog.NewJSONHandler(&buf, nil))))
	k := newOTelKit(t)
	c := llm.Wrap(&llmtest.Fake{Default: llmtest.Step{Text: "answer"}}, k.middleware(t), p.Middleware(), logs, cached.Middleware())

	det := func(text string) *llm.Request {
		r := llm.Prompt(text)
		r.Temperature = llm.Ptr(0.0)
		return r
	}
	optedOut, refresh := det("a"), det("a")
	optedOut.Cache, refresh.Cache = llm.CacheBypass, llm.CacheSkipRead
	for _, req := range []*llm.Request{
		llm.Prompt("the seed's requests carry no temperature"),
		llm.Prompt("nor does this one"),
		optedOut,
		det("a"), // miss, stored
		refresh,
	} {
		if _, err := c.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	store.Wait()
	if _, err := c.Generate(context.Background(), det("a")); err != nil { // hit
		t.Fatal(err)
	}

	want := `
# HELP llm_cache_bypass_total Requests the cache did not look up, by reason (nondeterministic, opted_out, skip_read, no_key, other).
# TYPE llm_cache_bypass_total counter
llm_cache_bypass_total{reason="nondeterministic"} 2
llm_cache_bypass_total{reason="opted_out"} 1
llm_cache_bypass_total{reason="skip_read"} 1
# HELP llm_cache_requests_total Requests through the cache by result (hit, miss, stale, coalesced, bypass, error).
# TYPE llm_cache_requests_total counter
llm_cache_requests_total{result="bypass"} 4
llm_cache_requests_total{result="hit"} 1
llm_cache_requests_total{result="miss"} 1
`
	if err := testutil.GatherAndCompare(counted(reg), strings.NewReader(want), "llm_cache_requests_total", "llm_cache_bypass_total"); err != nil {
		t.Fatal(err)
	}
	lines := jsonLines(t, &buf)
	spans := k.spans.Ended()
	if len(lines) != 6 || len(spans) != 6 {
		t.Fatalf("%d log lines, %d spans; want 6 of each", len(lines), len(spans))
	}
	wantResult := []string{"bypass", "bypass", "bypass", "miss", "bypass", "hit"}
	wantReason := []string{"nondeterministic", "nondeterministic", "opted_out", "", "skip_read", ""}
	for i, s := range spans {
		var result, reason string
		for _, ev := range s.Events() {
			if ev.Name == "llm.cache" && attrMap(ev.Attributes)["llm.cache.result"].AsString() != "store" {
				result, reason = attrMap(ev.Attributes)["llm.cache.result"].AsString(), attrMap(ev.Attributes)["llm.cache.bypass_reason"].AsString()
			}
		}
		logReason, _ := lines[i]["cache_bypass"].(string)
		if result != wantResult[i] || reason != wantReason[i] || lines[i]["cache"] != wantResult[i] || logReason != wantReason[i] {
			t.Errorf("call %d: span %s/%q, log %v/%q; want %s/%q", i, result, reason, lines[i]["cache"], logReason, wantResult[i], wantReason[i])
		}
	}
}
