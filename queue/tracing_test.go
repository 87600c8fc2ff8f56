package queue_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/queue"
	"github.com/llmkit/llmkit/resilience"
	"github.com/llmkit/llmkit/stack"
)

// With a TracerProvider, a worked job yields River's insert and work
// spans (otelriver); the work span links back to the insert span, a
// child of the caller's span around Enqueue, and the stack's own span for
// the provider call is the work span's child, so the context passes
// through the worker. A cancelled job's work span
// is an error. No span holds the prompt. The MeterProvider receives
// otelriver's river.work_count.
func TestTracesThroughRiver(t *testing.T) {
	run(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		const okPrompt, badPrompt = "Summarize private ticket 7731", "Summarize private ticket 7732"
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

		fake := &llmtest.Fake{Func: func(_ int, req *llm.Request) llmtest.Step {
			if req.PromptText() == badPrompt {
				return llmtest.Step{Err: llmtest.Error(llm.KindContentFilter)}
			}
			return llmtest.Step{Text: "fine"}
		}}
		st, err := stack.New(fake, stack.Config{
			Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), NoCache: true,
			TracerProvider: tp, Resilience: &resilience.Config{},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		q := open(t, b, queue.Config{Client: st, PollInterval: 20 * time.Millisecond, TracerProvider: tp, MeterProvider: mp})

		enqCtx, enqSpan := tp.Tracer("test").Start(ctx, "enqueue")
		ok, err := q.Enqueue(enqCtx, llm.Prompt(okPrompt))
		if err != nil {
			t.Fatal(err)
		}
		enqSpan.End()
		bad, err := q.Enqueue(ctx, llm.Prompt(badPrompt))
		if err != nil {
			t.Fatal(err)
		}
		stop := runQueue(t, q)
		eventually(t, 30*time.Second, "both jobs end", func() bool {
			return result(t, q, ok.ID).State == rivertype.JobStateCompleted &&
				result(t, q, bad.ID).State == rivertype.JobStateCancelled
		})
		stop() // the work spans end before River records the outcome; Run's return follows them

		spans := rec.Ended()
		var inserts, insertsUnderEnqueue int
		var okInsert sdktrace.ReadOnlySpan
		work := map[int64]sdktrace.ReadOnlySpan{}
		for _, s := range spans {
			switch s.Name() {
			case "river.insert_many":
				inserts++
				if s.Parent().SpanID() == enqSpan.SpanContext().SpanID() {
					insertsUnderEnqueue++
					okInsert = s
				}
			case "river.work":
				work[intAttr(s.Attributes(), "id")] = s
			}
			assertNoPrompt(t, s, okPrompt, badPrompt)
		}
		if inserts != 2 || insertsUnderEnqueue != 1 {
			t.Errorf("insert spans %d, %d of them under the enqueue span: want 2, 1", inserts, insertsUnderEnqueue)
		}
		okWork, badWork := work[ok.ID], work[bad.ID]
		if okWork == nil || badWork == nil {
			t.Fatalf("work spans by job id: %v, want jobs %d and %d", keys(work), ok.ID, bad.ID)
		}
		if okWork.Status().Code != codes.Ok || badWork.Status().Code != codes.Error {
			t.Errorf("work span status: ok job %v, cancelled job %v", okWork.Status(), badWork.Status())
		}
		if l := okWork.Links(); okInsert == nil || len(l) != 1 || l[0].SpanContext.SpanID() != okInsert.SpanContext().SpanID() {
			t.Errorf("ok job's work span links %v, want its insert span, under the enqueue span", l)
		}
		// The stack's span of each call is a child of its job's work span.
		for id, w := range work {
			var children int
			for _, s := range spans {
				if s.Parent().SpanID() == w.SpanContext().SpanID() && s.SpanContext().TraceID() == w.SpanContext().TraceID() {
					children++
				}
			}
			if children != 1 {
				t.Errorf("job %d: %d child spans of the work span, want the stack's one", id, children)
			}
		}

		var rm metricdata.ResourceMetrics
		if err := reader.Collect(ctx, &rm); err != nil {
			t.Fatal(err)
		}
		if n := sumCounter(rm, "river.work_count"); n != 2 {
			t.Errorf("river.work_count %d, want 2", n)
		}
	})
}

// assertNoPrompt fails if any text of s (name, attributes, events, links,
// status) holds one of the prompts.
func assertNoPrompt(t *testing.T, s sdktrace.ReadOnlySpan, prompts ...string) {
	t.Helper()
	var text []string
	add := func(kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			text = append(text, kv.Value.String())
		}
	}
	text = append(text, s.Name(), s.Status().Description)
	add(s.Attributes())
	for _, e := range s.Events() {
		text = append(text, e.Name)
		add(e.Attributes)
	}
	for _, l := range s.Links() {
		add(l.Attributes)
	}
	all := strings.Join(text, "\n")
	for _, p := range prompts {
		if strings.Contains(all, p) || strings.Contains(all, "private ticket") {
			t.Errorf("span %q holds the prompt: %s", s.Name(), all)
		}
	}
}

func intAttr(kvs []attribute.KeyValue, key string) int64 {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.AsInt64()
		}
	}
	return -1
}

func keys[K comparable, V any](m map[K]V) []K {
	var out []K
	for k := range m {
		out = append(out, k)
	}
	return out
}

// sumCounter adds up the data points of the int64 counter name in rm.
func sumCounter(rm metricdata.ResourceMetrics, name string) int64 {
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range s.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}
