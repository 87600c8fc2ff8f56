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

// retryOnce stands in for resilience: built with an observer, as
// resilience.Config.Observer is, it reports each attempt and retry to it.
func retryOnce(o llm.Observer) llm.Middleware {
	return func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			resp, err := next.Generate(ctx, req)
			llm.EmitTo(ctx, o, llm.Event{Kind: llm.EventAttempt, Request: req, Attempt: 1, Err: err})
			if err != nil && llm.Retryable(err) {
				llm.EmitTo(ctx, o, llm.Event{Kind: llm.EventRetry, Request: req, Attempt: 1, Err: err})
				resp, err = next.Generate(ctx, req)
				llm.EmitTo(ctx, o, llm.Event{Kind: llm.EventAttempt, Request: req, Attempt: 2, Err: err})
			}
			return resp, err
		})
	}
}

// The middleware counts each call by endpoint, bounded model and final
// outcome; the Prometheus itself, given to the decorators inside, counts
// their attempts and retries. A model outside the allow-list is "other".
func ExampleNewPrometheus() {
	reg := prometheus.NewRegistry()
	p, err := metrics.NewPrometheus(reg, metrics.WithModels("gpt-4o"), metrics.WithEndpoints("summarize"))
	if err != nil {
		panic(err)
	}
	upstream := &llmtest.Fake{Steps: []llmtest.Step{{}, {Err: llmtest.Error(llm.KindUnavailable)}, {}}}
	client := llm.Wrap(upstream, p.Middleware(), retryOnce(p))
	for _, model := range []string{"gpt-4o", "some-fine-tune-123"} {
		_, _ = client.Generate(context.Background(), &llm.Request{Model: model, Endpoint: "summarize"})
	}
	err = testutil.GatherAndCompare(counted(reg), strings.NewReader(`
# HELP llm_provider_calls_total Provider attempts (retries and hedges included) by outcome.
# TYPE llm_provider_calls_total counter
llm_provider_calls_total{status="ok"} 2
llm_provider_calls_total{status="unavailable"} 1
# HELP llm_requests_total LLM calls by final outcome: status is ok, degraded or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="summarize",model="gpt-4o",status="ok"} 1
llm_requests_total{endpoint="summarize",model="other",status="ok"} 1
# HELP llm_retries_total Retries scheduled.
# TYPE llm_retries_total counter
llm_retries_total 1
`), "llm_requests_total", "llm_provider_calls_total", "llm_retries_total")
	fmt.Println("exposition matches:", err == nil)
	// Output:
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

// Health answers a readiness probe from the breaker states of the
// decorators it is given to and the quotas its middleware reads.
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
