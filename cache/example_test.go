package cache_test

import (
	"context"
	"fmt"
	"time"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// A deterministic request is answered once by the provider; the repeat is
// a hit, marked Cached. A sampled request (temperature unset) is not cached.
func ExampleMiddleware() {
	store, err := cache.NewRistretto(cache.RistrettoConfig{MaxCost: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	mw, err := cache.Middleware(store, cache.WithTTL(time.Hour))
	if err != nil {
		panic(err)
	}
	provider := &llmtest.Fake{Default: llmtest.Step{Text: "Paris."}}
	client := llm.Wrap(provider, mw)

	ask := func(req *llm.Request) {
		resp, err := client.Generate(context.Background(), req)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s cached=%v provider calls=%d\n", resp.Text, resp.Cached, provider.Calls())
	}
	req := llm.Prompt("Capital of France?")
	req.Temperature = llm.Ptr(0.0)
	ask(req)
	store.Wait() // ristretto applies sets asynchronously
	ask(req)
	ask(llm.Prompt("Capital of France?")) // temperature unset: not cached
	// Output:
	// Paris. cached=false provider calls=1
	// Paris. cached=true provider calls=1
	// Paris. cached=false provider calls=2
}

// Stale hands an expired entry, still within its grace window, to
// resilience's fallback when the provider is down.
func ExampleCache_Stale() {
	store, _ := cache.NewRistretto(cache.RistrettoConfig{})
	defer store.Close()
	c, _ := cache.New(store, cache.WithTTL(time.Nanosecond), cache.WithGrace(time.Hour))
	provider := &llmtest.Fake{Steps: []llmtest.Step{{Text: "yesterday's answer"}},
		Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
	client := c.Middleware()(provider)

	req := llm.Prompt("Status?")
	req.Temperature = llm.Ptr(0.0)
	client.Generate(context.Background(), req)
	store.Wait()
	_, err := client.Generate(context.Background(), req) // expired: asks the provider
	fmt.Println("provider:", llm.KindOf(err))
	if resp, ok := c.Stale(context.Background(), req); ok {
		fmt.Println("stale:", resp.Text, resp.Cached)
	}
	// Output:
	// provider: unavailable
	// stale: yesterday's answer true
}

// hits is a counting observer, given once at construction: it sees every
// call's cache events without being put on each call's context.
type hits struct{ n map[llm.EventKind]int }

func (h *hits) Observe(_ context.Context, ev llm.Event) { h.n[ev.Kind]++ }

func ExampleWithObserver() {
	store, _ := cache.NewRistretto(cache.RistrettoConfig{MaxCost: 8 << 20})
	defer store.Close()
	counts := &hits{n: map[llm.EventKind]int{}}
	mw, _ := cache.Middleware(store, cache.WithObserver(counts))
	client := llm.Wrap(&llmtest.Fake{Default: llmtest.Step{Text: "Paris."}}, mw)

	req := llm.Prompt("Capital of France?")
	req.Temperature = llm.Ptr(0.0)
	for range 3 {
		client.Generate(context.Background(), req)
		store.Wait()
	}
	fmt.Println("misses:", counts.n[llm.EventCacheMiss], "stores:", counts.n[llm.EventCacheStore], "hits:", counts.n[llm.EventCacheHit])
	// Output:
	// misses: 1 stores: 1 hits: 2
}
