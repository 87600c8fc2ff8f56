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
	"github.com/llmkit/llmkit/metrics"
	"github.com/llmkit/llmkit/profiling"
	"github.com/llmkit/llmkit/resilience"
)

// The README's recommended stack, compiled and run: the second identical
// question is a cache hit, and when the provider fails the answer is
// degraded, not an error.
func Example_stack() {
	provider := sim.MustNew(sim.Config{TTFT: -1, PerToken: -1})

	prom, _ := metrics.Prometheus(prometheus.NewRegistry(), metrics.WithModels("sim-1"))
	traces, _ := metrics.OTel()
	logs, _ := metrics.Log(slog.New(slog.DiscardHandler))
	labels, _ := profiling.Labels()
	store, _ := cache.NewRistretto(cache.RistrettoConfig{MaxCost: 16 << 20})
	defer store.Close()
	responses, _ := cache.New(store, cache.WithTTL(time.Hour))
	cfg := resilience.DefaultConfig()
	cfg.Fallback.Stale = responses.Stale
	cfg.Retry.BaseDelay = time.Millisecond // short backoffs, for the example
	policies, _ := resilience.New(cfg)

	client := llm.Wrap(provider, traces, prom, logs, labels, responses.Middleware(), policies)

	ask := func(q string) {
		resp, err := client.Generate(context.Background(), &llm.Request{
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
		store.Wait()
	}
	ask("Why is the sky blue?")
	ask("Why is the sky blue?")
	_ = provider.SetErrors(map[llm.Kind]float64{llm.KindAuth: 1})
	ask("And why is the sea blue?") // auth errors are not retried nor degraded
	_ = provider.SetErrors(map[llm.Kind]float64{llm.KindUnavailable: 1})
	ask("And why is grass green?") // the provider is down: the static fallback answers
	// Output:
	// cached=false degraded=false reason=unknown
	// cached=true degraded=false reason=unknown
	// error: auth
	// cached=false degraded=true reason=unavailable
}
