package metrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/metrics"
)

// Prometheus counts each call by endpoint, bounded model and outcome; a
// model outside the allow-list is counted as "other".
func ExamplePrometheus() {
	reg := prometheus.NewRegistry()
	mw, err := metrics.Prometheus(reg, metrics.WithModels("gpt-4o"))
	if err != nil {
		panic(err)
	}
	client := mw(&llmtest.Fake{Steps: []llmtest.Step{{}, {}, {Err: llmtest.Error(llm.KindRateLimited)}}})
	for _, model := range []string{"gpt-4o", "some-fine-tune-123", "gpt-4o"} {
		_, _ = client.Generate(context.Background(), &llm.Request{Model: model, Endpoint: "summarize"})
	}
	n, _ := testutil.GatherAndCount(reg, "llm_requests_total")
	fmt.Println("series:", n)
	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP llm_requests_total LLM calls by final outcome: status is ok or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="summarize",model="gpt-4o",status="ok"} 1
llm_requests_total{endpoint="summarize",model="gpt-4o",status="rate_limited"} 1
llm_requests_total{endpoint="summarize",model="other",status="ok"} 1
`), "llm_requests_total")
	fmt.Println("exposition matches:", err == nil)
	// Output:
	// series: 3
	// exposition matches: true
}

// Log writes one line per call; the level follows the outcome and error
// text is redacted.
func ExampleLog() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "time" || a.Key == "duration" {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	mw, err := metrics.Log(logger)
	if err != nil {
		panic(err)
	}
	upstream := &llmtest.Fake{Steps: []llmtest.Step{
		{Response: &llm.Response{Usage: llm.Usage{InputTokens: 5, OutputTokens: 1}}},
		{Err: &llm.Error{Kind: llm.KindAuth, Status: 401, Provider: "openai", Message: "bad header Authorization: Bearer sk-live-0123456789abcdef"}},
	}}
	client := mw(upstream)
	_, _ = client.Generate(context.Background(), &llm.Request{Model: "gpt-4o", Endpoint: "chat"})
	_, _ = client.Generate(context.Background(), &llm.Request{Model: "gpt-4o", Endpoint: "chat"})
	// Output:
	// level=INFO msg="llm call" endpoint=chat model=gpt-4o status=ok response_model=gpt-4o input_tokens=5 output_tokens=1 finish_reason=stop cached=false degraded=false
	// level=ERROR msg="llm call" endpoint=chat model=gpt-4o status=auth error="llm: openai: auth (status 401): bad header Authorization: Bearer [REDACTED]" http_status=401
}

// Health answers a readiness probe from breaker events and quotas.
func ExampleHealth() {
	h, err := metrics.NewHealth()
	if err != nil {
		panic(err)
	}
	h.Observe(context.Background(), llm.Event{Kind: llm.EventBreakerState, Source: "openai", State: llm.BreakerOpen})
	ready, degraded, reasons := h.Status()
	fmt.Println(ready, degraded, reasons)
	// Output:
	// false false [circuit breaker "openai" open]
}
