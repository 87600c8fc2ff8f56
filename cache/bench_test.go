package cache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// mapStore is a plain map + sync.RWMutex store: the reference the
// ristretto store is compared with, and a store for tests that need one
// that applies sets at once.
type mapStore struct {
	mu sync.RWMutex
	m  map[Key]Entry
}

func newMapStore() *mapStore { return &mapStore{m: make(map[Key]Entry)} }

func (s *mapStore) Get(_ context.Context, k Key) (Entry, bool, error) {
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	return e, ok, nil
}

func (s *mapStore) Set(_ context.Context, k Key, e Entry, _ time.Duration) error {
	s.mu.Lock()
	s.m[k] = e
	s.mu.Unlock()
	return nil
}

func (s *mapStore) Name() string { return "map" }

// discardStore holds nothing: every Get misses, every Set is dropped.
type discardStore struct{}

func (discardStore) Get(context.Context, Key) (Entry, bool, error)        { return Entry{}, false, nil }
func (discardStore) Set(context.Context, Key, Entry, time.Duration) error { return nil }
func (discardStore) Name() string                                         { return "discard" }

func benchReq() *llm.Request {
	return &llm.Request{
		Model:       "gpt-4o-mini",
		System:      "You are a concise assistant.",
		Messages:    []llm.Message{llm.User("What is the capital of France? Answer in one word.")},
		MaxTokens:   64,
		Temperature: llm.Ptr(0.0),
		Tenant:      "tenant-a",
	}
}

func newRistrettoT(tb testing.TB, cfg RistrettoConfig) *Ristretto {
	tb.Helper()
	s, err := NewRistretto(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// tinyRistretto is a store with room for no answer besides its fixed
// structures: ristretto's policy rejects every set.
func tinyRistretto(tb testing.TB) Store {
	return newRistrettoT(tb, RistrettoConfig{MaxCost: ristrettoFixed(10_000) + 64, MaxItemBytes: 1 << 20})
}

// bigRistretto is the default 64 MiB store.
func bigRistretto(tb testing.TB) Store { return newRistrettoT(tb, RistrettoConfig{}) }

// warm returns a client over store whose cache holds the answer to req.
func warm(tb testing.TB, store Store, req *llm.Request) llm.Client {
	tb.Helper()
	mw, err := Middleware(store)
	if err != nil {
		tb.Fatal(err)
	}
	c := mw(&llmtest.Fake{Default: llmtest.Step{Text: "Paris."}})
	if _, err := c.Generate(context.Background(), req); err != nil {
		tb.Fatal(err)
	}
	if r, ok := store.(*Ristretto); ok {
		r.Wait()
	}
	resp, err := c.Generate(context.Background(), req)
	if err != nil || !resp.Cached {
		tb.Fatalf("warm-up did not hit: %+v, %v", resp, err)
	}
	return c
}

func benchHit(b *testing.B, store Store, req *llm.Request) {
	c := warm(b, store, req)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Generate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHit is a hit through the middleware over ristretto and, in the
// same run, over a plain map.
func BenchmarkHit(b *testing.B) {
	b.Run("ristretto", func(b *testing.B) { benchHit(b, bigRistretto(b), benchReq()) })
	b.Run("map", func(b *testing.B) { benchHit(b, newMapStore(), benchReq()) })
}

// BenchmarkHitPromptSize is a hit on prompts of 1 KiB to 256 KiB: the key
// is hashed as a stream, so the cost per byte stays the same (validation
// and the hash are all that grow) and the allocations do not change.
func BenchmarkHitPromptSize(b *testing.B) {
	for _, size := range promptSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			benchHit(b, bigRistretto(b), sizedReq(size))
		})
	}
}

