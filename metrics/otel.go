package metrics

import (
	"context"
	"encoding/json"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/llmkit/llmkit/llm"
)

// instrumentationName is the tracer and meter name.
const instrumentationName = "github.com/llmkit/llmkit/metrics"

// The GenAI semantic convention's advised bucket boundaries.
var (
	genAIDurationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	genAITokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
)

// operationChat is gen_ai.operation.name for every call: llm.Request is a
// chat completion.
const operationChat = "chat"

// initialGlobalTP is the global TracerProvider before anybody installed
// one: a delegate that only produces non-recording spans. While
// otel.GetTracerProvider still returns it, nothing is traced.
var initialGlobalTP = func() trace.TracerProvider {
	tp := otel.GetTracerProvider()
	if fmt.Sprintf("%T", tp) == "*global.tracerProvider" {
		return tp
	}
	return nil
}()

type otelMW struct {
	cfg      otelConfig
	tracer   trace.Tracer // nil when the provider is a no-op
	globalTP bool         // the tracer comes from the global delegate
	dur      metric.Float64Histogram
	ttft     metric.Float64Histogram
	tokens   metric.Int64Histogram
	models   *labelSet
	base     []attribute.KeyValue // operation and provider
}

var _ llm.Observer = (*otelMW)(nil)

// OTel returns a middleware that traces every call as a client span named
// "chat {model}" with the GenAI semantic convention's gen_ai.* attributes,
// adds span events for the retries, cache results, fallbacks, limiter
// rejections, breaker changes and hedges the decorators inside report, and
// records gen_ai.client.operation.duration, gen_ai.client.token.usage and,
// for streams, gen_ai.client.operation.time_to_first_chunk.
//
// The providers default to the global ones. While no provider is
// installed (or a no-op one is given), a call costs two atomic loads and
// allocates nothing. Prompt and completion text are recorded only with
// WithContentCapture.
func OTel(opts ...OTelOption) (llm.Middleware, error) {
	o, err := newOTel(opts...)
	if err != nil {
		return nil, err
	}
	return func(next llm.Client) llm.Client { return &otelClient{o: o, next: next} }, nil
}

