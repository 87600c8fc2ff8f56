package resilience

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// kinds returns the multiset of event kinds r saw, sorted.
func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.events))
	for _, e := range r.events {
		out = append(out, fmt.Sprintf("%s/%s/%s", e.Kind, e.Reason, e.Source))
	}
	slices.Sort(out)
	return out
}

// An observer subscribed at construction hears exactly what one registered
// in the call's context hears: attempts, retries, breaker changes,
// rejections, hedges and fallbacks, from every emit site.
func TestSubscribedObserverHearsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Func: func(n int, _ *llm.Request) llmtest.Step {
			if n < 8 {
				return llmtest.Step{Err: &llm.Error{Kind: llm.KindUnavailable, Status: 503}}
			}
			return llmtest.Step{Text: "ok", Latency: 50 * time.Millisecond}
		}}
		br := breaker(t, BreakerConfig{FailureThreshold: 4, Delay: time.Second})
		c := wrap(t, Config{
			Fallback: &FallbackConfig{},
			Bulkhead: &BulkheadConfig{MaxConcurrent: 1},
			Retry:    &RetryConfig{MaxAttempts: 2, BaseDelay: time.Millisecond, NoJitter: true},
			Breaker:  br,
			Hedge:    &HedgeConfig{Delay: 10 * time.Millisecond},
		}, fake)
		sub := &recorder{}
		if !llm.Subscribe(c, sub) {
			t.Fatal("resilience over a Fake refused the subscription")
		}
		ctx, viaCtx := observed()
		for range 12 {
			c.Generate(ctx, llm.Prompt("q"))
			time.Sleep(2 * time.Second) // fake time: let the open breaker half-open
		}
		// A bulkhead rejection: a call in flight holds the only slot.
		slow := wrap(t, Config{Bulkhead: &BulkheadConfig{MaxConcurrent: 1}}, &llmtest.Fake{Default: llmtest.Step{Hang: true}})
		if !llm.Subscribe(slow, sub) {
			t.Fatal("refused")
		}
		hctx, cancel := context.WithCancel(ctx)
		go slow.Generate(hctx, llm.Prompt("q"))
		synctest.Wait()
		slow.Generate(ctx, llm.Prompt("q"))
		cancel()
		synctest.Wait()

		got, want := sub.kinds(), viaCtx.kinds()
		if !slices.Equal(got, want) {
			t.Fatalf("subscribed observer heard\n%v\ncontext observer heard\n%v", got, want)
		}
		for _, k := range []llm.EventKind{llm.EventAttempt, llm.EventRetry, llm.EventBreakerState, llm.EventRejected, llm.EventFallback, llm.EventHedge} {
			if len(sub.of(k)) == 0 {
				t.Errorf("no %s event; the scenario should produce one (got %v)", k, got)
			}
		}
	})
}

// Through an opaque client nothing is subscribed and the call's context
// stays the only way to listen.
func TestSubscribeRefusedOverClientFunc(t *testing.T) {
	c := wrap(t, Config{Retry: exactRetry(2)}, llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return &llm.Response{Text: "ok"}, nil
	}))
	sub := &recorder{}
	if llm.Subscribe(c, sub) {
		t.Fatal("accepted through a ClientFunc")
	}
	c.Generate(context.Background(), llm.Prompt("q"))
	if len(sub.kinds()) != 0 {
		t.Fatal("a refused observer heard events")
	}
}

// Fallback clients are other clients: a subscription could not reach the
// decorators inside them, so the middleware refuses and the observer
// stays on the context.
func TestSubscribeRefusedWithFallbackClients(t *testing.T) {
	c := wrap(t, Config{Fallback: &FallbackConfig{Clients: []llm.Client{&llmtest.Fake{}}}}, &llmtest.Fake{})
	if llm.Subscribe(c, &recorder{}) {
		t.Fatal("accepted with fallback clients")
	}
}

// A breaker shared by two clients reports its changes to the observers
// subscribed through either, whichever client's call saw the change; an
// observer subscribed through both, or also on the call's context, hears
// each change once.
func TestSharedBreakerReportsToEverySubscriber(t *testing.T) {
	failing := &llmtest.Fake{Default: llmtest.Step{Err: &llm.Error{Kind: llm.KindUnavailable, Status: 503}}}
	br := breaker(t, BreakerConfig{FailureThreshold: 2, Delay: time.Hour})
	a := wrap(t, Config{Breaker: br}, failing)
	b := wrap(t, Config{Breaker: br}, failing)
	onA, both := &recorder{}, &recorder{}
	if !llm.Subscribe(a, onA) || !llm.Subscribe(a, both) || !llm.Subscribe(b, both) {
		t.Fatal("a subscription was refused")
	}
	ctx := llm.WithObserver(context.Background(), both)
	for range 2 { // only b's calls: they open the breaker
		b.Generate(ctx, llm.Prompt("q"))
	}
	want := []string{"breaker_state//" + br.Name()}
	count := func(r *recorder) []string {
		var out []string
		for _, k := range r.kinds() {
			if k == want[0] {
				out = append(out, k)
			}
		}
		return out
	}
	if got := count(onA); !slices.Equal(got, want) {
		t.Fatalf("an observer subscribed through a heard %v of a change b's calls made, want %v", got, want)
	}
	if got := count(both); !slices.Equal(got, want) {
		t.Fatalf("an observer subscribed through both and on the context heard %v, want %v", got, want)
	}
}
