package limit

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/llm"
)

// answer is an upstream that answers at once, so that a benchmark times
// the limiter alone.
var answer = llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
	return &llm.Response{Text: "ok", Usage: llm.Usage{InputTokens: 5, OutputTokens: 5}}, nil
})

func benchLimiter(b *testing.B, cfg Config) {
	rdb, prefix := liveRedis(b)
	cfg.Redis, cfg.Prefix = rdb, prefix
	c := newLimiter(b, cfg).Middleware()(answer)
	req := &llm.Request{Messages: []llm.Message{llm.User("hello")}, MaxTokens: 100}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Generate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecisionRPM: one admitted call under an RPM limit, one Lua
// script on loopback Redis.
func BenchmarkDecisionRPM(b *testing.B) { benchLimiter(b, Config{RPM: 1 << 30}) }

// BenchmarkDecisionTPM: one admitted call under RPM and TPM: the decision
// and the settlement, two round trips.
func BenchmarkDecisionTPM(b *testing.B) { benchLimiter(b, Config{RPM: 1 << 30, TPM: 1 << 40}) }

// BenchmarkDecisionLeased: RPM with leases of 100: one round trip per 100
// calls.
func BenchmarkDecisionLeased(b *testing.B) { benchLimiter(b, Config{RPM: 1 << 30, Lease: 100}) }

// benchParallel runs calls under RPM and TPM from 16 goroutines per CPU, as
// a busy replica does, on rdb.
func benchParallel(b *testing.B, rdb goredis.Cmdable, prefix string) {
	c := newLimiter(b, Config{Redis: rdb, Prefix: prefix, RPM: 1 << 30, TPM: 1 << 40}).Middleware()(answer)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		req := &llm.Request{Messages: []llm.Message{llm.User("hello")}, MaxTokens: 100}
		for pb.Next() {
			if _, err := c.Generate(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDecisionParallel: concurrent calls under RPM and TPM, each
// script its own round trip on go-redis's connection pool.
func BenchmarkDecisionParallel(b *testing.B) {
	rdb, prefix := liveRedis(b)
	benchParallel(b, rdb, prefix)
}

// BenchmarkDecisionParallelAutoPipeline: the same through go-redis's
// AutoPipeline, which sends the scripts (reservations and settlements of
// different calls) waiting at the same time in one round trip.
func BenchmarkDecisionParallelAutoPipeline(b *testing.B) {
	rdb, prefix := liveRedis(b)
	ap, err := rdb.AutoPipeline()
	if err != nil {
		b.Fatal(err)
	}
	benchParallel(b, ap, prefix)
}
