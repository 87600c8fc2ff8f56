package limit

import (
	"context"
	"testing"

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
