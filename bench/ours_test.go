package bench_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/stack"
)

// ours is llmkit's default stack as a user builds it: stack.New with a
// registry and the label values to keep. Two settings differ from the
// zero Config:
//
//   - Logger: the default, slog.Default(), logs every success at Info to
//     stderr, a write per call into the benchmark's output. Ours takes a
//     logger at Warn, as a service might, which writes nothing for a
//     success (the reference has no logs at all); ours-logging writes the
//     Info line, as JSON to io.Discard, to show what it costs.
//   - Store: the store stack.New would build itself (ristretto, 64 MiB),
//     built here so that a benchmark can wait for it to apply what it was
//     given. Nothing changes on a call.
func init() {
	contenders = append(contenders,
		// The pins are today's counts, so that they only go down: the
		// budget (doc.go) is 12 per miss, not met yet (BENCHMARKS.md).
		contender{name: "ours", cache: true, allocs: &allocBudget{miss: 15, hit: 4},
			build: func(tb testing.TB, p llm.Client) (llm.Client, func()) { return buildOurs(tb, p, slog.LevelWarn) }},
		contender{name: "ours-logging", cache: true,
			build: func(tb testing.TB, p llm.Client) (llm.Client, func()) { return buildOurs(tb, p, slog.LevelInfo) }},
	)
}

func buildOurs(tb testing.TB, provider llm.Client, level slog.Level) (llm.Client, func()) {
	tb.Helper()
	store, err := cache.NewRistretto(cache.RistrettoConfig{MaxCost: 64 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(store.Close) // after st.Close: cleanups run last in, first out
	st, err := stack.New(provider, stack.Config{
		Registry:  prometheus.NewRegistry(),
		Models:    models,
		Endpoints: endpoints,
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: level})),
		Store:     store,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Error(err)
		}
	})
	return st, store.Wait
}
