package resilience

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestBulkheadThousandCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Default: llmtest.Step{Latency: 10 * time.Millisecond}}
		c := wrap(t, Config{Bulkhead: &BulkheadConfig{MaxConcurrent: 50, MaxWait: time.Minute}}, fake)
		var wg sync.WaitGroup
		var failed sync.Map
		for i := range 1000 {
			wg.Go(func() {
				if _, err := c.Generate(context.Background(), llm.Prompt("x")); err != nil {
					failed.Store(i, err)
				}
			})
		}
		wg.Wait()
		failed.Range(func(k, v any) bool { t.Fatalf("caller %v: %v", k, v); return false })
		if p := fake.PeakConcurrency(); p != 50 {
			t.Fatalf("peak concurrency %d, want exactly 50", p)
		}
	})
}

func TestBulkheadRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Default: llmtest.Step{Latency: time.Second}}
		c := wrap(t, Config{Bulkhead: &BulkheadConfig{MaxConcurrent: 1}}, fake)
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { c.Generate(context.Background(), llm.Prompt("x")) })
		synctest.Wait()
		ctx, rec := observed()
		_, err := c.Generate(ctx, llm.Prompt("y"))
		if llm.KindOf(err) != llm.KindOverloaded {
			t.Fatalf("err %v, want overloaded", err)
		}
		if ev := rec.Events(llm.EventRejected); len(ev) != 1 || ev[0].Reason != "bulkhead" {
			t.Fatalf("events %+v", ev)
		}
	})
}

func TestPanicFreesSlots(t *testing.T) {
	b := breaker(t, BreakerConfig{FailureThreshold: 1})
	fake := &llmtest.Fake{Steps: []llmtest.Step{{Panic: "boom"}}}
	c := wrap(t, Config{SharedBreaker: b, Bulkhead: &BulkheadConfig{MaxConcurrent: 1},
		AdaptiveLimit: &AdaptiveLimitConfig{MinLimit: 1, MaxLimit: 1, InitialLimit: 1}}, fake)
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the client's panic re-raised", r)
			}
		}()
		c.Generate(context.Background(), llm.Prompt("x"))
		t.Fatal("no panic")
	}()
	if b.State() != llm.BreakerOpen {
		t.Fatalf("breaker %v: the panic was not counted as a failure", b.State())
	}
	force(b, false)
	if _, err := c.Generate(context.Background(), llm.Prompt("x")); err != nil {
		t.Fatalf("after a panic: %v, want the bulkhead and limiter slots freed", err)
	}
}

func TestHedgedPanicReraised(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Steps: []llmtest.Step{{Latency: time.Second, Panic: "boom"}}}
		c := wrap(t, Config{Hedge: &HedgeConfig{Delay: 10 * time.Second}, Bulkhead: &BulkheadConfig{MaxConcurrent: 1}}, fake)
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("recovered %v", r)
				}
			}()
			c.Generate(context.Background(), llm.Prompt("x"))
		}()
		if _, err := c.Generate(context.Background(), llm.Prompt("x")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRateLimitRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{}
		c := wrap(t, Config{RateLimit: &RateLimitConfig{Requests: 2, Period: time.Second, Bursty: true}}, fake)
		ctx, rec := observed()
		for range 2 {
			if _, err := c.Generate(ctx, llm.Prompt("x")); err != nil {
				t.Fatal(err)
			}
		}
		_, err := c.Generate(ctx, llm.Prompt("x"))
		if llm.KindOf(err) != llm.KindRateLimited || llm.RetryAfterOf(err) <= 0 {
			t.Fatalf("err %v, want rate_limited with RetryAfter", err)
		}
		if ev := rec.Events(llm.EventRejected); len(ev) != 1 || ev[0].Reason != "rate_limit" {
			t.Fatalf("events %+v", ev)
		}
		if fake.Calls() != 2 {
			t.Fatalf("calls %d", fake.Calls())
		}
		time.Sleep(time.Second)
		if _, err := c.Generate(ctx, llm.Prompt("x")); err != nil {
			t.Fatalf("next period: %v", err)
		}
	})
}

