package bench_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/metrics"
	"github.com/llmkit/llmkit/profiling"
	"github.com/llmkit/llmkit/resilience"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// answer is what the instant provider returns: a canned response, as a
// loopback server would, so that only llmkit's own work is measured.
var answer = &llm.Response{Text: "ok", Model: "m", FinishReason: llm.FinishStop,
	Usage: llm.Usage{InputTokens: 10, OutputTokens: 2}}

// instantProvider answers at once with the canned answer. Like the
// adapters, it emits no events and says so (llm.Subscriber), so the
// observers that can subscribe at construction do, as over a real
// provider.
type instantProvider struct{}

func (instantProvider) Generate(context.Context, *llm.Request) (*llm.Response, error) {
	return answer, nil
}
func (instantProvider) Subscribe(llm.Observer) bool { return true }

var instant llm.Client = instantProvider{}

// stack builds the recommended stack (DESIGN.md) around instant:
// OTel → Prometheus → Log → pprof labels → cache → resilience → provider,
// with a no-op tracer (the global default), a log level that drops
// successes, and the default resilience policies (fallback, total and
// attempt timeouts, retry, circuit breaker).
func stack(tb testing.TB, store cache.Store) llm.Client {
	tb.Helper()
	must := func(mw llm.Middleware, err error) llm.Middleware {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return mw
	}
	otel := must(metrics.OTel())
	prom := must(metrics.Prometheus(prometheus.NewRegistry(), metrics.WithModels("m"), metrics.WithEndpoints("chat")))
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	logs := must(metrics.Log(logger))
	labels := must(profiling.Labels(profiling.Endpoints("chat"), profiling.Models("m")))
	c, err := cache.New(store, cache.WithTTL(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	res := must(resilience.New(resilience.DefaultConfig()))
	return llm.Wrap(instant, otel, prom, logs, labels, c.Middleware(), res)
}

func request(i int) *llm.Request {
	return &llm.Request{
		Model:       "m",
		Messages:    []llm.Message{llm.User(fmt.Sprintf("question number %d about the refund policy", i))},
		Temperature: llm.Ptr(0.0),
		Endpoint:    "chat",
	}
}

// missStore never keeps anything: every call through it is a cache miss
// that pays for the key, the lookup and the store, as a miss on a full
// cache does.
type missStore struct{}

func (missStore) Get(context.Context, cache.Key) (cache.Entry, bool, error) {
	return cache.Entry{}, false, nil
}
func (missStore) Set(context.Context, cache.Key, cache.Entry, time.Duration) error { return nil }
func (missStore) Name() string                                                     { return "miss" }

func newRistretto(tb testing.TB) *cache.Ristretto {
	r, err := cache.NewRistretto(cache.RistrettoConfig{MaxCost: 64 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Close)
	return r
}

// BenchmarkStack is one call through the whole recommended stack.
//
//   - miss: the provider is called (the cache misses), every decorator runs;
//   - hit: the answer comes from ristretto.
func BenchmarkStack(b *testing.B) {
	ctx := context.Background()
	b.Run("miss", func(b *testing.B) {
		c := stack(b, missStore{})
		req := request(0)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Generate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("miss-caller-deadline", func(b *testing.B) {
		// The caller's own deadline (30 s, as a service's request timeout)
		// is sooner than the attempt timeout (1 min): resilience adds no
		// timer of its own.
		c := stack(b, missStore{})
		req := request(0)
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Generate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("miss-parallel", func(b *testing.B) {
		c := stack(b, missStore{})
		var ids atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			// Each goroutine asks its own question: identical misses in
			// flight at once would be coalesced, which is not what this
			// measures.
			req := request(int(ids.Add(1)))
			for pb.Next() {
				if _, err := c.Generate(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("hit", func(b *testing.B) {
		store := newRistretto(b)
		c := stack(b, store)
		req := request(1)
		if _, err := c.Generate(ctx, req); err != nil {
			b.Fatal(err)
		}
		store.Wait()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Generate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hit-parallel", func(b *testing.B) {
		store := newRistretto(b)
		c := stack(b, store)
		req := request(2)
		if _, err := c.Generate(ctx, req); err != nil {
			b.Fatal(err)
		}
		store.Wait()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Generate(ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// The allocation budgets of the whole stack, pinned.
func TestStackAllocs(t *testing.T) {
	ctx := context.Background()
	miss := stack(t, missStore{})
	req := request(3)
	if n := testing.AllocsPerRun(200, func() { _, _ = miss.Generate(ctx, req) }); n > missBudget {
		t.Errorf("a cache miss through the whole stack allocates %v times, budget %v", n, missBudget)
	}
	store := newRistretto(t)
	hit := stack(t, store)
	if _, err := hit.Generate(ctx, req); err != nil {
		t.Fatal(err)
	}
	store.Wait()
	resp, err := hit.Generate(ctx, req)
	if err != nil || !resp.Cached {
		t.Fatalf("second call: cached=%v err=%v, want a hit", resp != nil && resp.Cached, err)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = hit.Generate(ctx, req) }); n > hitBudget {
		t.Errorf("a cache hit through the whole stack allocates %v times, budget %v", n, hitBudget)
	}
}

// BenchmarkLayers adds the stack's layers one at a time, innermost first,
// so the cost of each is the difference between neighbouring lines. The
// cache misses on every call (missStore).
func BenchmarkLayers(b *testing.B) {
	ctx := context.Background()
	must := func(mw llm.Middleware, err error) llm.Middleware {
		if err != nil {
			b.Fatal(err)
		}
		return mw
	}
	c, err := cache.New(missStore{}, cache.WithTTL(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	layers := []struct {
		name string
		mw   llm.Middleware
	}{
		{"resilience", must(resilience.New(resilience.DefaultConfig()))},
		{"cache", c.Middleware()},
		{"labels", must(profiling.Labels(profiling.Endpoints("chat"), profiling.Models("m")))},
		{"log", must(metrics.Log(logger))},
		{"prometheus", must(metrics.Prometheus(prometheus.NewRegistry(), metrics.WithModels("m"), metrics.WithEndpoints("chat")))},
		{"otel", must(metrics.OTel())},
	}
	req := request(0)
	client := instant
	b.Run("0-provider", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = client.Generate(ctx, req)
		}
	})
	for i, l := range layers {
		client = l.mw(client)
		c := client
		b.Run(fmt.Sprintf("%d-%s", i+1, l.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Generate(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