func newOTel(opts ...OTelOption) (*otelMW, error) {
	cfg := otelConfig{labelsConfig: labelsConfig{maxModels: DefaultMaxModels}, provider: "llmkit"}
	for _, opt := range opts {
		if opt != nil {
			opt.applyOTel(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := &otelMW{cfg: cfg, models: newLabelSet(cfg.models, cfg.maxModels, "default")}
	tp := cfg.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	switch tp.(type) {
	case tracenoop.TracerProvider, *tracenoop.TracerProvider:
	default:
		o.globalTP = initialGlobalTP != nil && tp == initialGlobalTP
		o.tracer = tp.Tracer(instrumentationName)
	}
	mp := cfg.mp
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(instrumentationName)
	var err error
	if o.dur, err = meter.Float64Histogram("gen_ai.client.operation.duration",
		metric.WithUnit("s"), metric.WithDescription("GenAI operation duration."),
		metric.WithExplicitBucketBoundaries(genAIDurationBuckets...)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if o.ttft, err = meter.Float64Histogram("gen_ai.client.operation.time_to_first_chunk",
		metric.WithUnit("s"), metric.WithDescription("Time to receive the first chunk of a streamed response."),
		metric.WithExplicitBucketBoundaries(genAIDurationBuckets...)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if o.tokens, err = meter.Int64Histogram("gen_ai.client.token.usage",
		metric.WithUnit("{token}"), metric.WithDescription("Number of input and output tokens used."),
		metric.WithExplicitBucketBoundaries(genAITokenBuckets...)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	o.base = []attribute.KeyValue{
		semconv.GenAIOperationNameKey.String(operationChat),
		semconv.GenAIProviderNameKey.String(cfg.provider),
	}
	return o, nil
}

// tracing reports whether a span started now could record.
func (o *otelMW) tracing() bool {
	if o.tracer == nil {
		return false
	}
	return !o.globalTP || otel.GetTracerProvider() != initialGlobalTP
}

type otelClient struct {
	o    *otelMW
	next llm.Client
}

// Generate traces and measures the call. With no-op providers it only
// calls next.
func (c *otelClient) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	tracing := c.o.tracing()
	metering := c.o.dur.Enabled(ctx)
	if !tracing && !metering {
		return c.next.Generate(ctx, req)
	}
	return c.o.generate(ctx, req, c.next, tracing, metering)
}

func (o *otelMW) generate(ctx context.Context, req *llm.Request, next llm.Client, tracing, metering bool) (resp *llm.Response, err error) {
	start := now()
	span := trace.SpanFromContext(context.Background())
	if tracing {
		name := operationChat
		if req.Model != "" {
			name += " " + llm.Redact(req.Model)
		}
		ctx, span = o.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
		defer span.End()
	}
	recording := span.IsRecording()
	if recording {
		attrs := append(make([]attribute.KeyValue, 0, 8), o.base...)
		if req.Model != "" {
			attrs = append(attrs, semconv.GenAIRequestModelKey.String(llm.Redact(req.Model)))
		}
		if req.MaxTokens > 0 {
			attrs = append(attrs, semconv.GenAIRequestMaxTokensKey.Int(req.MaxTokens))
		}
		if req.Temperature != nil {
			attrs = append(attrs, semconv.GenAIRequestTemperatureKey.Float64(*req.Temperature))
		}
		if req.TopP != nil {
			attrs = append(attrs, semconv.GenAIRequestTopPKey.Float64(*req.TopP))
		}
		if req.Stream != nil {
			attrs = append(attrs, attribute.Bool("llm.stream", true))
		}
		if o.cfg.captureMax > 0 {
			attrs = append(attrs, semconv.GenAIInputMessagesKey.String(messagesJSON("user", safeText(req.PromptText(), o.cfg.captureMax), "")))
		}
		span.SetAttributes(attrs...)
		ctx = llm.WithObserver(ctx, o)
	}
	var st *streamTimer
	if req.Stream != nil {
		req, st = timeStream(req, start)
	}
	defer func() {
		if r := recover(); r != nil {
			span.SetStatus(codes.Error, "panic")
			span.SetAttributes(semconv.ErrorTypeKey.String("panic"))
			panic(r)
		}
	}()
	resp, err = next.Generate(ctx, req)
	d := (now() - start).Seconds()

	if recording {
		o.endSpan(span, resp, err)
	}
	if metering {
		attrs := make([]attribute.KeyValue, 0, 5)
		attrs = append(attrs, o.base...)
		attrs = append(attrs, semconv.GenAIRequestModelKey.String(o.models.name(o.models.lookup(req.Model))))
		if err != nil {
			attrs = append(attrs, semconv.ErrorTypeKey.String(llm.KindOf(err).String()))
		} else if resp.Model != "" {
			attrs = append(attrs, semconv.GenAIResponseModelKey.String(o.models.name(o.models.lookup(resp.Model))))
		}
		set := metric.WithAttributeSet(attribute.NewSet(attrs...))
		o.dur.Record(ctx, d, set)
		if st != nil && st.seen {
			o.ttft.Record(ctx, st.ttft.Seconds(), set)
		}
		if err == nil && o.tokens.Enabled(ctx) {
			in := append(attrs[:len(attrs):len(attrs)], semconv.GenAITokenTypeInput)
			out := append(attrs[:len(attrs):len(attrs)], semconv.GenAITokenTypeOutput)
			o.tokens.Record(ctx, int64(resp.Usage.InputTokens), metric.WithAttributes(in...))
			o.tokens.Record(ctx, int64(resp.Usage.OutputTokens), metric.WithAttributes(out...))
		}
	}
	return resp, err
}

// endSpan sets the outcome attributes.
func (o *otelMW) endSpan(span trace.Span, resp *llm.Response, err error) {
	if err != nil {
		kind := llm.KindOf(err).String()
		span.SetAttributes(semconv.ErrorTypeKey.String(kind))
		span.SetStatus(codes.Error, llm.Redact(err.Error()))
		return
	}
	attrs := make([]attribute.KeyValue, 0, 10)
	if resp.Model != "" {
		attrs = append(attrs, semconv.GenAIResponseModelKey.String(llm.Redact(resp.Model)))
	}
	if resp.ID != "" {
		attrs = append(attrs, semconv.GenAIResponseIDKey.String(llm.Redact(resp.ID)))
	}
	if resp.FinishReason != "" {
		attrs = append(attrs, semconv.GenAIResponseFinishReasonsKey.StringSlice([]string{string(resp.FinishReason)}))
	}
	attrs = append(attrs,
		semconv.GenAIUsageInputTokensKey.Int(resp.Usage.InputTokens),
		semconv.GenAIUsageOutputTokensKey.Int(resp.Usage.OutputTokens))
	if resp.Usage.CachedInputTokens > 0 {
		attrs = append(attrs, semconv.GenAIUsageCacheReadInputTokensKey.Int(resp.Usage.CachedInputTokens))
	}
	if resp.Attempts > 0 {
		attrs = append(attrs, attribute.Int("llm.attempts", resp.Attempts))
	}
	if resp.Cached {
		attrs = append(attrs, attribute.Bool("llm.cached", true))
	}
	if resp.Degraded {
		attrs = append(attrs, attribute.Bool("llm.degraded", true), attribute.String("llm.degraded_reason", resp.DegradedReason.String()))
	}
	if o.cfg.captureMax > 0 {
		attrs = append(attrs, semconv.GenAIOutputMessagesKey.String(messagesJSON("assistant", safeText(resp.Text, o.cfg.captureMax), string(resp.FinishReason))))
	}
	span.SetAttributes(attrs...)
}

// messagesJSON renders one message in the GenAI convention's message
// format.
func messagesJSON(role, text, finish string) string {
	type part struct {
		Type    string `json:"type"`
		Content string `json:"content"`
	}
	type message struct {
		Role         string `json:"role"`
		Parts        []part `json:"parts"`
		FinishReason string `json:"finish_reason,omitempty"`
	}
	b, _ := json.Marshal([]message{{Role: role, Parts: []part{{Type: "text", Content: text}}, FinishReason: finish}})
	return string(b)
}

// Observe turns the decorators' events into events on the call's span.
func (o *otelMW) Observe(ctx context.Context, ev llm.Event) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	var attrs [4]attribute.KeyValue
	a := attrs[:0]
	if ev.Err != nil {
		a = append(a, semconv.ErrorTypeKey.String(llm.KindOf(ev.Err).String()))
	}
	name := ""
	switch ev.Kind {
	case llm.EventAttempt:
		name = "llm.attempt"
		a = append(a, attribute.Int("llm.attempt", ev.Attempt), attribute.Float64("llm.duration_s", ev.Duration.Seconds()))
	case llm.EventRetry:
		name = "llm.retry"
		a = append(a, attribute.Int("llm.attempt", ev.Attempt), attribute.Float64("llm.retry.delay_s", ev.Delay.Seconds()))
	case llm.EventCacheHit, llm.EventCacheMiss, llm.EventCacheStale, llm.EventCacheCoalesced, llm.EventCacheError, llm.EventCacheStore:
		name = "llm.cache"
		a = append(a, attribute.String("llm.cache.result", cacheResult(ev.Kind)), attribute.String("llm.cache.store", llm.Redact(ev.Source)))
	case llm.EventFallback:
		name = "llm.fallback"
		a = append(a, attribute.String("llm.fallback.reason", llm.Redact(ev.Reason)), attribute.String("llm.fallback.source", llm.Redact(ev.Source)))
	case llm.EventRejected:
		name = "llm.rejected"
		a = append(a, attribute.String("llm.rejected.reason", llm.Redact(ev.Reason)))
	case llm.EventBreakerState:
		name = "llm.breaker"
		a = append(a, attribute.String("llm.breaker.name", llm.Redact(ev.Source)), attribute.String("llm.breaker.state", ev.State.String()))
	case llm.EventHedge:
		name = "llm.hedge"
		a = append(a, attribute.Int("llm.attempt", ev.Attempt))
	default:
		return
	}
	span.AddEvent(name, trace.WithAttributes(a...))
}

// cacheResult names a cache event kind: hit, miss, stale, coalesced,
// error, store.
func cacheResult(k llm.EventKind) string {
	switch k {
	case llm.EventCacheHit:
		return "hit"
	case llm.EventCacheMiss:
		return "miss"
	case llm.EventCacheStale:
		return "stale"
	case llm.EventCacheCoalesced:
		return "coalesced"
	case llm.EventCacheError:
		return "error"
	}
	return "store"
}
