package metrics

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/llmkit/llmkit/llm"
)

// The GenAI semantic convention's advised bucket boundaries.
var (
	genAIDurationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	genAITokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
)

// initialGlobalTP is the global TracerProvider before anybody installed
// one: a delegate whose spans never record. While otel.GetTracerProvider
// returns it, calls are not traced.
var initialGlobalTP = func() trace.TracerProvider {
	if tp := otel.GetTracerProvider(); fmt.Sprintf("%T", tp) == "*global.tracerProvider" {
		return tp
	}
	return nil
}()

type otelMW struct {
	cfg       *config
	tracer    trace.Tracer // nil when the provider is a no-op
	globalTP  bool         // the tracer comes from the global delegate
	dur, ttft metric.Float64Histogram
	tokens    metric.Int64Histogram
	models    *labelSet
	base      []attribute.KeyValue // operation and provider
}

// OTel returns a middleware that traces every call as a client span "chat
// {model}" with the GenAI semantic conventions' attributes and records
// their gen_ai.client.* instruments. What the decorators inside report
// becomes events of the span, through an observer registered on the
// context of each traced call. The providers default to the global ones;
// while none is installed, or with no-op ones, a call allocates nothing.
func OTel(opts ...Option) (llm.Middleware, error) {
	cfg, err := newConfig(forOTel, opts)
	if err != nil {
		return nil, err
	}
	o := &otelMW{cfg: cfg, models: newLabelSet(cfg.models, cfg.maxModels, "default"), base: []attribute.KeyValue{
		semconv.GenAIOperationNameKey.String("chat"), semconv.GenAIProviderNameKey.String(cfg.provider)}}
	const name = "github.com/llmkit/llmkit/metrics"
	switch tp := cmp.Or(cfg.tp, otel.GetTracerProvider()); tp.(type) {
	case tracenoop.TracerProvider, *tracenoop.TracerProvider:
	default:
		o.globalTP = initialGlobalTP != nil && tp == initialGlobalTP
		o.tracer = tp.Tracer(name)
	}
	meter := cmp.Or(cfg.mp, otel.GetMeterProvider()).Meter(name)
	var errs [3]error
	o.dur, errs[0] = meter.Float64Histogram("gen_ai.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("GenAI operation duration."), metric.WithExplicitBucketBoundaries(genAIDurationBuckets...))
	o.ttft, errs[1] = meter.Float64Histogram("gen_ai.client.operation.time_to_first_chunk", metric.WithUnit("s"),
		metric.WithDescription("Time to receive the first chunk of a streamed response."), metric.WithExplicitBucketBoundaries(genAIDurationBuckets...))
	o.tokens, errs[2] = meter.Int64Histogram("gen_ai.client.token.usage", metric.WithUnit("{token}"),
		metric.WithDescription("Number of input and output tokens used."), metric.WithExplicitBucketBoundaries(genAITokenBuckets...))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return func(next llm.Client) llm.Client { return &otelClient{o: o, next: next} }, nil
}

type otelClient struct {
	o    *otelMW
	next llm.Client
}

// Generate traces and measures the call; with no-op providers it only
// calls next.
func (c *otelClient) Generate(ctx context.Context, req *llm.Request) (resp *llm.Response, err error) {
	o := c.o
	tracing := o.tracer != nil && (!o.globalTP || otel.GetTracerProvider() != initialGlobalTP)
	if metering := o.dur.Enabled(ctx); tracing || metering {
		resp, err = o.generate(ctx, req, c.next, tracing, metering)
	} else {
		resp, err = c.next.Generate(ctx, req)
	}
	return resp, llm.RedactError(err)
}

func (o *otelMW) generate(ctx context.Context, req *llm.Request, next llm.Client, tracing, metering bool) (resp *llm.Response, err error) {
	start := now()
	span := trace.SpanFromContext(context.Background())
	if tracing {
		ctx, span = o.tracer.Start(ctx, strings.TrimSpace("chat "+llm.Redact(req.Model)), trace.WithSpanKind(trace.SpanKindClient))
		defer span.End()
	}
	recording := span.IsRecording()
	if recording {
		a := append(make([]attribute.KeyValue, 0, 8), o.base...)
		if req.Model != "" {
			a = append(a, semconv.GenAIRequestModelKey.String(llm.Redact(req.Model)))
		}
		if req.Stream != nil {
			a = append(a, attribute.Bool("llm.stream", true))
		}
		if req.MaxTokens > 0 {
			a = append(a, semconv.GenAIRequestMaxTokensKey.Int(req.MaxTokens))
		}
		if req.Temperature != nil {
			a = append(a, semconv.GenAIRequestTemperatureKey.Float64(*req.Temperature))
		}
		if req.TopP != nil {
			a = append(a, semconv.GenAIRequestTopPKey.Float64(*req.TopP))
		}
		if o.cfg.captureMax > 0 {
			a = append(a, semconv.GenAIInputMessagesKey.String(messagesJSON("user", safeText(req.PromptText(), o.cfg.captureMax), "")))
		}
		span.SetAttributes(a...)
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
	if !metering {
		return resp, err
	}
	a := append(make([]attribute.KeyValue, 0, 5), o.base...)
	a = append(a, semconv.GenAIRequestModelKey.String(o.models.name(o.models.lookup(req.Model))))
	if err != nil {
		a = append(a, semconv.ErrorTypeKey.String(llm.KindOf(err).String()))
	} else if resp.Model != "" {
		a = append(a, semconv.GenAIResponseModelKey.String(o.models.name(o.models.lookup(resp.Model))))
	}
	set := metric.WithAttributeSet(attribute.NewSet(a...))
	o.dur.Record(ctx, d, set)
	if st != nil && st.seen {
		o.ttft.Record(ctx, st.ttft.Seconds(), set)
	}
	if err == nil && o.tokens.Enabled(ctx) {
		o.tokens.Record(ctx, int64(resp.Usage.InputTokens), metric.WithAttributes(append(a, semconv.GenAITokenTypeInput)...))
		o.tokens.Record(ctx, int64(resp.Usage.OutputTokens), metric.WithAttributes(append(a, semconv.GenAITokenTypeOutput)...))
	}
	return resp, err
}

// endSpan sets the outcome attributes.
func (o *otelMW) endSpan(span trace.Span, resp *llm.Response, err error) {
	status := attribute.String("llm.status", statusNames[statusOf(resp, err)]) // as llm_requests_total and the log line say
	if err != nil {
		span.SetAttributes(status, semconv.ErrorTypeKey.String(llm.KindOf(err).String()))
		span.SetStatus(codes.Error, llm.Redact(err.Error()))
		return
	}
	u := resp.Usage
	a := []attribute.KeyValue{status, semconv.GenAIUsageInputTokensKey.Int(u.InputTokens), semconv.GenAIUsageOutputTokensKey.Int(u.OutputTokens)}
	if resp.Model != "" {
		a = append(a, semconv.GenAIResponseModelKey.String(llm.Redact(resp.Model)))
	}
	if resp.ID != "" {
		a = append(a, semconv.GenAIResponseIDKey.String(llm.Redact(resp.ID)))
	}
	if resp.FinishReason != "" {
		a = append(a, semconv.GenAIResponseFinishReasonsKey.StringSlice([]string{string(resp.FinishReason)}))
	}
	if u.CachedInputTokens > 0 {
		a = append(a, semconv.GenAIUsageCacheReadInputTokensKey.Int(u.CachedInputTokens))
	}
	if resp.Attempts > 0 {
		a = append(a, attribute.Int("llm.attempts", resp.Attempts))
	}
	if resp.Cached {
		a = append(a, attribute.Bool("llm.cached", true))
	}
	if resp.Degraded {
		a = append(a, attribute.Bool("llm.degraded", true), attribute.String("llm.degraded_reason", resp.DegradedReason.String()))
	}
	if o.cfg.captureMax > 0 {
		a = append(a, semconv.GenAIOutputMessagesKey.String(messagesJSON("assistant", safeText(resp.Text, o.cfg.captureMax), string(resp.FinishReason))))
	}
	span.SetAttributes(a...)
}

// messagesJSON renders one message in the GenAI convention's format.
func messagesJSON(role, text, finish string) string {
	type part struct {
		Type    string `json:"type"`
		Content string `json:"content"`
	}
	b, _ := json.Marshal([]struct {
		Role         string `json:"role"`
		Parts        []part `json:"parts"`
		FinishReason string `json:"finish_reason,omitempty"`
	}{{role, []part{{"text", text}}, finish}})
	return string(b)
}

// Observe turns the decorators' events into events of the call's span.
func (o *otelMW) Observe(ctx context.Context, ev llm.Event) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	var a []attribute.KeyValue
	if ev.Err != nil {
		a = append(a, semconv.ErrorTypeKey.String(llm.KindOf(ev.Err).String()))
	}
	name := "llm." + ev.Kind.String()
	switch ev.Kind {
	case llm.EventHedge:
		a = append(a, attribute.Int("llm.attempt", ev.Attempt))
	case llm.EventAttempt:
		a = append(a, attribute.Int("llm.attempt", ev.Attempt), attribute.Float64("llm.duration_s", ev.Duration.Seconds()))
	case llm.EventRetry:
		a = append(a, attribute.Int("llm.attempt", ev.Attempt), attribute.Float64("llm.retry.delay_s", ev.Delay.Seconds()))
	case llm.EventFallback:
		a = append(a, attribute.String("llm.fallback.reason", llm.Redact(ev.Reason)), attribute.String("llm.fallback.source", llm.Redact(ev.Source)))
	case llm.EventRejected:
		a = append(a, attribute.String("llm.rejected.reason", llm.Redact(ev.Reason)))
	case llm.EventBreakerState:
		name = "llm.breaker"
		a = append(a, attribute.String("llm.breaker.name", llm.Redact(ev.Source)), attribute.String("llm.breaker.state", ev.State.String()))
	default:
		result := "store"
		if i := cacheResult(ev); i >= 0 {
			result = cacheResults[i]
		} else if ev.Kind != llm.EventCacheStore {
			return
		}
		name = "llm.cache"
		a = append(a, attribute.String("llm.cache.result", result), attribute.String("llm.cache.store", llm.Redact(ev.Source)))
		if result == cacheResults[cacheBypass] {
			a = append(a, attribute.String("llm.cache.bypass_reason", bypassReasons[bypassReason(ev.Reason)]))
		}
	}
	span.AddEvent(name, trace.WithAttributes(a...))
}
