package sim_test

import (
	"context"
	"testing"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
)

var benchReq = &llm.Request{
	System:   "You are a helpful assistant.",
	Messages: []llm.Message{llm.User("Summarise the benefits of circuit breakers in two sentences.")},
}

func BenchmarkGenerate(b *testing.B) {
	m := sim.MustNew(instant)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Generate(ctx, benchReq); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateParallel(b *testing.B) {
	m := sim.MustNew(instant)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Generate(ctx, benchReq); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGenerateStream(b *testing.B) {
	m := sim.MustNew(instant)
	ctx := context.Background()
	req := *benchReq
	req.Stream = func(llm.Chunk) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Generate(ctx, &req); err != nil {
			b.Fatal(err)
		}
	}
}
