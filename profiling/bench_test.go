package profiling

import (
	"bytes"
	"context"
	"log/slog"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
)

var benchClient = llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	return nil, nil
})

func benchCalls(b *testing.B, c llm.Client) {
	req := &llm.Request{Endpoint: "summarize", Model: "gpt-4o"}
	ctx := context.Background()
	b.ReportAllocs()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Generate(ctx, req)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Generate(ctx, req)
			}
		})
	})
}

// BenchmarkBaseline is the bare client the others wrap.
func BenchmarkBaseline(b *testing.B) { benchCalls(b, benchClient) }

func BenchmarkLabels(b *testing.B) {
	benchCalls(b, mustLabels(b)(benchClient))
}

func BenchmarkLabelsTenant(b *testing.B) {
	benchCalls(b, mustLabels(b, Tenant())(benchClient))
}

// BenchmarkCaptureNoTrigger measures calls that are not captured: with a
// threshold (a timer armed and stopped per call) and with sampling alone
// (a counter).
func BenchmarkCaptureNoTrigger(b *testing.B) {
	for _, tc := range []struct {
		name string
		opt  CaptureOption
	}{{"threshold", Threshold(time.Hour)}, {"sample", Sample(1 << 40)}} {
		b.Run(tc.name, func(b *testing.B) {
			rec := &fakeRecorder{}
			c, err := newCapturer(rec, rec.begin, tc.opt)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			benchCalls(b, c.Middleware(benchClient))
		})
	}
}

func BenchmarkTime(b *testing.B) {
	ctx := context.Background()
	b.Run("disabled", func(b *testing.B) {
		l := slog.New(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		b.ReportAllocs()
		for b.Loop() {
			Time(ctx, l, "rerank")()
		}
	})
	b.Run("histogram-only", func(b *testing.B) {
		l := slog.New(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		timer := NewTimer("rerank", Logger(l), Histogram(discardObserver{}))
		b.ReportAllocs()
		for b.Loop() {
			timer.Start(ctx)()
		}
	})
}

type discardObserver struct{}

func (discardObserver) Observe(float64) {}

// BenchmarkPprofDo is pprof.Do alone with a prebuilt label set: the floor
// under BenchmarkLabels, for comparing on a loaded machine.
func BenchmarkPprofDo(b *testing.B) {
	set := pprof.Labels("endpoint", "summarize", "model", "gpt-4o")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		pprof.Do(ctx, set, func(context.Context) {})
	}
}
