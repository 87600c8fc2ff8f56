package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/metrics"
)

// benchClient calls c from GOMAXPROCS goroutines at once: the middlewares'
// series and observers are shared by every call.
func benchClient(b *testing.B, ctx context.Context, c llm.Client) {
	b.Helper()
	req := &llm.Request{Model: "gpt-a", Endpoint: "chat"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Generate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBaseline is the upstream alone, to subtract.
func BenchmarkBaseline(b *testing.B) { benchClient(b, context.Background(), okClient) }

func BenchmarkPrometheus(b *testing.B) {
	newMW := func(opts ...metrics.Option) llm.Middleware {
		opts = append(opts, metrics.WithModels("gpt-a"), metrics.WithEndpoints("chat"))
		return must(metrics.NewPrometheus(prometheus.NewRegistry(), opts...)).Middleware()
	}
	b.Run("untraced", func(b *testing.B) { benchClient(b, context.Background(), newMW()(okClient)) })
	b.Run("classic", func(b *testing.B) {
		benchClient(b, context.Background(), newMW(metrics.WithNativeHistograms(0))(okClient))
	})
	// sampled: every call carries a sampled span, so it leaves exemplars.
	b.Run("sampled", func(b *testing.B) { benchClient(b, traced(1, trace.FlagsSampled), newMW()(okClient)) })
}

// BenchmarkPrometheusObserve is the cost of one event reported to the
// Prometheus by a decorator it was given to.
func BenchmarkPrometheusObserve(b *testing.B) {
	p := must(metrics.NewPrometheus(prometheus.NewRegistry()))
	ev := llm.Event{Kind: llm.EventAttempt, Attempt: 1}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Observe(context.Background(), ev)
		}
	})
}

func BenchmarkOTelNoop(b *testing.B) {
	b.Run("explicit", func(b *testing.B) {
		mw := must(metrics.OTel(metrics.WithTracerProvider(tracenoop.NewTracerProvider()), metrics.WithMeterProvider(metricnoop.NewMeterProvider())))
		benchClient(b, context.Background(), mw(okClient))
	})
	b.Run("global", func(b *testing.B) { benchClient(b, context.Background(), must(metrics.OTel())(okClient)) })
}

func BenchmarkLog(b *testing.B) {
	for name, level := range map[string]slog.Level{
		"disabled": slog.LevelError + 1,
		"enabled":  slog.LevelInfo,
		// The usual production setting: a successful call writes nothing,
		// but the middleware still times and watches it in case it fails.
		"success-skipped": slog.LevelWarn,
	} {
		logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: level}))
		b.Run(name, func(b *testing.B) { benchClient(b, context.Background(), must(metrics.Log(logger))(okClient)) })
	}
}
