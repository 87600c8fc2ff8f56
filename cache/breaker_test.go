package cache

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
)

func TestBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var states []llm.BreakerState
		ctx := llm.WithObserver(context.Background(), llm.ObserverFunc(func(_ context.Context, ev llm.Event) {
			if ev.Kind == llm.EventBreakerState && ev.Source == "redis" {
				states = append(states, ev.State)
			}
		}))
		b := &breaker{failures: 3, cooldown: 5 * time.Second, source: "redis"}
		fail := func() {
			if !b.allow(ctx) {
				t.Fatal("a closed breaker refused a call")
			}
			b.done(ctx, false)
		}
		fail()
		fail()
		b.allow(ctx)
		b.done(ctx, true) // a success resets the count
		fail()
		fail()
		if b.State() != llm.BreakerClosed {
			t.Fatal("opened before 3 consecutive failures")
		}
		fail()
		if b.State() != llm.BreakerOpen || b.allow(ctx) {
			t.Fatal("3 consecutive failures did not open it")
		}
		time.Sleep(5 * time.Second)
		if !b.allow(ctx) {
			t.Fatal("no probe after the cooldown")
		}
		if b.allow(ctx) {
			t.Fatal("a second call got through while the probe runs")
		}
		b.done(ctx, false) // the probe fails: open again
		if b.State() != llm.BreakerOpen || b.allow(ctx) {
			t.Fatal("a failed probe did not reopen it")
		}
		time.Sleep(5 * time.Second)
		b.allow(ctx)
		b.done(ctx, true)
		if b.State() != llm.BreakerClosed || !b.allow(ctx) {
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
