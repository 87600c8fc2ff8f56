package resilience

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// A Breaker used through permits (a cache's remote store) has the same
// states, probes and events as inside a resilience middleware.
func TestBreakerPermits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var states []llm.BreakerState
		ctx := llm.WithObserver(context.Background(), llm.ObserverFunc(func(_ context.Context, ev llm.Event) {
			if ev.Kind == llm.EventBreakerState && ev.Source == "redis" {
				states = append(states, ev.State)
			}
		}))
		b := breaker(t, BreakerConfig{Name: "redis", FailureThreshold: 3, Delay: 5 * time.Second,
			IsFailure: func(error) bool { return true }})
		down := errors.New("connection refused")
		fail := func() {
			p, ok := b.Acquire(ctx)
			if !ok {
				t.Fatal("a closed breaker refused a call")
			}
			p.Done(ctx, down)
		}
		succeed := func() {
			p, ok := b.Acquire(ctx)
			if !ok {
				t.Fatal("refused")
			}
			p.Done(ctx, nil)
		}
		fail()
		fail()
		succeed() // a success resets the count
		fail()
		fail()
		if b.State() != llm.BreakerClosed {
			t.Fatal("opened before 3 consecutive failures")
		}
		fail()
		if _, ok := b.Acquire(ctx); b.State() != llm.BreakerOpen || ok {
			t.Fatal("3 consecutive failures did not open it")
		}
		time.Sleep(5 * time.Second)
		probe, ok := b.Acquire(ctx)
		if !ok {
			t.Fatal("no probe after the delay")
		}
		if _, ok := b.Acquire(ctx); ok {
			t.Fatal("a second call got through while the probe runs")
		}
		probe.Done(ctx, down) // the probe fails: open again
		if _, ok := b.Acquire(ctx); b.State() != llm.BreakerOpen || ok {
			t.Fatal("a failed probe did not reopen it")
		}
		time.Sleep(5 * time.Second)
		probe, _ = b.Acquire(ctx)
		probe.Release() // not made: the slot is free again
		probe, ok = b.Acquire(ctx)
		if !ok {
			t.Fatal("a released probe slot was not given back")
		}
		probe.Done(ctx, nil)
		if _, ok := b.Acquire(ctx); b.State() != llm.BreakerClosed || !ok {
			t.Fatal("a good probe did not close it")
		}
		want := []llm.BreakerState{llm.BreakerOpen, llm.BreakerHalfOpen, llm.BreakerOpen, llm.BreakerHalfOpen, llm.BreakerClosed}
		if len(states) != len(want) {
			t.Fatalf("state events %v, want %v", states, want)
		}
		for i := range want {
			if states[i] != want[i] {
				t.Fatalf("state events %v, want %v", states, want)
			}
		}
	})
}

// The caller's own cancellation says nothing about the downstream.
func TestBreakerPermitCanceledNotCounted(t *testing.T) {
	b := breaker(t, BreakerConfig{FailureThreshold: 1, IsFailure: func(error) bool { return true }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, ok := b.Acquire(context.Background())
	if !ok {
		t.Fatal("refused")
	}
	p.Done(ctx, errors.New("context canceled"))
	if b.State() != llm.BreakerClosed {
		t.Fatalf("a canceled caller's failure opened the breaker: %v", b.State())
	}
}
