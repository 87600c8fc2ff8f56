package queue

import (
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// tracingPlugins returns River's OpenTelemetry middleware (otelriver) for
// cfg's providers, or none when both are nil: tracing is opt-in, and the
// global providers are never used behind the caller's back. A provider
// left nil beside a set one is a no-op one.
//
// The middleware starts a span around each insert ("river.insert_many")
// and each run of a job ("river.work"); the work span's context is the
// one the worker passes to the stack, so the stack's own spans (metrics.OTel)
// are its children. The spans carry the job's id, kind, queue, attempt
// and status, never its arguments: the prompt stays out. Trace context is
// stored in the job's metadata at insert, so the work span links back to
// the span that enqueued it (a link, not a parent: the job may run hours
// later).
func tracingPlugins(cfg Config) []rivertype.Plugin {
	if cfg.TracerProvider == nil && cfg.MeterProvider == nil {
		return nil
	}
	mc := &otelriver.MiddlewareConfig{
		TracerProvider:         cfg.TracerProvider,
		MeterProvider:          cfg.MeterProvider,
		EnableTracePropagation: true,
	}
	if mc.TracerProvider == nil {
		mc.TracerProvider = tracenoop.NewTracerProvider()
	}
	if mc.MeterProvider == nil {
		mc.MeterProvider = metricnoop.NewMeterProvider()
	}
	return []rivertype.Plugin{otelriver.NewMiddleware(mc)}
}
