package resilience

import (
	"context"
	"sync"
	"testing"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// The closed breaker's lock-free path skips successes that would change
// nothing; a success after failures must still reset the consecutive count.
func TestBreakerSuccessResetsConsecutiveFailures(t *testing.T) {
	b := breaker(t, BreakerConfig{FailureThreshold: 5})
	fail := llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}
	ok := llmtest.Step{Text: "ok"}
	var steps []llmtest.Step
	for range 4 {
		steps = append(steps, fail)
	}
	steps = append(steps, ok, ok, ok) // the first resets, the others are skipped
	for range 4 {
		steps = append(steps, fail)
	}
	fake := &llmtest.Fake{Steps: steps}
	c := wrap(t, Config{Breaker: b}, fake)
	for range len(steps) {
		_, _ = c.Generate(context.Background(), llm.Prompt("x"))
	}
	if b.State() != llm.BreakerClosed {
		t.Fatalf("4 failures, a success, 4 failures: state %v, want closed", b.State())
	}
	fake.Default = fail
	_, _ = c.Generate(context.Background(), llm.Prompt("x"))
	if b.State() != llm.BreakerOpen {
		t.Fatalf("the fifth consecutive failure: state %v, want open", b.State())
	}
}

// Concurrent successes and failures on the lock-free path: under -race, and
// once every caller has failed, the breaker has seen the failures.
func TestBreakerConcurrentFastPath(t *testing.T) {
	b := breaker(t, BreakerConfig{FailureThreshold: 5})
	var mu sync.Mutex
	failing := false
	fake := &llmtest.Fake{Func: func(int, *llm.Request) llmtest.Step {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}
		}
		return llmtest.Step{}
	}}
	c := wrap(t, Config{Breaker: b}, fake)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				_, _ = c.Generate(context.Background(), llm.Prompt("x"))
			}
		})
	}
	wg.Wait()
	if b.State() != llm.BreakerClosed {
		t.Fatalf("after only successes: %v", b.State())
	}
	mu.Lock()
	failing = true
	mu.Unlock()
	for range 5 {
		_, _ = c.Generate(context.Background(), llm.Prompt("x"))
	}
	if b.State() != llm.BreakerOpen {
		t.Fatalf("after 5 consecutive failures: %v, want open", b.State())
	}
	before := fake.Calls()
	_, err := c.Generate(context.Background(), llm.Prompt("x"))
	if llm.KindOf(err) != llm.KindCircuitOpen || fake.Calls() != before {
		t.Fatalf("open breaker: %v, upstream calls %d→%d", err, before, fake.Calls())
	}
}
