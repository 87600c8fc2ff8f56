package bench_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/llmkit/llmkit/llm"
)

// BenchmarkWholeStack measures one call through each contender, in one
// run, so that their figures compare:
//
//   - miss: a new question on every call, so the cache misses, the
//     provider answers and the answer is stored;
//   - hit: the same question on every call, answered from the cache;
//   - miss-parallel, hit-parallel: the same from every P at once.
//
// The request is reused, its question replaced between calls: neither
// stack keeps the request after Generate returns. Everything a benchmark
// sets up, it sets up the same way whatever b.N, so that callgrind.sh's
// difference of two runs cancels it. A miss benchmark ends by waiting
// until the stack has applied every answer it was given to store: a
// store that does that work on goroutines of its own (llmkit's) is
// charged for all of it, whenever the scheduler ran them.
func BenchmarkWholeStack(b *testing.B) {
	ctx := context.Background()
	for _, c := range contenders {
		b.Run("miss/"+c.name, func(b *testing.B) {
			client, settle := c.build(b, instant)
			q := &questions{}
			req := request("")
			b.ReportAllocs()
			for b.Loop() {
				req.Messages[0].Content = q.next()
				resp, err := client.Generate(ctx, req)
				if err != nil || resp.Cached {
					b.Fatalf("want a miss, got cached=%v err=%v", resp != nil && resp.Cached, err)
				}
			}
			settle() // out of the timed loop, but in callgrind's count
		})
	}
	for _, c := range contenders {
		if !c.cache {
			continue
		}
		b.Run("hit/"+c.name, func(b *testing.B) {
			client, settle := c.build(b, instant)
			req := request("what is the refund policy?")
			warm(b, client, settle, req)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Generate(ctx, req)
				if err != nil || !resp.Cached {
					b.Fatalf("want a hit, got cached=%v err=%v", resp != nil && resp.Cached, err)
				}
			}
		})
	}
	for _, c := range contenders {
		b.Run("miss-parallel/"+c.name, func(b *testing.B) {
			client, settle := c.build(b, instant)
			var sources atomic.Uint32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				// Each goroutine asks its own questions: the same miss in
				// flight twice would be coalesced by llmkit.
				q := &questions{source: uint16(sources.Add(1))}
				req := request("")
				for pb.Next() {
					req.Messages[0].Content = q.next()
					resp, err := client.Generate(ctx, req)
					if err != nil || resp.Cached {
						b.Errorf("want a miss, got cached=%v err=%v", resp != nil && resp.Cached, err)
						return
					}
				}
			})
			settle()
		})
	}
	for _, c := range contenders {
		if !c.cache {
			continue
		}
		b.Run("hit-parallel/"+c.name, func(b *testing.B) {
			client, settle := c.build(b, instant)
			req := request("what is the refund policy?")
			warm(b, client, settle, req)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Generate(ctx, req)
					if err != nil || !resp.Cached {
						b.Errorf("want a hit, got cached=%v err=%v", resp != nil && resp.Cached, err)
						return
					}
				}
			})
		})
	}
}

// warm asks req once and waits until its answer is served from the cache.
func warm(tb testing.TB, client llm.Client, settle func(), req *llm.Request) {
	tb.Helper()
	if _, err := client.Generate(context.Background(), req); err != nil {
		tb.Fatal(err)
	}
	settle()
}

// TestWholeStackAllocs pins the allocations of one call through each
// contender that has a budget: a miss (a new question each call) and a
// hit.
func TestWholeStackAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	const runs = 200
	ctx := context.Background()
	for _, c := range contenders {
		t.Run(c.name, func(t *testing.T) {
			client, settle := c.build(t, instant)
			q := &questions{}
			reqs := make([]*llm.Request, runs+1) // AllocsPerRun calls once more to warm up
			for i := range reqs {
				reqs[i] = request(q.next())
			}
			i := 0
			miss := testing.AllocsPerRun(runs, func() {
				resp, err := client.Generate(ctx, reqs[i])
				if err != nil || resp.Cached {
					t.Fatalf("want a miss, got cached=%v err=%v", resp != nil && resp.Cached, err)
				}
				i++
			})
			t.Logf("a miss allocates %v times", miss)
			if c.allocs != nil && miss > c.allocs.miss {
				t.Errorf("a miss allocates %v times, budget %v", miss, c.allocs.miss)
			}
			if !c.cache {
				return
			}
			req := request("what is the refund policy?")
			warm(t, client, settle, req)
			hit := testing.AllocsPerRun(runs, func() {
				resp, err := client.Generate(ctx, req)
				if err != nil || !resp.Cached {
					t.Fatalf("want a hit, got cached=%v err=%v", resp != nil && resp.Cached, err)
				}
			})
			t.Logf("a hit allocates %v times", hit)
			if c.allocs != nil && hit > c.allocs.hit {
				t.Errorf("a hit allocates %v times, budget %v", hit, c.allocs.hit)
			}
		})
	}
}
