package resilience

import (
	"context"
	"errors"
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
		if ev := rec.of(llm.EventRejected); len(ev) != 1 || ev[0].Reason != "bulkhead" {
			t.Fatalf("events %+v", ev)
		}
	})
}

func TestPanicFreesSlots(t *testing.T) {
	b := breaker(t, BreakerConfig{FailureThreshold: 1})
	fake := &llmtest.Fake{Steps: []llmtest.Step{{Panic: "boom"}}}
	c := wrap(t, Config{Breaker: b, Bulkhead: &BulkheadConfig{MaxConcurrent: 1},
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
	b.cb.Close()
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
		if ev := rec.of(llm.EventRejected); len(ev) != 1 || ev[0].Reason != "rate_limit" {
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

func TestBudgetRefusesRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Default: llmtest.Step{Latency: time.Second, Err: llmtest.Error(llm.KindUnavailable)}}
		c := wrap(t, Config{Retry: exactRetry(3), Budget: &BudgetConfig{MaxRate: 0.1, MinConcurrency: 1}}, fake)
		ctx, rec := observed()
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() { c.Generate(ctx, llm.Prompt("x")) })
		}
		wg.Wait()
		if len(rec.of(llm.EventRejected)) == 0 {
			t.Fatal("the budget refused nothing")
		}
		for _, ev := range rec.of(llm.EventRejected) {
			if ev.Reason != "budget" {
				t.Fatalf("reason %q", ev.Reason)
			}
		}
		if fake.Calls() >= 30 {
			t.Fatalf("calls %d: every retry ran", fake.Calls())
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
	_ = errors.New
}
