package resilience

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// Config.Observer hears exactly what an observer on the call's context
// hears: attempts, retries, breaker changes, rejections, hedges and
// fallbacks, from every emit site.
func TestConfigObserverHearsWhatTheContextHears(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		own := &llmtest.Recorder{}
		fake := &llmtest.Fake{Func: func(n int, _ *llm.Request) llmtest.Step {
			if n < 8 {
				return llmtest.Step{Err: &llm.Error{Kind: llm.KindUnavailable, Status: 503}}
			}
			return llmtest.Step{Text: "ok", Latency: 50 * time.Millisecond}
		}}
		c := wrap(t, Config{
			Observer: own,
			Fallback: &FallbackConfig{},
			Bulkhead: &BulkheadConfig{MaxConcurrent: 1},
			Retry:    &RetryConfig{MaxAttempts: 2, BaseDelay: time.Millisecond, NoJitter: true},
			Breaker:  &BreakerConfig{FailureThreshold: 4, Delay: time.Second},
			Hedge:    &HedgeConfig{Delay: 10 * time.Millisecond},
		}, fake)
		ctx, viaCtx := observed()
		for range 12 {
			c.Generate(ctx, llm.Prompt("q"))
			time.Sleep(2 * time.Second) // let the open breaker half-open
		}
		// Rejections: a call in flight holds the only slot of each limit.
		hang := &llmtest.Fake{Default: llmtest.Step{Hang: true}}
		for _, cfg := range []Config{
			{Observer: own, Bulkhead: &BulkheadConfig{MaxConcurrent: 1}},
			{Observer: own, AdaptiveLimit: &AdaptiveLimitConfig{MinLimit: 1, MaxLimit: 1, InitialLimit: 1}},
			{Observer: own, RateLimit: &RateLimitConfig{Requests: 1, Period: time.Hour, Bursty: true}},
		} {
			slow := wrap(t, cfg, hang)
			hctx, cancel := context.WithCancel(ctx)
			go slow.Generate(hctx, llm.Prompt("q"))
			synctest.Wait()
			slow.Generate(ctx, llm.Prompt("q"))
			cancel()
			synctest.Wait()
		}

		got, want := kinds(own), kinds(viaCtx)
		if !slices.Equal(got, want) {
			t.Fatalf("Config.Observer heard\n%v\nthe context's observer heard\n%v", got, want)
		}
		for _, k := range []llm.EventKind{llm.EventAttempt, llm.EventRetry, llm.EventBreakerState, llm.EventRejected, llm.EventFallback, llm.EventHedge} {
			if own.Count(k) == 0 {
				t.Errorf("no %s event; the scenario should produce one (got %v)", k, got)
			}
		}
		reasons := map[string]bool{}
		for _, ev := range own.Events(llm.EventRejected) {
			reasons[ev.Reason] = true
		}
		if !reasons["bulkhead"] || !reasons["adaptive_limit"] || !reasons["rate_limit"] {
			t.Errorf("rejection reasons %v", reasons)
		}
	})
}

// Each policy alone reports to the Observer of its own config.
func TestPolicyObservers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		failOnce := func() llm.Client {
			return &llmtest.Fake{Steps: []llmtest.Step{{Err: llmtest.Error(llm.KindUnavailable)}}}
		}
		cases := []struct {
			name string
			mk   func(llm.Observer) (llm.Middleware, error)
			up   llm.Client
			want llm.EventKind
		}{
			{"Retry", func(o llm.Observer) (llm.Middleware, error) {
				return Retry(&RetryConfig{Observer: o, NoJitter: true})
			}, failOnce(), llm.EventRetry},
			{"Fallback", func(o llm.Observer) (llm.Middleware, error) { return Fallback(&FallbackConfig{Observer: o}) },
				failOnce(), llm.EventFallback},
			{"Hedge", func(o llm.Observer) (llm.Middleware, error) {
				return Hedge(HedgeConfig{Delay: time.Second, Observer: o})
			},
				&llmtest.Fake{Default: llmtest.Step{Latency: 2 * time.Second}}, llm.EventHedge},
			{"CircuitBreaker", func(o llm.Observer) (llm.Middleware, error) {
				_, mw, err := CircuitBreaker(BreakerConfig{FailureThreshold: 1, Observer: o})
				return mw, err
			}, failOnce(), llm.EventBreakerState},
			{"RateLimit", func(o llm.Observer) (llm.Middleware, error) {
				return RateLimit(RateLimitConfig{Requests: 1, Period: time.Hour, Bursty: true, Observer: o})
			}, &llmtest.Fake{}, llm.EventRejected},
		}
		for _, tc := range cases {
			rec := &llmtest.Recorder{}
			mw, err := tc.mk(rec)
			if err != nil {
				t.Fatal(err)
			}
			c := mw(tc.up)
			for range 2 {
				c.Generate(context.Background(), llm.Prompt("q"))
			}
			if rec.Count(tc.want) == 0 {
				t.Errorf("%s: its observer heard %v, want a %s event", tc.name, kinds(rec), tc.want)
			}
		}
	})
}
