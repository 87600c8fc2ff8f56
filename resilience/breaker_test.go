package resilience

import (
	"context"
	"slices"
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
		c := wrap(t, Config{SharedBreaker: b}, fake)
		ctx, rec := observed()
		for range 5 {
			c.Generate(ctx, llm.Prompt("x"))
		}
		if b.State() != llm.BreakerOpen {
			t.Fatalf("state %v after 5 failures, want open", b.State())
		}
		if ev := rec.Events(llm.EventBreakerState); len(ev) != 1 || ev[0].State != llm.BreakerOpen || ev[0].Source != "primary" {
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
		if got := rec.Count(llm.EventBreakerState); got != len(want) {
			t.Fatalf("%d breaker events through llm.Emit, want %d", got, len(want))
		}
	})
}

func TestBackendDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker(t, BreakerConfig{})
		fake := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
		c := wrap(t, Config{Retry: exactRetry(3), SharedBreaker: b}, fake)
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
		c := wrap(t, Config{SharedBreaker: b, Timeout: TimeoutConfig{Attempt: 5 * time.Second}}, fake)
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
		c := wrap(t, Config{SharedBreaker: b, Retry: exactRetry(3), Timeout: TimeoutConfig{Attempt: 10 * time.Second}}, fake)
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
		force(b, true)
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

// A success after failures resets the consecutive count.
func TestBreakerSuccessResetsConsecutiveFailures(t *testing.T) {
	b := breaker(t, BreakerConfig{FailureThreshold: 5})
	fail := llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}
	ok := llmtest.Step{Text: "ok"}
	var steps []llmtest.Step
	for range 4 {
		steps = append(steps, fail)
	}
	steps = append(steps, ok, ok, ok)
	for range 4 {
		steps = append(steps, fail)
	}
	fake := &llmtest.Fake{Steps: steps}
	c := wrap(t, Config{SharedBreaker: b}, fake)
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

// Concurrent successes and failures: under -race, and once every caller
// has failed, the breaker has seen the failures.
func TestBreakerConcurrentCallers(t *testing.T) {
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
	c := wrap(t, Config{SharedBreaker: b}, fake)
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

// A probe whose caller cancels it while it is in flight frees its slot at
// once: another caller takes it while the other probe still runs, never more
// probes than Probes run at a time, and the breaker closes on the probes
// that did answer. The cancellation is no state change.
func TestCanceledProbeFreesItsSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &llmtest.Recorder{}
		b := breaker(t, BreakerConfig{FailureThreshold: 1, Delay: time.Minute, Probes: 2, Observer: rec})
		fake := &llmtest.Fake{Steps: []llmtest.Step{{Err: llmtest.Error(llm.KindUnavailable)}},
			Default: llmtest.Step{Latency: 10 * time.Second}}
		c := wrap(t, Config{SharedBreaker: b}, fake)
		c.Generate(context.Background(), llm.Prompt("x"))
		time.Sleep(time.Minute)

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := make([]error, 3)
		wg.Go(func() { _, errs[0] = c.Generate(ctx, llm.Prompt("canceled probe")) })
		wg.Go(func() { _, errs[1] = c.Generate(context.Background(), llm.Prompt("probe")) })
		synctest.Wait()
		if _, err := c.Generate(context.Background(), llm.Prompt("x")); llm.KindOf(err) != llm.KindCircuitOpen {
			t.Errorf("a third call while 2 probes run: %v, want circuit_open", err)
		}
		time.Sleep(time.Second)
		cancel()
		synctest.Wait()
		if llm.KindOf(errs[0]) != llm.KindCanceled {
			t.Errorf("canceled probe: %v", errs[0])
		}
		wg.Go(func() { _, errs[2] = c.Generate(context.Background(), llm.Prompt("takes the freed slot")) })
		synctest.Wait()
		if fake.InFlight() != 2 {
			t.Errorf("%d probes in flight after the cancel, want 2: the slot was not freed", fake.InFlight())
		}
		if _, err := c.Generate(context.Background(), llm.Prompt("x")); llm.KindOf(err) != llm.KindCircuitOpen {
			t.Errorf("a call beyond the 2 slots: %v, want circuit_open", err)
		}
		wg.Wait()
		if errs[1] != nil || errs[2] != nil || b.State() != llm.BreakerClosed {
			t.Fatalf("probes %v, %v; state %v: want both answered and the breaker closed", errs[1], errs[2], b.State())
		}
		var states []llm.BreakerState
		for _, ev := range rec.Events(llm.EventBreakerState) {
			states = append(states, ev.State)
		}
		if want := []llm.BreakerState{llm.BreakerOpen, llm.BreakerHalfOpen, llm.BreakerClosed}; !slices.Equal(states, want) {
			t.Fatalf("state changes %v, want %v", states, want)
		}
	})
}

