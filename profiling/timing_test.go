package profiling

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	oteltrace "go.opentelemetry.io/otel/trace"
)

func jsonLogger(buf *bytes.Buffer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level}))
}

func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(buf)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestTimeWritesLine(t *testing.T) {
	var buf bytes.Buffer
	l := jsonLogger(&buf, slog.LevelInfo)
	sc := oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
		TraceID: oteltrace.TraceID{1, 2, 3}, SpanID: oteltrace.SpanID{4}, TraceFlags: oteltrace.FlagsSampled,
	})
	ctx := oteltrace.ContextWithSpanContext(context.Background(), sc)
	stop := Time(ctx, l, "rerank")
	stop()
	Time(context.Background(), l, "embed")()
	lines := decodeLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	if lines[0]["msg"] != TimingMessage || lines[0]["name"] != "rerank" || lines[0]["trace_id"] != sc.TraceID().String() {
		t.Fatalf("line %v", lines[0])
	}
	if _, ok := lines[0]["duration"].(float64); !ok {
		t.Fatalf("no duration in %v", lines[0])
	}
	if _, ok := lines[1]["trace_id"]; ok || lines[1]["name"] != "embed" {
		t.Fatalf("line without a span: %v", lines[1])
	}
}

type recordingObserver struct {
	mu   sync.Mutex
	vals []float64
}

func (o *recordingObserver) Observe(v float64) {
	o.mu.Lock()
	o.vals = append(o.vals, v)
	o.mu.Unlock()
}

func TestTimeWithDurationAndHistogram(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		obs := &recordingObserver{}
		// The log level is disabled, the histogram still observes.
		stop := TimeWith(context.Background(), "rerank", Logger(jsonLogger(&buf, slog.LevelWarn)), Histogram(obs))
		time.Sleep(1500 * time.Millisecond)
		stop()
		if buf.Len() != 0 {
			t.Fatalf("disabled level logged %q", buf.String())
		}
		if len(obs.vals) != 1 || obs.vals[0] != 1.5 {
			t.Fatalf("observed %v, want [1.5]", obs.vals)
		}
		timer := NewTimer("fetch", Logger(jsonLogger(&buf, slog.LevelDebug)), Level(slog.LevelDebug))
		stop = timer.Start(context.Background())
		time.Sleep(250 * time.Millisecond)
		stop()
		lines := decodeLines(t, &buf)
		if len(lines) != 1 || lines[0]["level"] != "DEBUG" || lines[0]["duration"] != float64(250*time.Millisecond) {
			t.Fatalf("lines %v", lines)
		}
	})
}

func TestTimeDisabledAllocs(t *testing.T) {
	l := jsonLogger(&bytes.Buffer{}, slog.LevelWarn)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { Time(ctx, l, "rerank")() }); n != 0 {
		t.Fatalf("Time with a disabled level: %v allocs, want 0", n)
	}
	timer := NewTimer("rerank", Logger(l))
	if n := testing.AllocsPerRun(1000, func() { timer.Start(ctx)() }); n != 0 {
		t.Fatalf("Timer.Start with a disabled level: %v allocs, want 0", n)
	}
}

func TestTimeObservesPrometheusHistogram(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rerank_duration_seconds", Help: "Time spent reranking.", Buckets: []float64{1, 2},
		})
		timer := NewTimer("rerank", Logger(slog.New(slog.DiscardHandler)), Histogram(h))
		for _, d := range []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond} {
			stop := timer.Start(context.Background())
			time.Sleep(d)
			stop()
		}
		want := `
# HELP rerank_duration_seconds Time spent reranking.
# TYPE rerank_duration_seconds histogram
rerank_duration_seconds_bucket{le="1"} 1
rerank_duration_seconds_bucket{le="2"} 2
rerank_duration_seconds_bucket{le="+Inf"} 2
rerank_duration_seconds_sum 2
rerank_duration_seconds_count 2
`
		if err := testutil.CollectAndCompare(h, strings.NewReader(want)); err != nil {
			t.Fatal(err)
		}
	})
}
