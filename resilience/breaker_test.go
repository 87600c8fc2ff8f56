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

func TestBreakerBoundaries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fromObserver []llm.BreakerState
		var b *Breaker
		b = breaker(t, BreakerConfig{Name: "primary", Delay: time.Minute, Probes: 2,
			Observer: llm.ObserverFunc(func(ctx context.Context, ev llm.Event) {
				_ = b.State() // reading the breaker from its observer must not deadlock
				fromObserver = append(fromObserver, ev.State)
			})})
		fail := llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}
		fake := &llmtest.Fake{Steps: []llmtest.Step{fail, fail, fail, fail, fail}}
		c := wrap(t, Config{Breaker: b}, fake)
		ctx, rec := observed()
		for range 5 {
			c.Generate(ctx, llm.Prompt("x"))
		}
		if b.State() != llm.BreakerOpen {
			t.Fatalf("state %v after 5 failures, want open", b.State())
		}
		if ev := rec.of(llm.EventBreakerState); len(ev) != 1 || ev[0].State != llm.BreakerOpen || ev[0].Source != "primary" {
			t.Fatalf("breaker events %+v", ev)
		}

		time.Sleep(time.Minute - time.Nanosecond)
		_, err := c.Generate(ctx, llm.Prompt("x"))
		if llm.KindOf(err) != llm.KindCircuitOpen || llm.RetryAfterOf(err) != time.Nanosecond {
			t.Fatalf("at delay-1ns: %v (RetryAfter %v), want circuit_open with 1ns", err, llm.RetryAfterOf(err))
		}
		if b.State() != llm.BreakerOpen || fake.Calls() != 5 {
			t.Fatalf("at delay-1ns: state %v, calls %d", b.State(), fake.Calls())
		}
		time.Sleep(time.Nanosecond)
		if b.State() != llm.BreakerHalfOpen {
			t.Fatalf("at delay: state %v, want half_open", b.State())
		}

		// Exactly 2 probes are admitted.
		fake.Default = llmtest.Step{Latency: time.Second}
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range 5 {
			wg.Go(func() { _, errs[i] = c.Generate(ctx, llm.Prompt("x")) })
		}
		synctest.Wait()
		if fake.InFlight() != 2 {
			t.Fatalf("%d probes in flight, want exactly 2", fake.InFlight())
		}
		wg.Wait()
		rejected := 0
		for _, err := range errs {
			if llm.KindOf(err) == llm.KindCircuitOpen {
				rejected++
			}
		}
		if rejected != 3 || b.State() != llm.BreakerClosed {
			t.Fatalf("rejected %d, state %v: want 3 rejected and the breaker closed by 2 successes", rejected, b.State())
		}

		// Open again; one failed probe reopens it.
		fake.Default = fail
		for range 5 {
			c.Generate(ctx, llm.Prompt("x"))
		}
		time.Sleep(time.Minute)
		c.Generate(ctx, llm.Prompt("x"))
		if b.State() != llm.BreakerOpen {
			t.Fatalf("after a failed probe: %v, want open", b.State())
		}
		want := []llm.BreakerState{llm.BreakerOpen, llm.BreakerHalfOpen, llm.BreakerClosed, llm.BreakerOpen, llm.BreakerHalfOpen, llm.BreakerOpen}
		if len(fromObserver) != len(want) {
			t.Fatalf("observer saw %v, want %v", fromObserver, want)
		}
		for i := range want {
			if fromObserver[i] != want[i] {
				t.Fatalf("observer saw %v, want %v", fromObserver, want)
			}
		}
		if got := len(rec.of(llm.EventBreakerState)); got != len(want) {
			t.Fatalf("%d breaker events through llm.Emit, want %d", got, len(want))
		}
	})
}

func TestBackendDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker(t, BreakerConfig{})
		fake := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
		c := wrap(t, Config{Retry: exactRetry(3), Breaker: b}, fake)
		for range 2 {
			c.Generate(context.Background(), llm.Prompt("x"))
		}
		if b.State() != llm.BreakerOpen {
			t.Fatalf("state %v, want open", b.State())
		}
		calls := fake.Calls()
		for range 100 {
			_, err := c.Generate(context.Background(), llm.Prompt("x"))
			if llm.KindOf(err) != llm.KindCircuitOpen || llm.RetryAfterOf(err) <= 0 {
				t.Fatalf("err %v, want circuit_open with RetryAfter", err)
			}
		}
		if fake.Calls() != calls {
			t.Fatalf("rejected calls made %d upstream calls, want 0", fake.Calls()-calls)
		}
	})
}

func TestHungProbeResolvedByAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker(t, BreakerConfig{FailureThreshold: 1, Delay: time.Minute})
		fake := &llmtest.Fake{Steps: []llmtest.Step{{Err: llmtest.Error(llm.KindUnavailable)}}, Default: llmtest.Step{Hang: true}}
		c := wrap(t, Config{Breaker: b, Timeout: TimeoutConfig{Attempt: 5 * time.Second}}, fake)
		c.Generate(context.Background(), llm.Prompt("x"))
		time.Sleep(time.Minute)
		start := time.Now()
		_, err := c.Generate(context.Background(), llm.Prompt("probe"))
		if llm.KindOf(err) != llm.KindTimeout || time.Since(start) != 5*time.Second {
			t.Fatalf("probe: %v after %v, want timeout after 5s", err, time.Since(start))
		}
		if b.State() != llm.BreakerOpen {
			t.Fatalf("state %v after the timed-out probe, want open", b.State())
		}
		time.Sleep(time.Minute)
		if b.State() != llm.BreakerHalfOpen {
			t.Fatalf("the probe slot was not freed: state %v", b.State())
		}
	})
}

func TestCallersCancelKeepsBreakerClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker(t, BreakerConfig{FailureThreshold: 2})
		fake := &llmtest.Fake{Default: llmtest.Step{Latency: time.Second}}
		c := wrap(t, Config{Breaker: b, Retry: exactRetry(3), Timeout: TimeoutConfig{Attempt: 10 * time.Second}}, fake)
		var wg sync.WaitGroup
		errs := make([]error, 40)
		for i := range 40 {
			wg.Go(func() {
				ctx := context.Background()
				if i%2 == 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
					defer cancel()
				}
				_, errs[i] = c.Generate(ctx, llm.Prompt("x"))
			})
		}
		wg.Wait()
		for i, err := range errs {
			if i%2 == 1 && err != nil {
				t.Fatalf("caller %d: %v", i, err)
			}
			if i%2 == 0 && err == nil {
				t.Fatalf("caller %d: its own deadline passed but it succeeded", i)
			}
		}
		if b.State() != llm.BreakerClosed {
			t.Fatalf("state %v: the callers' own cancellations were charged", b.State())
		}
		// A canceled half-open probe frees its slot.
		b.cb.Open()
		time.Sleep(time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		if _, err := c.Generate(ctx, llm.Prompt("probe")); llm.KindOf(err) != llm.KindCanceled {
			t.Fatalf("canceled probe: %v", err)
		}
		if _, err := c.Generate(context.Background(), llm.Prompt("probe 2")); err != nil {
			t.Fatalf("after a canceled probe: %v, want the slot free", err)
		}
		if b.State() != llm.BreakerClosed {
			t.Fatalf("state %v", b.State())
		}
	})
}

func TestAttemptTimeoutVersusCallerCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Default: llmtest.Step{Hang: true}}
		c := wrap(t, Config{Timeout: TimeoutConfig{Attempt: time.Second}}, fake)
		_, err := c.Generate(context.Background(), llm.Prompt("x"))
		if llm.KindOf(err) != llm.KindTimeout {
			t.Fatalf("attempt timeout: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(500*time.Millisecond, cancel)
		if _, err := c.Generate(ctx, llm.Prompt("x")); llm.KindOf(err) != llm.KindCanceled {
			t.Fatalf("caller cancel: %v, want canceled", err)
		}
	})
}
