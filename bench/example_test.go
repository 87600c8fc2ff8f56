package bench_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
	"github.com/llmkit/llmkit/resilience"
	"github.com/llmkit/llmkit/stack"
)

// The default stack over the simulated model, as the benchmarks build it:
// the second identical question is a cache hit, an auth error is neither
// retried nor degraded, and when the provider is down the fallback answers,
// degraded, instead of an error.
func Example_stack() {
	provider := sim.MustNew(sim.Config{TTFT: -1, PerToken: -1})
	store, _ := cache.NewRistretto(cache.RistrettoConfig{MaxCost: 16 << 20})
	defer store.Close()
	policies := resilience.DefaultConfig()
	policies.Retry.BaseDelay = time.Millisecond // short backoffs, for the example
	st, err := stack.New(provider, stack.Config{
		Registry:   prometheus.NewRegistry(),
		Models:     []string{"sim-1"},
		Endpoints:  []string{"faq"},
		Logger:     slog.New(slog.DiscardHandler),
		Store:      store,
		Resilience: &policies,
	})
	if err != nil {
		panic(err)
	}
	defer st.Close()

	ask := func(q string) {
		resp, err := st.Generate(context.Background(), &llm.Request{
			Model:       "sim-1",
			Messages:    []llm.Message{llm.User(q)},
			Temperature: llm.Ptr(0.0),
			Endpoint:    "faq",
		})
		switch {
		case errors.Is(err, llm.ErrRateLimited):
			fmt.Println("rate limited")
		case err != nil:
			fmt.Println("error:", llm.KindOf(err))
		default:
			fmt.Printf("cached=%v degraded=%v reason=%v\n", resp.Cached, resp.Degraded, resp.DegradedReason)
		}
		store.Wait() // the answer is stored before the next question
	}
	ask("Why is the sky blue?")
	ask("Why is the sky blue?")
	_ = provider.SetErrors(map[llm.Kind]float64{llm.KindAuth: 1})
	ask("And why is the sea blue?")
	_ = provider.SetErrors(map[llm.Kind]float64{llm.KindUnavailable: 1})
	ask("And why is grass green?")
	// Output:
	// cached=false degraded=false reason=unknown
	// cached=true degraded=false reason=unknown
	// error: auth
	// cached=false degraded=true reason=unavailable
}
