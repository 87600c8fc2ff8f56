package cache

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// mapStore is the plain map + sync.RWMutex store the ristretto hit path is
// compared with.
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

// discardStore holds nothing: every Get misses, every Set is dropped.
type discardStore struct{}

func (discardStore) Get(context.Context, Key) (Entry, bool, error)        { return Entry{}, false, nil }
func (discardStore) Set(context.Context, Key, Entry, time.Duration) error { return nil }
func (discardStore) Name() string                                         { return "discard" }

func newRistrettoT(tb testing.TB, cfg RistrettoConfig) *Ristretto {
	tb.Helper()
	s, err := NewRistretto(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

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

func benchHit(b *testing.B, store Store) {
	req := benchReq()
	c := warm(b, store, req)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Generate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// benchHitParallel hits 64 warmed keys from every goroutine, so that the
// store's shards, not one key's lock, are what the goroutines share.
func benchHitParallel(b *testing.B, store Store) {
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
		i := 0
		for pb.Next() {
			if _, err := c.Generate(ctx, reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkHit(b *testing.B) {
	b.Run("ristretto", func(b *testing.B) { benchHit(b, newRistrettoT(b, RistrettoConfig{})) })
	b.Run("map", func(b *testing.B) { benchHit(b, newMapStore()) })
}

func BenchmarkHitParallel(b *testing.B) {
	b.Run("ristretto", func(b *testing.B) { benchHitParallel(b, newRistrettoT(b, RistrettoConfig{})) })
	b.Run("map", func(b *testing.B) { benchHitParallel(b, newMapStore()) })
}

// BenchmarkMiss measures a miss through the middleware over a client that
// answers at once; BenchmarkMiss/bare is that client alone, so the
// difference is what the cache adds to a miss (key, lookup, coalescing,
// and the set: the copy into the store's buffer on the caller's path, the
// rest on the store's goroutines).
//
// The rows:
//   - discard: a store that keeps nothing, so the middleware alone.
//   - ristretto, ristretto-nocoalesce: 4,096 distinct requests round-robin
//     into a store too small for any (MaxCost 1), so every call is a miss
//     whose set ristretto's policy rejects at once. The rows of the first
//     figures, kept for continuity; they leave out the work a store that
//     keeps answers does.
//   - ristretto-admit: the default 64 MiB store and a new key every call,
//     forever, so that ristretto admits every answer and, once full, evicts
//     one for each (and every lookup searches a map of a few hundred
//     thousand entries): the steady state of a store under misses, the
//     fairer measure of what a miss costs.
//
// Besides ns/op each row reports caller-ns/op, the CPU time of the
// benchmark's own thread per call: the caller's path, without the store's
// goroutines and without whatever else the machine ran. With an instant
// client a miss comes every few hundred ns, faster than the store's
// goroutines apply sets (~0.3 µs of work per set when ristretto rejects
// it, ~1.5 µs when it admits and evicts), so its buffer fills and callers
// apply batches themselves: callerSets/op counts the sets they applied.
// These rows measure the store's throughput as much as the caller's path;
// BenchmarkMissPaced measures the path.
func BenchmarkMiss(b *testing.B) {
	benchMiss(b, func() {})
}

// BenchmarkMissPaced is BenchmarkMiss over a client that works ~2.4 µs (a
// loop of multiplications) before it answers: still 25 times faster than
// a loopback HTTP call, but slow enough that at -cpu 2 the store's
// goroutines keep up on the other core (callerSets/op near 0), so that
// paced/X minus paced/bare is what a miss adds to its caller. At -cpu 1
// the store's work is in ns/op too.
func BenchmarkMissPaced(b *testing.B) { benchMiss(b, pacedWork) }

// pacedWork is the paced client's ~3 µs of work.
func pacedWork() { spinSink.Add(spin(2400)) }

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

// answering returns a client that does work and then answers text.
func answering(text string, work func()) llm.Client {
	answer := &llm.Response{Text: text, FinishReason: llm.FinishStop}
	return llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		work()
		return answer.Clone(), nil
	})
}

// missReqs are the miss benchmarks' requests: distinct, reused
// round-robin (rows whose store keeps nothing) unless a row asks for a new
// key every call (see the method).
type missReqs struct {
	all   []*llm.Request
	fresh *llm.Request
}

func newMissReqs() *missReqs {
	m := &missReqs{all: make([]*llm.Request, 4096), fresh: benchReq()}
	for i := range m.all {
		m.all[i] = benchReq()
		m.all[i].MaxTokens = i + 1
	}
	return m
}

// at returns the request of call i: a new key every call with fresh.
func (m *missReqs) at(i int, fresh bool) *llm.Request {
	if fresh {
		m.fresh.MaxTokens = i + 1
		return m.fresh
	}
	return m.all[i%len(m.all)]
}

// bigRistretto is the default 64 MiB store.
func bigRistretto(tb testing.TB) Store { return newRistrettoT(tb, RistrettoConfig{}) }

func benchMiss(b *testing.B, work func()) {
	next := answering("Paris.", work)
	reqs := newMissReqs()
	ctx := context.Background()
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		defer callerCPU(b)()
		i := 0
		for b.Loop() {
			next.Generate(ctx, reqs.at(i, false))
			i++
		}
	})
	for _, mode := range []struct {
		name  string
		store func(testing.TB) Store
		opts  []Option
		fresh bool // a new key every call
	}{
		{"discard", func(testing.TB) Store { return discardStore{} }, nil, false},
		// Each entry costs more than the store holds, so none is kept:
		// every call is a miss that sets.
		{"ristretto", tinyRistretto, nil, false},
		{"ristretto-nocoalesce", tinyRistretto, []Option{WithoutCoalescing()}, false},
		{"ristretto-admit", bigRistretto, nil, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			st := mode.store(b)
			mw, _ := Middleware(st, mode.opts...)
			c := mw(next)
			b.ReportAllocs()
			defer callerCPU(b)()
			i := 0
			for b.Loop() {
				if _, err := c.Generate(ctx, reqs.at(i, mode.fresh)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if r, ok := st.(*Ristretto); ok {
				b.ReportMetric(float64(r.buf.callerSets.Load())/float64(b.N), "callerSets/op")
				b.ReportMetric(float64(r.buf.wakes.Load())/float64(b.N), "wakes/op")
				b.ReportMetric(float64(r.buf.drained.Load())/float64(b.N), "drained/op")
			}
		})
	}
}

// callerCPU locks the benchmark's goroutine to its OS thread and returns a
// function, to defer, that reports the thread's CPU time per op as
// caller-ns/op: the caller's own path, whatever the store's goroutines
// (other threads) cost and whoever else shared the machine. ns/op is wall
// time and includes both.
func callerCPU(b *testing.B) func() {
	runtime.LockOSThread()
	start, ok := threadCPU()
	return func() {
		if end, ok2 := threadCPU(); ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "caller-ns/op")
		}
		runtime.UnlockOSThread()
	}
}

func tinyRistretto(tb testing.TB) Store {
	return newRistrettoT(tb, RistrettoConfig{MaxCost: 1, MaxItemBytes: 1 << 20})
}

// BenchmarkMissParallel misses from every goroutine at once, each on keys
// of its own (a per-goroutine id and counter in MaxTokens, no formatting in
// the loop), so that what the goroutines share is the middleware's own
// state: the flight map, the store. It scales with -cpu only if misses on
// different keys do not serialise.
func BenchmarkMissParallel(b *testing.B) {
	answer := &llm.Response{Text: "Paris.", FinishReason: llm.FinishStop}
	next := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return answer.Clone(), nil
	})
	for _, mode := range []struct {
		name  string
		store func() Store
		opts  []Option
	}{
		// discard keeps nothing and costs nothing: what is left is the
		// middleware alone (key, lookup, flights, keep).
		{"discard", func() Store { return discardStore{} }, nil},
		// ristretto applies every Set on one goroutine of its own, which
		// bounds how far misses that all set can scale.
		{"ristretto", func() Store { return newRistrettoT(b, RistrettoConfig{MaxCost: 1, MaxItemBytes: 1 << 20}) }, nil},
		{"ristretto-nocoalesce", func() Store { return newRistrettoT(b, RistrettoConfig{MaxCost: 1, MaxItemBytes: 1 << 20}) }, []Option{WithoutCoalescing()}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			mw, _ := Middleware(mode.store(), mode.opts...)
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

func BenchmarkKey(b *testing.B) {
	for _, size := range []int{64, 4096} {
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

// addedBlock is how many calls BenchmarkMissAdded makes of each kind in
// turn: ~100 µs of each, far shorter than the minutes over which a shared
// VM's speed drifts, far longer than a clock read.
const addedBlock = 32

// BenchmarkMissAdded measures what a miss adds to its caller's CPU time
// more robustly than BenchmarkMissPaced/X minus /bare, whose rows run
// seconds apart on a machine whose speed drifts by ±30% over minutes. Each
// op makes addedBlock calls of the paced client alone, then addedBlock
// misses through the middleware over it, reading the thread's CPU time
// around each block (the goroutine is locked to its thread): added-ns/miss
// is the difference per call, bare-ns/call the client alone. ns/op is per
// pair of blocks. Stores as in BenchmarkMiss.
func BenchmarkMissAdded(b *testing.B) {
	reqs := newMissReqs()
	ctx := context.Background()
	for _, mode := range []struct {
		name  string
		store func(testing.TB) Store
		fresh bool // a new key every call
		text  string
	}{
		{"discard", func(testing.TB) Store { return discardStore{} }, false, "Paris."},
		{"ristretto", tinyRistretto, false, "Paris."},
		// A 64 MiB store full of the shortest answers (~250 bytes each
		// with the entry's overhead): the most entries, the biggest index.
		{"ristretto-admit", bigRistretto, true, "Paris."},
		// The same with 2 KiB answers, nearer what models write.
		{"ristretto-admit-2KiB", bigRistretto, true, strings.Repeat("x", 2<<10)},
	} {
		b.Run(mode.name, func(b *testing.B) {
			next := answering(mode.text, pacedWork)
			st := mode.store(b)
			mw, _ := Middleware(st)
			c := mw(next)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var bare, cached int64
			calls, i := 0, 0
			for b.Loop() {
				t0, ok0 := threadCPU()
				for j := range addedBlock {
					next.Generate(ctx, reqs.at(i+j, false))
				}
				t1, ok1 := threadCPU()
				for range addedBlock {
					if _, err := c.Generate(ctx, reqs.at(i, mode.fresh)); err != nil {
						b.Fatal(err)
					}
					i++
				}
				t2, ok2 := threadCPU()
				if !ok0 || !ok1 || !ok2 {
					b.Skip("no thread CPU clock here")
				}
				bare += t1 - t0
				cached += t2 - t1
				calls += addedBlock
			}
			b.ReportMetric(float64(cached-bare)/float64(calls), "added-ns/miss")
			b.ReportMetric(float64(bare)/float64(calls), "bare-ns/call")
		})
	}
}
