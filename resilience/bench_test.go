package resilience

import (
	"context"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// shared is an answer every call returns, as a cache or a canned client
// would: the policies must copy it before setting Attempts.
var shared = &llm.Response{Text: "ok", FinishReason: llm.FinishStop}

var instant = llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return shared, nil })

func benchConfigs() map[string]func() (llm.Middleware, error) {
	return map[string]func() (llm.Middleware, error){
		"Retry":   func() (llm.Middleware, error) { return Retry(nil) },
		"Breaker": func() (llm.Middleware, error) { _, mw, err := CircuitBreaker(BreakerConfig{}); return mw, err },
		"Timeout": func() (llm.Middleware, error) {
			return Timeout(TimeoutConfig{Total: 2 * time.Minute, Attempt: time.Minute})
		},
		"Fallback": func() (llm.Middleware, error) { return Fallback(nil) },
		"RateLimit": func() (llm.Middleware, error) {
			return RateLimit(RateLimitConfig{Requests: 1 << 30, Bursty: true})
		},
		"Bulkhead": func() (llm.Middleware, error) { return Bulkhead(BulkheadConfig{MaxConcurrent: 1024}) },
		"AdaptiveLimit": func() (llm.Middleware, error) {
			return AdaptiveLimit(AdaptiveLimitConfig{MinLimit: 1024, MaxLimit: 4096, InitialLimit: 1024})
		},
		"Hedge":   func() (llm.Middleware, error) { return Hedge(HedgeConfig{Delay: time.Second}) },
		"Default": func() (llm.Middleware, error) { return New(DefaultConfig()) },
		"All":     func() (llm.Middleware, error) { return New(fullConfig()) },
	}
}

func BenchmarkPolicies(b *testing.B) {
	for _, name := range []string{"Retry", "Breaker", "Timeout", "Fallback", "RateLimit", "Bulkhead", "AdaptiveLimit", "Hedge", "Default", "All"} {
		mk := benchConfigs()[name]
		b.Run(name, func(b *testing.B) {
			mw, err := mk()
			if err != nil {
				b.Fatal(err)
			}
			c := mw(instant)
			req := llm.Prompt("hello")
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Generate(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// The success path allocates what it allocates today and no more, so that
// a regression, such as per-call state escaping to the heap, fails here:
// the call's attempt count (1, shared by fallback, retry and hedge), the
// adaptive limiter's permit (1), the total timeout's budget (1) and the
// attempt's timer context (4). The total timeout needs a timer context of
// its own (4, and 3 for registering the attempt's under it) only when a
// policy that waits sits between the two timeouts, as in All.
func TestAllocsPerCall(t *testing.T) {
	budgets := map[string]float64{"Default": 6, "All": 13, "Timeout": 5, "Retry": 1, "Fallback": 1,
		"Breaker": 0, "Bulkhead": 0, "RateLimit": 0}
	for name, limit := range budgets {
		mw, err := benchConfigs()[name]()
		if err != nil {
			t.Fatal(err)
		}
		c := mw(instant)
		req := llm.Prompt("hello")
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := c.Generate(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > limit {
			t.Errorf("%s: %.0f allocs per call, budget %.0f", name, allocs, limit)
		}
	}
}

// BenchmarkWithTimeoutBaseline is the cost of one context.WithTimeout on
// this machine, the floor of any per-attempt timeout.
func BenchmarkWithTimeoutBaseline(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, cancel := context.WithTimeout(context.Background(), time.Minute)
		cancel()
	}
}
