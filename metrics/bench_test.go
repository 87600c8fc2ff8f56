package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/metrics"
)

var benchUp = llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return okResp, nil })

func benchClient(b *testing.B, c llm.Client) {
	b.Helper()
	req := &llm.Request{Model: "gpt-a", Endpoint: "chat"}
	ctx := context.Background()
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
func BenchmarkBaseline(b *testing.B) { benchClient(b, benchUp) }

// benchLeaf is benchUp as a provider adapter is: a client that emits no
// events and says so (llm.Subscriber), so that observers subscribe at
// construction.
type benchLeaf struct{}

func (benchLeaf) Generate(context.Context, *llm.Request) (*llm.Response, error) { return okResp, nil }
func (benchLeaf) Subscribe(llm.Observer) bool                                   { return true }

func BenchmarkPrometheus(b *testing.B) {
	// events: the default, over an adapter-like client: the observer is
	// subscribed once, at construction.
	b.Run("events", func(b *testing.B) {
		benchClient(b, must(metrics.Prometheus(prometheus.NewRegistry(), metrics.WithModels("gpt-a")))(benchLeaf{}))
	})
	// events-clientfunc: over an opaque ClientFunc, which refuses the
	// subscription, so each call registers the observer on its context.
	b.Run("events-clientfunc", func(b *testing.B) {
		benchClient(b, must(metrics.Prometheus(prometheus.NewRegistry(), metrics.WithModels("gpt-a")))(benchUp))
	})
	b.Run("no-events", func(b *testing.B) {
		benchClient(b, must(metrics.Prometheus(prometheus.NewRegistry(), metrics.WithModels("gpt-a"), metrics.WithEvents(false)))(benchUp))
	})
}

func BenchmarkOTelNoop(b *testing.B) {
	b.Run("explicit", func(b *testing.B) {
		benchClient(b, must(metrics.OTel(metrics.WithTracerProvider(tracenoop.NewTracerProvider()), metrics.WithMeterProvider(metricnoop.NewMeterProvider())))(benchUp))
	})
	b.Run("global", func(b *testing.B) { benchClient(b, must(metrics.OTel())(benchUp)) })
}

func BenchmarkLogDisabled(b *testing.B) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	benchClient(b, must(metrics.Log(logger))(benchUp))
}

func BenchmarkLogEnabled(b *testing.B) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	benchClient(b, must(metrics.Log(logger))(benchUp))
}

// BenchmarkLogSuccessSkipped is the usual production setting: the logger
// writes warnings and errors, and a successful call writes nothing, but the
// middleware must still time and watch the call in case it fails.
func BenchmarkLogSuccessSkipped(b *testing.B) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	benchClient(b, must(metrics.Log(logger))(benchUp))
}
