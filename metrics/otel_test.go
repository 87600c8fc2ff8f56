package metrics_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/metrics"
)

type otelKit struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
}

func newOTelKit(t *testing.T) *otelKit {
	k := &otelKit{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	k.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(k.spans))
	k.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(k.reader))
	t.Cleanup(func() {
		_ = k.tp.Shutdown(context.Background())
		_ = k.mp.Shutdown(context.Background())
	})
	return k
}

func (k *otelKit) middleware(t *testing.T, opts ...metrics.Option) llm.Middleware {
	opts = append([]metrics.Option{metrics.WithTracerProvider(k.tp), metrics.WithMeterProvider(k.mp), metrics.WithProviderName("openai")}, opts...)
	mw, err := metrics.OTel(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

func (k *otelKit) metrics(t *testing.T) map[string]metricdata.Aggregation {
	var rm metricdata.ResourceMetrics
	if err := k.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

func attrMap(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

func TestOTelConformance(t *testing.T) {
	k := newOTelKit(t)
	llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client { return k.middleware(t)(up) })
}

func TestOTelSpanAndInstruments(t *testing.T) {
	k := newOTelKit(t)
	fake := &llmtest.Fake{Steps: []llmtest.Step{
		{Response: &llm.Response{ID: "resp-1", Model: "gpt-a-2025", Usage: llm.Usage{InputTokens: 12, OutputTokens: 7, CachedInputTokens: 4}}, Text: "hello there"},
		{Err: llmtest.Error(llm.KindUnavailable)},
		{Chunks: []string{"a", " b"}},
	}}
	// The events reach the span through the observer on the call's context.
	c := k.middleware(t, metrics.WithModels("gpt-a", "gpt-a-2025"))(reporting(nil,
		llm.Event{Kind: llm.EventCacheMiss, Source: "memory"},
		llm.Event{Kind: llm.EventRetry, Attempt: 1, Err: llmtest.Error(llm.KindRateLimited)},
		llm.Event{Kind: llm.EventFallback, Reason: "timeout", Source: "backup"},
	)(fake))
	ctx := context.Background()
	if _, err := c.Generate(ctx, &llm.Request{Model: "gpt-a", MaxTokens: 50, Temperature: llm.Ptr(0.2), Messages: []llm.Message{llm.User("hi")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Generate(ctx, &llm.Request{Model: "gpt-a"}); err == nil {
		t.Fatal("want an error")
	}
	if _, err := c.Generate(ctx, &llm.Request{Model: "free-form", Stream: func(llm.Chunk) error { return nil }}); err != nil {
		t.Fatal(err)
	}

	spans := k.spans.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	s := spans[0]
	if s.Name() != "chat gpt-a" || s.SpanKind() != trace.SpanKindClient {
		t.Errorf("span %q kind %v, want \"chat gpt-a\" client", s.Name(), s.SpanKind())
	}
	a := attrMap(s.Attributes())
	for key, want := range map[string]any{
		"gen_ai.operation.name":                "chat",
		"gen_ai.provider.name":                 "openai",
		"gen_ai.request.model":                 "gpt-a",
		"gen_ai.request.max_tokens":            int64(50),
		"gen_ai.request.temperature":           0.2,
		"gen_ai.response.model":                "gpt-a-2025",
		"gen_ai.response.id":                   "resp-1",
		"gen_ai.usage.input_tokens":            int64(12),
		"gen_ai.usage.output_tokens":           int64(7),
		"gen_ai.usage.cache_read.input_tokens": int64(4),
	} {
		if got := a[key].AsInterface(); got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	if fr := a["gen_ai.response.finish_reasons"].AsStringSlice(); len(fr) != 1 || fr[0] != "stop" {
		t.Errorf("finish_reasons = %v", fr)
	}
	if _, ok := a["gen_ai.input.messages"]; ok {
		t.Error("prompt recorded without WithContentCapture")
	}
	var events []string
	for _, ev := range s.Events() {
		events = append(events, ev.Name+":"+attrMap(ev.Attributes)["llm.cache.result"].String()+attrMap(ev.Attributes)["error.type"].String()+attrMap(ev.Attributes)["llm.fallback.reason"].String())
	}
	if want := []string{"llm.cache:miss", "llm.retry:rate_limited", "llm.fallback:timeout"}; len(events) != 3 || events[0] != want[0] || events[1] != want[1] || events[2] != want[2] {
		t.Errorf("span events %v, want %v", events, want)
	}
	f := spans[1]
	if f.Status().Code != codes.Error || attrMap(f.Attributes())["error.type"].AsString() != "unavailable" {
		t.Errorf("failed call: status %v, error.type %v", f.Status(), attrMap(f.Attributes())["error.type"])
	}

	m := k.metrics(t)
	dur, ok := m["gen_ai.client.operation.duration"].(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("no duration histogram in %v", m)
	}
	var total uint64
	models := map[string]bool{}
	for _, dp := range dur.DataPoints {
		total += dp.Count
		if len(dp.Bounds) != 14 || dp.Bounds[0] != 0.01 || dp.Bounds[13] != 81.92 {
			t.Errorf("duration bounds %v are not the convention's", dp.Bounds)
		}
		v, _ := dp.Attributes.Value("gen_ai.request.model")
		models[v.AsString()] = true
	}
	if total != 3 || !models["gpt-a"] || !models["other"] || models["free-form"] {
		t.Errorf("duration: %d points, models %v; want 3 points, free-form bounded to other", total, models)
	}
	tok, ok := m["gen_ai.client.token.usage"].(metricdata.Histogram[int64])
	if !ok {
		t.Fatal("no token histogram")
	}
	sums := map[string]int64{}
	for _, dp := range tok.DataPoints {
		v, _ := dp.Attributes.Value("gen_ai.token.type")
		sums[v.AsString()] += dp.Sum
	}
	if sums["input"] < 12 || sums["output"] != 7+2 {
		t.Errorf("token sums %v", sums)
	}
	ttft, ok := m["gen_ai.client.operation.time_to_first_chunk"].(metricdata.Histogram[float64])
	if !ok || len(ttft.DataPoints) != 1 || ttft.DataPoints[0].Count != 1 {
		t.Errorf("time_to_first_chunk: want one stream observation, got %+v", m["gen_ai.client.operation.time_to_first_chunk"])
	}
}

func TestOTelContentCapture(t *testing.T) {
	k := newOTelKit(t)
	c := k.middleware(t, metrics.WithContentCapture(8))(&llmtest.Fake{Default: llmtest.Step{Text: "a long completion"}})
	if _, err := c.Generate(context.Background(), llm.Prompt("a long prompt text")); err != nil {
		t.Fatal(err)
	}
	a := attrMap(k.spans.Ended()[0].Attributes())
	if in := a["gen_ai.input.messages"].AsString(); in != `[{"role":"user","parts":[{"type":"text","content":"a long p"}]}]` {
		t.Errorf("input.messages = %s", in)
	}
	if out := a["gen_ai.output.messages"].AsString(); out != `[{"role":"assistant","parts":[{"type":"text","content":"a long c"}],"finish_reason":"stop"}]` {
		t.Errorf("output.messages = %s", out)
	}
}

// With no-op providers (explicit, or the global ones before anybody
// installed a provider) the call allocates nothing and records nothing.
func TestOTelNoopAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation pins run without -race")
	}
	up := okClient
	req := &llm.Request{Model: "m"}
	ctx := context.Background()
	explicit := must(metrics.OTel(metrics.WithTracerProvider(tracenoop.NewTracerProvider()), metrics.WithMeterProvider(metricnoop.NewMeterProvider())))(up)
	global := must(metrics.OTel())(up)
	for name, c := range map[string]llm.Client{"explicit no-op": explicit, "global default": global} {
		if n := testing.AllocsPerRun(1000, func() { _, _ = c.Generate(ctx, req) }); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", name, n)
		}
	}
}