// A slot freed in one half-open period is not carried into the next: the
// new half-open state admits exactly Probes calls.
func TestFreedProbeSlotEndsWithItsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := breaker(t, BreakerConfig{FailureThreshold: 1, Delay: time.Minute, Probes: 2})
		open := func() {
			p, _ := b.Acquire(context.Background())
			p.Done(context.Background(), llmtest.Error(llm.KindUnavailable))
		}
		open()
		time.Sleep(time.Minute)
		canceled, _ := b.Acquire(context.Background())
		failing, ok := b.Acquire(context.Background())
		if !ok {
			t.Fatal("the second probe was refused")
		}
		canceled.Release()
		failing.Done(context.Background(), llmtest.Error(llm.KindUnavailable))
		if b.State() != llm.BreakerOpen {
			t.Fatalf("state %v after a failed probe, want open", b.State())
		}
		time.Sleep(time.Minute)
		admitted := 0
		for range 3 {
			if _, ok := b.Acquire(context.Background()); ok {
				admitted++
			}
		}
		if admitted != 2 {
			t.Fatalf("%d probes admitted in the new half-open state, want 2", admitted)
		}
	})
}

// The breaker New builds from DefaultConfig reports its changes to
// Config.Observer, once each, with the context of the call that caused
// them.
func TestDefaultBreakerReportsToConfigObserver(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Retry = &RetryConfig{MaxAttempts: 1}
	cfg.Fallback = nil
	own := &llmtest.Recorder{}
	cfg.Observer = own
	c := wrap(t, cfg, &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}})
	for range 4 {
		c.Generate(context.Background(), llm.Prompt("x"))
	}
	if own.Count(llm.EventBreakerState) != 0 {
		t.Fatalf("a change after 4 failures: %+v", own.Events(llm.EventBreakerState))
	}
	ctx, onCall := observed()
	c.Generate(ctx, llm.Prompt("x"))
	for _, r := range []*llmtest.Recorder{own, onCall} {
		if ev := r.Events(llm.EventBreakerState); len(ev) != 1 || ev[0].State != llm.BreakerOpen || ev[0].Source != "default" {
			t.Fatalf("breaker events %+v, want one open from %q", ev, "default")
		}
	}
}

// A breaker shared by two middlewares reports each change once to the
// observer it was built with, whichever middleware's call caused it, and to
// the observers on that call's context; the middlewares' own Config.Observer
// hear the rest of their events, not the shared breaker's.
func TestSharedBreakerReportsToItsBuilder(t *testing.T) {
	builder, onA, onB := &llmtest.Recorder{}, &llmtest.Recorder{}, &llmtest.Recorder{}
	br := breaker(t, BreakerConfig{Name: "shared", FailureThreshold: 2, Delay: time.Hour, Observer: builder})
	failing := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
	a := wrap(t, Config{SharedBreaker: br, Observer: onA}, failing)
	b := wrap(t, Config{SharedBreaker: br, Observer: onB}, failing)
	a.Generate(context.Background(), llm.Prompt("q"))
	ctx, onCall := observed()
	b.Generate(ctx, llm.Prompt("q")) // the second failure opens it
	if ev := builder.Events(llm.EventBreakerState); len(ev) != 1 || ev[0].State != llm.BreakerOpen || ev[0].Source != "shared" {
		t.Fatalf("the builder's observer heard %+v, want one open", ev)
	}
	if ev := onCall.Events(llm.EventBreakerState); len(ev) != 1 {
		t.Fatalf("the causing call's context heard %+v, want one change", ev)
	}
	if onA.Count(llm.EventBreakerState)+onB.Count(llm.EventBreakerState) != 0 || onB.Count(llm.EventAttempt) != 1 {
		t.Fatalf("middleware observers: a %+v, b %+v", kinds(onA), kinds(onB))
	}
}