func TestRateLimitWaitsCancellably(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{}
		c := wrap(t, Config{RateLimit: &RateLimitConfig{Requests: 1, Period: time.Second, MaxWait: 5 * time.Second}}, fake)
		c.Generate(context.Background(), llm.Prompt("x"))
		start := time.Now()
		if _, err := c.Generate(context.Background(), llm.Prompt("x")); err != nil || time.Since(start) != time.Second {
			t.Fatalf("waited %v err %v, want 1s", time.Since(start), err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		if _, err := c.Generate(ctx, llm.Prompt("x")); llm.KindOf(err) != llm.KindCanceled {
			t.Fatalf("canceled wait: %v", err)
		}
	})
}

func TestTokenLimitReconciles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Default: llmtest.Step{Response: &llm.Response{Usage: llm.Usage{InputTokens: 10, OutputTokens: 10}}}}
		c := wrap(t, Config{RateLimit: &RateLimitConfig{Requests: 1000, Bursty: true, TokensPerMinute: 1000}}, fake)
		req := llm.Prompt("x")
		req.MaxTokens = 500 // reserves ~505, uses 20: the rest comes back as credit
		for i := range 10 {
			if _, err := c.Generate(context.Background(), req); err != nil {
				t.Fatalf("call %d: %v: unused tokens were not given back", i, err)
			}
		}
		big := llm.Prompt("x")
		big.MaxTokens = 2000
		if _, err := c.Generate(context.Background(), big); llm.KindOf(err) != llm.KindRateLimited {
			t.Fatalf("over the token limit: %v", err)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	bad := []Config{
		{Retry: &RetryConfig{MaxAttempts: -1}},
		{Retry: &RetryConfig{Jitter: 1.5}},
		{Timeout: TimeoutConfig{Total: -1}},
		{RateLimit: &RateLimitConfig{}},
		{Bulkhead: &BulkheadConfig{}},
		{Hedge: &HedgeConfig{}},
		{Fallback: &FallbackConfig{Clients: []llm.Client{nil}}},
		{Breaker: &BreakerConfig{FailureRate: 2}},
		{Breaker: &BreakerConfig{}, SharedBreaker: breaker(t, BreakerConfig{})},
		{AdaptiveLimit: &AdaptiveLimitConfig{MinLimit: 10, MaxLimit: 5}},
		{Retry: &RetryConfig{BaseDelay: time.Second, MaxDelay: time.Millisecond}},
	}
	for i, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("config %d: no error", i)
		}
	}
	if _, err := NewBreaker(BreakerConfig{FailureRate: 2}); err == nil {
		t.Error("breaker: no error")
	}
	if _, err := New(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if _, err := Timeout(TimeoutConfig{}); err == nil {
		t.Error("Timeout without a bound: no error")
	}
}

// Each tenant has its own limiter, up to MaxTenants; the tenants beyond
// share one.
func TestRateLimitPerTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := wrap(t, Config{RateLimit: &RateLimitConfig{Requests: 1, Period: time.Hour, Bursty: true, PerTenant: true, MaxTenants: 2}}, &llmtest.Fake{})
		call := func(tenant string) error {
			req := llm.Prompt("x")
			req.Tenant = tenant
			_, err := c.Generate(context.Background(), req)
			return err
		}
		for _, tenant := range []string{"a", "b"} {
			if err := call(tenant); err != nil {
				t.Fatalf("tenant %s's first call: %v", tenant, err)
			}
			if err := call(tenant); llm.KindOf(err) != llm.KindRateLimited {
				t.Fatalf("tenant %s's second call: %v, want rate_limited", tenant, err)
			}
		}
		if err := call("c"); err != nil {
			t.Fatalf("the first tenant beyond MaxTenants: %v, want the shared limiter's permit", err)
		}
		if err := call("d"); llm.KindOf(err) != llm.KindRateLimited {
			t.Fatalf("a second tenant beyond MaxTenants: %v, want the shared limiter spent", err)
		}
	})
}
