package metrics_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/metrics"
)

func probe(t *testing.T, h http.Handler) (int, string, []string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var body struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return rec.Code, body.Status, body.Reasons
}

func TestHealthStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(metrics.NewHealth())
		ctx := context.Background()
		if code, status, _ := probe(t, h); code != 200 || status != "ready" {
			t.Fatalf("fresh: %d %s", code, status)
		}
		// Breaker states reach h through the decorator it was given to.
		c := h.Middleware()(reporting(h, llm.Event{Kind: llm.EventBreakerState, Source: "openai", State: llm.BreakerHalfOpen})(&llmtest.Fake{}))
		_, _ = c.Generate(ctx, llm.Prompt("x"))
		if code, status, reasons := probe(t, h); code != 200 || status != "degraded" || !slices.Equal(reasons, []string{`circuit breaker "openai" half-open`}) {
			t.Fatalf("half-open: %d %s %v", code, status, reasons)
		}
		h.Observe(ctx, llm.Event{Kind: llm.EventBreakerState, Source: "openai", State: llm.BreakerOpen})
		if code, status, _ := probe(t, h); code != 503 || status != "unavailable" {
			t.Fatalf("open: %d %s", code, status)
		}
		h.Observe(ctx, llm.Event{Kind: llm.EventBreakerState, Source: "openai", State: llm.BreakerClosed})
		if code, _, _ := probe(t, h); code != 200 {
			t.Fatalf("closed again: %d", code)
		}

		// A low quota degrades; an exhausted one takes the service out of
		// rotation until the reset the provider announced.
		low := &llm.Response{Quota: &llm.Quota{LimitRequests: 1000, RemainingRequests: 10, LimitTokens: -1, RemainingTokens: -1}}
		exhausted := &llm.Error{Kind: llm.KindRateLimited, Status: 429,
			Quota: &llm.Quota{LimitRequests: 1000, RemainingRequests: 0, ResetRequests: 20 * time.Second, LimitTokens: -1, RemainingTokens: -1}}
		c = h.Middleware()(&llmtest.Fake{Steps: []llmtest.Step{{Response: low}, {Err: exhausted}}})
		_, _ = c.Generate(ctx, llm.Prompt("x"))
		if code, status, reasons := probe(t, h); code != 200 || status != "degraded" || len(reasons) != 1 {
			t.Fatalf("low quota: %d %s %v", code, status, reasons)
		}
		_, _ = c.Generate(ctx, llm.Prompt("x"))
		if code, _, reasons := probe(t, h); code != 503 || !slices.Equal(reasons, []string{"request quota exhausted"}) {
			t.Fatalf("exhausted: %d %v", code, reasons)
		}
		time.Sleep(19 * time.Second)
		if ready, _, _ := h.Status(); ready {
			t.Fatal("ready before the announced reset")
		}
		time.Sleep(2 * time.Second)
		if ready, degraded, reasons := h.Status(); !ready || degraded {
			t.Fatalf("after the reset: ready %v degraded %v %v", ready, degraded, reasons)
		}
	})
}

// An exhausted quota with no announced reset counts for WithQuotaTTL.
func TestHealthQuotaTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(metrics.NewHealth(metrics.WithQuotaTTL(10 * time.Second)))
		q := &llm.Quota{LimitRequests: -1, RemainingRequests: -1, LimitTokens: 100, RemainingTokens: 0}
		_, _ = h.Middleware()(&llmtest.Fake{Steps: []llmtest.Step{{Err: &llm.Error{Kind: llm.KindRateLimited, Quota: q}}}}).Generate(context.Background(), llm.Prompt("x"))
		if ready, _, reasons := h.Status(); ready || !slices.Equal(reasons, []string{"token quota exhausted"}) {
			t.Fatalf("exhausted: ready %v %v", ready, reasons)
		}
		time.Sleep(10 * time.Second)
		if ready, _, _ := h.Status(); !ready {
			t.Fatal("not ready after WithQuotaTTL")
		}
	})
}

func TestHealthOpenBreakerDegraded(t *testing.T) {
	h := must(metrics.NewHealth(metrics.WithOpenBreakerDegraded()))
	h.Observe(context.Background(), llm.Event{Kind: llm.EventBreakerState, Source: "a", State: llm.BreakerOpen})
	if ready, degraded, _ := h.Status(); !ready || !degraded {
		t.Fatalf("ready %v degraded %v, want ready and degraded", ready, degraded)
	}
}

func TestHealthConformance(t *testing.T) {
	h := must(metrics.NewHealth())
	llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client { return h.Middleware()(up) })
}

// Health's middleware puts nothing on the call's context.
func TestHealthNotOnContext(t *testing.T) {
	leaf := &observedLeaf{Client: okClient}
	if _, err := must(metrics.NewHealth()).Middleware()(leaf).Generate(context.Background(), llm.Prompt("x")); err != nil {
		t.Fatal(err)
	}
	if leaf.saw {
		t.Fatal("Health's middleware registered an observer on the call's context")
	}
}
