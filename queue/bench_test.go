package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
	"github.com/llmkit/llmkit/queue"
)

// BenchmarkThroughput measures jobs per second through River with the
// simulated model at zero latency: b.N jobs are inserted, then 1 to 3
// workers (River clients of their own, as separate processes would be,
// 20 jobs at once each) work them off. Run with -benchtime=2000x.
func BenchmarkThroughput(b *testing.B) {
	for _, backendName := range []string{"sqlite", "postgres"} {
		for workers := 1; workers <= 3; workers++ {
			b.Run(fmt.Sprintf("%s/workers=%d", backendName, workers), func(b *testing.B) {
				var be backend
				if backendName == "sqlite" {
					be = backend{Name: "sqlite", DSN: b.TempDir() + "/bench.db"}
				} else if be = postgresBenchBackend(b); be.DSN == "" {
					b.Skip("no PostgreSQL")
				}
				ctx := context.Background()
				ins, err := queue.Open(ctx, be.DSN, queue.Config{Schema: be.Schema})
				if err != nil {
					b.Fatal(err)
				}
				defer ins.Close()
				reqs := make([]*llm.Request, b.N)
				for i := range reqs {
					reqs[i] = llm.Prompt(fmt.Sprintf("Classify support ticket #%d", i))
				}
				if _, err := ins.EnqueueMany(ctx, reqs); err != nil {
					b.Fatal(err)
				}
				model := sim.MustNew(sim.Config{TTFT: -1, PerToken: -1, Jitter: -1})
				wctx, stop := context.WithCancel(ctx)
				done := make(chan error, workers)
				b.ResetTimer()
				start := time.Now()
				for range workers {
					q, err := queue.Open(ctx, be.DSN, queue.Config{Client: model, Schema: be.Schema, Workers: 20, PollInterval: 50 * time.Millisecond})
					if err != nil {
						b.Fatal(err)
					}
					defer q.Close()
					go func() { done <- q.Run(wctx) }()
				}
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for range tick.C {
					n, err := ins.Counts(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if n["completed"] == b.N {
						break
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				stop()
				for range workers {
					<-done
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
			})
		}
	}
}