// BenchmarkHitParallel hits 64 warmed keys from every goroutine, so that
// the store's shards, not one key's lock, are what the goroutines share.
func BenchmarkHitParallel(b *testing.B) {
	for _, mode := range []struct {
		name  string
		store func(testing.TB) Store
	}{
		{"ristretto", bigRistretto},
		{"map", func(testing.TB) Store { return newMapStore() }},
	} {
		b.Run(mode.name, func(b *testing.B) {
			store := mode.store(b)
			reqs := make([]*llm.Request, 64)
			var c llm.Client
			for i := range reqs {
				reqs[i] = benchReq()
				reqs[i].MaxTokens = i + 1
				c = warm(b, store, reqs[i])
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if _, err := c.Generate(ctx, reqs[i%len(reqs)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// answering returns a client that does work and then answers text.
func answering(text string, work func()) llm.Client {
	answer := &llm.Response{Text: text, FinishReason: llm.FinishStop}
	return llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		work()
		return answer.Clone(), nil
	})
}

// BenchmarkMiss is a miss through the middleware over a client that
// answers at once; Miss/bare is that client alone, so the difference is
// what the cache adds to a miss. The rows:
//   - discard: a store that keeps nothing, so the middleware alone;
//   - ristretto, ristretto-nocoalesce: a store too small for any answer,
//     so every call is a miss whose set ristretto rejects;
//   - ristretto-admit: the default 64 MiB store and a new key every call,
//     so that ristretto admits every answer and, once full, evicts one for
//     each: the steady state of a store under misses.
//
// ristretto applies sets on a goroutine of its own, so at -cpu 1 its work
// is in ns/op, and at -cpu 2 mostly on the other core.
func BenchmarkMiss(b *testing.B) { benchMiss(b, func() {}) }

// BenchmarkMissPaced is BenchmarkMiss over a client that works ~2.5 µs
// before it answers: still 25 times faster than a loopback HTTP call, but
// slow enough that ristretto's goroutine keeps up on another core.
func BenchmarkMissPaced(b *testing.B) { benchMiss(b, func() { spinSink.Add(spin(2400)) }) }

// spin does n dependent multiply-adds, a fixed amount of CPU work that no
// compiler removes (its result is stored).
func spin(n int) uint64 {
	x := uint64(n)
	for range n {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

var spinSink atomic.Uint64

func benchMiss(b *testing.B, work func()) {
	next := answering("Paris.", work)
	ctx := context.Background()
	// 4,096 distinct requests round-robin, or a new key every call.
	reqs := make([]*llm.Request, 4096)
	for i := range reqs {
		reqs[i] = benchReq()
		reqs[i].MaxTokens = i + 1
	}
	fresh := benchReq()
	at := func(i int, isFresh bool) *llm.Request {
		if isFresh {
			fresh.MaxTokens = i + 1
			return fresh
		}
		return reqs[i%len(reqs)]
	}
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			next.Generate(ctx, at(i, false))
		}
	})
	for _, mode := range []struct {
		name  string
		store func(testing.TB) Store
		opts  []Option
		fresh bool
	}{
		{"discard", func(testing.TB) Store { return discardStore{} }, nil, false},
		{"ristretto", tinyRistretto, nil, false},
		{"ristretto-nocoalesce", tinyRistretto, []Option{WithoutCoalescing()}, false},
		{"ristretto-admit", bigRistretto, nil, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			mw, _ := Middleware(mode.store(b), mode.opts...)
			c := mw(next)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := c.Generate(ctx, at(i, mode.fresh)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMissParallel misses from every goroutine at once, each on keys
// of its own, so that what the goroutines share is the middleware's own
// state: the flights, the store. It scales with -cpu only if misses on
// different keys do not serialise.
func BenchmarkMissParallel(b *testing.B) {
	next := answering("Paris.", func() {})
	for _, mode := range []struct {
		name  string
		store func(testing.TB) Store
		opts  []Option
	}{
		{"discard", func(testing.TB) Store { return discardStore{} }, nil},
		{"ristretto", tinyRistretto, nil},
		{"ristretto-nocoalesce", tinyRistretto, []Option{WithoutCoalescing()}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			mw, _ := Middleware(mode.store(b), mode.opts...)
			c := mw(next)
			ctx := context.Background()
			var ids atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := benchReq()
				base := int(ids.Add(1)) << 32
				for i := 0; pb.Next(); i++ {
					req.MaxTokens = base + i
					if _, err := c.Generate(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkKey is KeyOf alone at prompt sizes from 64 B to 256 KiB.
func BenchmarkKey(b *testing.B) {
	for _, size := range append([]int{64, 4096}, promptSizes[1:]...) {
		req := benchReq()
		req.Messages = []llm.Message{llm.User(strings.Repeat("x", size))}
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := KeyOf(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
