package llm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/llmkit/llmkit/llm"
)

// countObserver is a comparable observer: a pointer.
type countObserver struct{ n map[llm.EventKind]int }

func (c *countObserver) Observe(_ context.Context, ev llm.Event) {
	if c.n == nil {
		c.n = map[llm.EventKind]int{}
	}
	c.n[ev.Kind]++
}

// leaf is a client that emits nothing and says so.
type leaf struct{}

func (leaf) Generate(context.Context, *llm.Request) (*llm.Response, error) {
	return &llm.Response{Text: "ok"}, nil
}
func (leaf) Subscribe(llm.Observer) bool { return true }

// emitter is a decorator that emits one retry event per call, to the
// observers subscribed to it and to those in the context.
type emitter struct {
	next llm.Client
	obs  llm.Observers
}

func (e *emitter) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	e.obs.Emit(ctx, llm.Event{Kind: llm.EventRetry, Request: req})
	return e.next.Generate(ctx, req)
}

func (e *emitter) Subscribe(o llm.Observer) bool {
	if !llm.Subscribe(e.next, o) {
		return false
	}
	e.obs.Add(o)
	return true
}

func TestSubscribeReachesDecoratorsThroughForwarders(t *testing.T) {
	inner := &emitter{next: leaf{}}
	c := llm.Wrap(inner, llm.Validate(llm.Limits{}), func(next llm.Client) llm.Client {
		return llm.Decorate(next, func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			return next.Generate(ctx, req)
		})
	})
	o := &countObserver{}
	if !llm.Subscribe(c, o) {
		t.Fatal("a chain of forwarders over an emitter over a leaf refused the subscription")
	}
	// The same comparable observer again: still one delivery per event.
	if !llm.Subscribe(c, o) {
		t.Fatal("second subscription refused")
	}
	if inner.obs.Len() != 1 {
		t.Fatalf("the emitter holds %d observers, want 1", inner.obs.Len())
	}
	// A context observer hears the event too, after the subscribed one.
	var order []string
	o2 := llm.ObserverFunc(func(context.Context, llm.Event) { order = append(order, "ctx") })
	inner.obs.Add(llm.ObserverFunc(func(context.Context, llm.Event) { order = append(order, "subscribed") }))
	ctx := llm.WithObserver(context.Background(), o2)
	if _, err := c.Generate(ctx, llm.Prompt("hi")); err != nil {
		t.Fatal(err)
	}
	if o.n[llm.EventRetry] != 1 {
		t.Fatalf("subscribed observer saw %d retries, want 1", o.n[llm.EventRetry])
	}
	if got := strings.Join(order, ","); got != "subscribed,ctx" {
		t.Fatalf("delivery order %q", got)
	}
	if !inner.obs.Observed(context.Background()) {
		t.Fatal("a set with subscribers reports nobody listening")
	}
}

// A chain that ends in an opaque client (a ClientFunc might call other
// decorated clients) refuses, and subscribes nobody on the way.
func TestSubscribeRefusedByOpaqueClient(t *testing.T) {
	inner := &emitter{next: llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return &llm.Response{}, nil
	})}
	c := llm.Wrap(inner, llm.Validate(llm.Limits{}))
	if llm.Subscribe(c, &countObserver{}) {
		t.Fatal("subscription through a ClientFunc accepted")
	}
	if inner.obs.Len() != 0 {
		t.Fatal("a refused subscription left an observer behind")
	}
	if llm.Subscribe(leaf{}, nil) {
		t.Fatal("nil observer accepted")
	}
	var nilSet *llm.Observers
	nilSet.Emit(context.Background(), llm.Event{Kind: llm.EventRetry}) // no panic
	if nilSet.Observed(context.Background()) || nilSet.Len() != 0 {
		t.Fatal("nil set reports observers")
	}
}

// Observers of types that cannot be compared (functions) are added, not
// compared, and emitting to them allocates nothing.
func TestObserversUncomparable(t *testing.T) {
	var s llm.Observers
	n := 0
	f := llm.ObserverFunc(func(context.Context, llm.Event) { n++ })
	s.Add(f)
	s.Add(f)
	s.Add(nil)
	if s.Len() != 2 {
		t.Fatalf("Len %d, want 2", s.Len())
	}
	ctx := context.Background()
	ev := llm.Event{Kind: llm.EventAttempt}
	if a := testing.AllocsPerRun(100, func() { s.Emit(ctx, ev) }); a != 0 {
		t.Fatalf("Observers.Emit allocates %v", a)
	}
	if n == 0 {
		t.Fatal("not delivered")
	}
}

// An observer that is both subscribed and on the call's context (it
// reached the context by another path: a second middleware on the same
// registry over an opaque client, say) hears each event once; other
// context observers, uncomparable ones included, still hear it.
func TestObserversEmitOnceToObserverAlsoOnContext(t *testing.T) {
	var s llm.Observers
	both := &countObserver{}
	s.Add(both)
	s.Add(llm.ObserverFunc(func(context.Context, llm.Event) {}))
	other := &countObserver{}
	funcCalls := 0
	ctx := llm.WithObserver(context.Background(), both)
	ctx = llm.WithObserver(ctx, other)
	ctx = llm.WithObserver(ctx, llm.ObserverFunc(func(context.Context, llm.Event) { funcCalls++ }))
	s.Emit(ctx, llm.Event{Kind: llm.EventRetry})
	if both.n[llm.EventRetry] != 1 || other.n[llm.EventRetry] != 1 || funcCalls != 1 {
		t.Fatalf("deliveries: both %d, other %d, func %d; want 1 each", both.n[llm.EventRetry], other.n[llm.EventRetry], funcCalls)
	}
}
