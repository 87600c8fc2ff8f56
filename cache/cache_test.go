package cache

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// recorder counts the events a call reports, by kind, and remembers their
// sources.
type recorder struct {
	mu      sync.Mutex
	counts  map[llm.EventKind]int
	sources map[string]bool
	errs    []error
}

func newRecorder() *recorder {
	return &recorder{counts: map[llm.EventKind]int{}, sources: map[string]bool{}}
}

func (r *recorder) Observe(_ context.Context, ev llm.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[ev.Kind]++
	if ev.Source != "" {
		r.sources[ev.Source] = true
	}
	if ev.Err != nil {
		r.errs = append(r.errs, ev.Err)
	}
}

func (r *recorder) n(k llm.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[k]
}

func det(text string) *llm.Request {
	r := llm.Prompt(text)
	r.Temperature = llm.Ptr(0.0)
	return r
}

// setup returns a client caching over a fresh ristretto store in front of
// up, and a context that records events.
func setup(t *testing.T, up llm.Client, opts ...Option) (llm.Client, *Ristretto, context.Context, *recorder) {
	t.Helper()
	st := newRistrettoT(t, RistrettoConfig{})
	mw, err := Middleware(st, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	return mw(up), st, llm.WithObserver(context.Background(), rec), rec
}

func TestConformance(t *testing.T) {
	factory := func(t *testing.T, up llm.Client) llm.Client {
		st := newRistrettoT(t, RistrettoConfig{})
		mw, err := Middleware(st)
		if err != nil {
			t.Fatal(err)
		}
		return mw(up)
	}
	t.Run("deterministic", func(t *testing.T) { llmtest.Run(t, factory) })
	t.Run("nondeterministic", func(t *testing.T) {
		llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client {
			st := newRistrettoT(t, RistrettoConfig{})
			mw, err := Middleware(st, WithNondeterministic(), WithReplayChunkBytes(3))
			if err != nil {
				t.Fatal(err)
			}
			return mw(up)
		})
	})
}

func TestHitReturnsACopyMarkedCached(t *testing.T) {
	up := &llmtest.Fake{Default: llmtest.Step{Text: "Paris", Response: &llm.Response{
		Quota: &llm.Quota{RemainingRequests: 9}, Attempts: 2, Usage: llm.Usage{InputTokens: 5, OutputTokens: 1},
	}}}
	c, st, ctx, rec := setup(t, up)
	first, err := c.Generate(ctx, det("capital of France?"))
	if err != nil || first.Cached || first.Text != "Paris" {
		t.Fatalf("miss = %+v, %v", first, err)
	}
	st.Wait()
	first.Text = "changed by the first caller"
	hit1, err := c.Generate(ctx, det("capital of France?"))
	if err != nil {
		t.Fatal(err)
	}
	hit1.Text = "changed by the second caller"
	hit2, _ := c.Generate(ctx, det("capital of France?"))
	if up.Calls() != 1 {
		t.Fatalf("upstream calls = %d, want 1", up.Calls())
	}
	if hit1 == hit2 || !hit2.Cached || hit2.Text != "Paris" {
		t.Fatalf("second hit = %+v (same pointer: %v)", hit2, hit1 == hit2)
	}
	if hit2.Quota != nil || hit2.Attempts != 0 || hit2.Usage.InputTokens != 5 {
		t.Fatalf("hit carries a stale quota or attempts, or lost usage: %+v", hit2)
	}
	if rec.n(llm.EventCacheHit) != 2 || rec.n(llm.EventCacheMiss) != 1 || rec.n(llm.EventCacheStore) != 1 {
		t.Fatalf("events = %v", rec.counts)
	}
	if !rec.sources["ristretto"] || len(rec.sources) != 1 {
		t.Fatalf("event sources = %v, want ristretto", rec.sources)
	}
}

func TestNondeterministicNotCachedByDefault(t *testing.T) {
	for _, temp := range []*float64{nil, llm.Ptr(0.7)} {
		up := &llmtest.Fake{}
		c, st, ctx, rec := setup(t, up)
		req := llm.Prompt("tell me a story")
		req.Temperature = temp
		for range 2 {
			if _, err := c.Generate(ctx, req); err != nil {
				t.Fatal(err)
			}
			st.Wait()
		}
		if up.Calls() != 2 || rec.n(llm.EventCacheStore) != 0 {
			t.Fatalf("temperature %v: calls=%d stores=%d, want 2 and 0", temp, up.Calls(), rec.n(llm.EventCacheStore))
		}
	}
	up := &llmtest.Fake{}
	c, st, ctx, _ := setup(t, up, WithNondeterministic())
	c.Generate(ctx, llm.Prompt("tell me a story"))
	st.Wait()
	resp, _ := c.Generate(ctx, llm.Prompt("tell me a story"))
	if up.Calls() != 1 || !resp.Cached {
		t.Fatalf("WithNondeterministic: calls=%d cached=%v", up.Calls(), resp.Cached)
	}
}

func TestCacheModes(t *testing.T) {
	up := &llmtest.Fake{}
	c, st, ctx, _ := setup(t, up)
	req := det("q")
	req.Cache = llm.CacheSkipStore
	c.Generate(ctx, req)
	st.Wait()
	if resp, _ := c.Generate(ctx, det("q")); resp.Cached {
		t.Fatal("CacheSkipStore stored the answer")
	}
	st.Wait() // the plain call above stored it
	req = det("q")
	req.Cache = llm.CacheSkipRead
	if resp, _ := c.Generate(ctx, req); resp.Cached {
		t.Fatal("CacheSkipRead read the cache")
	}
	req.Cache = llm.CacheBypass
	if resp, _ := c.Generate(ctx, req); resp.Cached {
		t.Fatal("CacheBypass read the cache")
	}
	if resp, _ := c.Generate(ctx, det("q")); !resp.Cached {
		t.Fatal("a plain request missed an entry that is there")
	}
	if up.Calls() != 4 {
		t.Fatalf("upstream calls = %d, want 4", up.Calls())
	}
}

// TestNeverStored: errors, degraded answers, cut streams and unfinished
// answers are not stored.
func TestNeverStored(t *testing.T) {
	streamed := func(r *llm.Request) *llm.Request {
		r.Stream = func(llm.Chunk) error { return nil }
		return r
	}
	cases := []struct {
		name string
		step llmtest.Step
		req  func(*llm.Request) *llm.Request
		opts []Option
	}{
		{"error", llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}, nil, nil},
		{"degraded", llmtest.Step{Response: &llm.Response{Degraded: true, DegradedReason: llm.KindTimeout}}, nil, nil},
		{"stream cut", llmtest.Step{Chunks: []string{"a", "b", "c"}, CutAfter: 2}, streamed, nil},
		{"length", llmtest.Step{Response: &llm.Response{FinishReason: llm.FinishLength}}, nil, nil},
		{"content filter", llmtest.Step{Response: &llm.Response{FinishReason: llm.FinishContentFilter}}, nil, nil},
		{"custom rule", llmtest.Step{Text: "I don't know"}, nil,
			[]Option{WithStoreIf(func(r *llm.Response) bool { return r.Text != "I don't know" })}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := &llmtest.Fake{Steps: []llmtest.Step{tc.step}, Default: llmtest.Step{Text: "fresh"}}
			c, st, ctx, rec := setup(t, up, tc.opts...)
			req := det("q " + tc.name)
			if tc.req != nil {
				req = tc.req(req)
			}
			c.Generate(ctx, req)
			st.Wait()
			resp, err := c.Generate(ctx, det("q "+tc.name))
			if err != nil || resp.Cached || resp.Text != "fresh" || up.Calls() != 2 {
				t.Fatalf("second call = %+v, %v after %d calls: the first outcome was stored", resp, err, up.Calls())
			}
			if rec.n(llm.EventCacheStore) != 1 { // only the second, good, answer
				t.Fatalf("stores = %d, want 1", rec.n(llm.EventCacheStore))
			}
		})
	}
	t.Run("length stored when allowed", func(t *testing.T) {
		up := &llmtest.Fake{Default: llmtest.Step{Response: &llm.Response{FinishReason: llm.FinishLength}}}
		c, st, ctx, _ := setup(t, up, WithStoreIf(func(*llm.Response) bool { return true }))
		c.Generate(ctx, det("q"))
		st.Wait()
		if resp, _ := c.Generate(ctx, det("q")); !resp.Cached {
			t.Fatal("WithStoreIf(always) did not store a length-cut answer")
		}
	})
	t.Run("degraded never, whatever WithStoreIf says", func(t *testing.T) {
		up := &llmtest.Fake{Default: llmtest.Step{Response: &llm.Response{Degraded: true}}}
		c, st, ctx, _ := setup(t, up, WithStoreIf(func(*llm.Response) bool { return true }))
		c.Generate(ctx, det("q"))
		st.Wait()
		if resp, _ := c.Generate(ctx, det("q")); resp.Cached {
			t.Fatal("a degraded answer was stored")
		}
	})
}

// countingStore records how often it is asked.
type countingStore struct {
	Store
	mu         sync.Mutex
	gets, sets int
}

func (s *countingStore) Get(ctx context.Context, k Key) (Entry, bool, error) {
	s.mu.Lock()
	s.gets++
	s.mu.Unlock()
	return s.Store.Get(ctx, k)
}

func (s *countingStore) Set(ctx context.Context, k Key, e Entry, ttl time.Duration) error {
	s.mu.Lock()
	s.sets++
	s.mu.Unlock()
	return s.Store.Set(ctx, k, e, ttl)
}

func TestOversizedPromptRejectedBeforeTheStore(t *testing.T) {
	st := &countingStore{Store: newMapStore()}
	mw, err := Middleware(st, WithLimits(llm.Limits{MaxContentBytes: 1024}))
	if err != nil {
		t.Fatal(err)
	}
	up := &llmtest.Fake{}
	_, err = mw(up).Generate(context.Background(), det(strings.Repeat("x", 1025)))
	if !errors.Is(err, llm.ErrBadRequest) {
		t.Fatalf("err = %v, want bad_request", err)
	}
	if up.Calls() != 0 || st.gets != 0 || st.sets != 0 {
		t.Fatalf("upstream calls %d, store gets %d sets %d: want all 0", up.Calls(), st.gets, st.sets)
	}
}

func TestStreaming(t *testing.T) {
	up := &llmtest.Fake{Default: llmtest.Step{Chunks: []string{"The ", "answer ", "is ", "42."}}}
	c, st, ctx, _ := setup(t, up, WithReplayChunkBytes(5))
	var live []llm.Chunk
	req := det("q")
	req.Stream = func(ch llm.Chunk) error { live = append(live, ch); return nil }
	resp, err := c.Generate(ctx, req)
	if err != nil || len(live) != 4 || resp.Cached {
		t.Fatalf("miss streamed %d chunks, resp %+v, %v: want 4 live chunks", len(live), resp, err)
	}
	st.Wait()
	var replay []llm.Chunk
	req.Stream = func(ch llm.Chunk) error { replay = append(replay, ch); return nil }
	resp, err = c.Generate(ctx, req)
	if err != nil || !resp.Cached {
		t.Fatalf("hit = %+v, %v", resp, err)
	}
	var b strings.Builder
	for i, ch := range replay {
		if ch.Index != i {
			t.Fatalf("replayed chunk %d has index %d", i, ch.Index)
		}
		b.WriteString(ch.Text)
	}
	if b.String() != "The answer is 42." || len(replay) != 4 {
		t.Fatalf("replay = %q in %d chunks", b.String(), len(replay))
	}
	stop := errors.New("stop")
	req.Stream = func(llm.Chunk) error { return stop }
	if _, err := c.Generate(ctx, req); !errors.Is(err, stop) {
		t.Fatalf("replay ignored the callback's error: %v", err)
	}
}

func TestReplayUTF8(t *testing.T) {
	var got []string
	err := replay(func(ch llm.Chunk) error { got = append(got, ch.Text); return nil }, "héllo wörld", 2)
	if err != nil || strings.Join(got, "") != "héllo wörld" {
		t.Fatalf("replay = %q, %v", got, err)
	}
	for _, s := range got[:len(got)-1] {
		if !strings.ContainsRune(s, 'é') && !strings.ContainsRune(s, 'ö') && len(s) != 2 {
			t.Fatalf("chunk %q is not 2 bytes", s)
		}
		if !utf8Valid(s) {
			t.Fatalf("chunk %q splits a character", s)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestTenantIsolation(t *testing.T) {
	up := &llmtest.Fake{Func: func(_ int, r *llm.Request) llmtest.Step { return llmtest.Step{Text: "for " + r.Tenant} }}
	c, st, ctx, rec := setup(t, up)
	a := det("the secret plan")
	a.Tenant = "A"
	c.Generate(ctx, a)
	st.Wait()
	if resp, _ := c.Generate(ctx, a); !resp.Cached {
		t.Fatal("tenant A missed its own entry")
	}
	hitsBefore := rec.n(llm.EventCacheHit)
	b := det("the secret plan")
	b.Tenant = "B"
	resp, err := c.Generate(ctx, b)
	if err != nil || resp.Text != "for B" || resp.Cached {
		t.Fatalf("tenant B got %+v, %v", resp, err)
	}
	if hits := rec.n(llm.EventCacheHit) - hitsBefore; hits != 0 {
		t.Fatalf("tenant B asking tenant A's exact prompt got %d hits, want 0", hits)
	}
	st.Wait()
	if resp, _ := c.Generate(ctx, b); !resp.Cached || resp.Text != "for B" {
		t.Fatalf("tenant B's repeat = %+v, want its own cached answer", resp)
	}
	if up.Calls() != 2 {
		t.Fatalf("upstream calls = %d, want 2 (A once, B once)", up.Calls())
	}
}

func TestOptionsValidated(t *testing.T) {
	st := newMapStore()
	for _, o := range []Option{WithTTL(0), WithGrace(-1), WithStoreIf(nil), WithReplayChunkBytes(0),
		WithLimits(llm.Limits{MaxStop: -1})} {
		if _, err := New(st, o); err == nil {
			t.Errorf("option accepted an invalid value")
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	if _, err := New(st, nil); err != nil {
		t.Errorf("a nil option was not ignored: %v", err)
	}
	if _, err := NewRistretto(RistrettoConfig{MaxCost: -1}); err == nil {
		t.Error("NewRistretto accepted a negative MaxCost")
	}
}

func TestHitAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation budgets are checked without -race (sync.Pool drops items under it)")
	}
	st := newRistrettoT(t, RistrettoConfig{})
	req := benchReq()
	c := warm(t, st, req)
	ctx := context.Background()
	n := testing.AllocsPerRun(200, func() {
		if _, err := c.Generate(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Fatalf("a hit allocates %v times, want at most 1", n)
	}
}

func TestFlightShardFillsACacheLine(t *testing.T) {
	if n := unsafe.Sizeof(flightShard{}); n%64 != 0 {
		t.Fatalf("flightShard is %d bytes, not whole cache lines: neighbouring shards' locks would share one", n)
	}
}

// TestMissAllocs pins what a miss allocates besides the wrapped client's
// own answer. On the caller's path: nothing when the store is a Ristretto
// (the answer is copied into the store's buffer), the stored copy over any
// other store, nothing when the answer is not stored and nobody joins the
// flight. The Ristretto store then makes two allocations per set on its
// own goroutine (the item holding the entry and the answer's copy, and
// ristretto's buffered item), pinned as the whole cost of a miss.
func TestMissAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation budgets are checked without -race (sync.Pool drops items under it)")
	}
	answer := &llm.Response{Text: "Paris.", FinishReason: llm.FinishStop}
	next := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return answer, nil })
	for _, tc := range []struct {
		name      string
		generic   bool // a Store without Ristretto's shortcuts
		opts      []Option
		want      float64 // on the caller's path
		wantTotal float64 // with the store's goroutine's (Ristretto only)
	}{
		{"stored", false, nil, 0, 2},
		{"stored-nocoalesce", false, []Option{WithoutCoalescing()}, 0, 2},
		{"not-stored", false, []Option{WithStoreIf(func(*llm.Response) bool { return false })}, 0, 0},
		{"not-stored-nocoalesce", false, []Option{WithoutCoalescing(), WithStoreIf(func(*llm.Response) bool { return false })}, 0, 0},
		// Any other store: the stored copy is the one allocation.
		{"generic-store", true, nil, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each entry costs more than the store holds: every call misses.
			rs := newRistrettoT(t, RistrettoConfig{MaxCost: 1, MaxItemBytes: 1 << 20})
			var st Store = rs
			if tc.generic {
				st = discardStore{}
			}
			mw, err := Middleware(st, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			c := mw(next)
			req := benchReq()
			ctx := context.Background()
			miss := func() {
				req.MaxTokens++ // a new key every call
				resp, err := c.Generate(ctx, req)
				if err != nil || resp != answer {
					t.Fatalf("miss = %p, %v; want the wrapped client's answer", resp, err)
				}
			}
			// The caller's path alone: the store's goroutine is held off
			// (200 sets fit its buffer).
			resume := pauseDrainer(rs)
			n := testing.AllocsPerRun(200, miss)
			resume()
			rs.Wait()
			t.Logf("a miss allocates %v times on the caller's path", n)
			if n > tc.want {
				t.Fatalf("a miss allocates %v times on the caller's path, want at most %v", n, tc.want)
			}
			// Everything, the store's goroutine included: Wait applies
			// the buffer (its own allocations are counted apart).
			const runs = 200
			waitAllocs := testing.AllocsPerRun(10, rs.Wait)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				miss()
			}
			rs.Wait()
			runtime.ReadMemStats(&after)
			total := (float64(after.Mallocs-before.Mallocs) - waitAllocs) / runs
			t.Logf("a miss allocates %.2f times in all", total)
			if total > tc.wantTotal+0.05 {
				t.Fatalf("a miss allocates %.2f times in all, want at most %v", total, tc.wantTotal)
			}
		})
	}
}

// pauseDrainer holds r's buffer drainer off (it waits for each shard) and
// returns the function that lets it go. Sets are buffered meanwhile; a set
// that finds its shard full would wait too.
func pauseDrainer(r *Ristretto) (resume func()) {
	for i := range r.buf.shards {
		r.buf.shards[i].applying.Lock()
	}
	return func() {
		for i := range r.buf.shards {
			r.buf.shards[i].applying.Unlock()
		}
	}
}

// TestNowReadsOneClockAndReanchors checks the deadline clock: it tells the
// time as time.Now does, offsets its anchor while the anchor is younger
// than anchorAge, and takes a new anchor after that.
func TestNowReadsOneClockAndReanchors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c clock
		check := func() *anchor {
			t.Helper()
			if got, want := c.now(), time.Now(); !got.Equal(want) {
				t.Fatalf("now() = %v, want %v", got, want)
			}
			return c.anchor.Load()
		}
		first := check()
		time.Sleep(anchorAge * 7 / 10)
		if a := check(); a != first {
			t.Fatal("a young anchor was replaced: now() read the wall clock again")
		}
		time.Sleep(anchorAge * 7 / 10)
		if a := check(); a == first {
			t.Fatal("an anchor older than anchorAge was kept")
		}
	})
}

// Subscribed at construction, an observer hears the cache's hits, misses
// and stores as one on the call's context does; through an opaque client
// the subscription is refused and nothing is added.
func TestSubscribe(t *testing.T) {
	up := &llmtest.Fake{Default: llmtest.Step{Text: "answer"}}
	c, st, ctx, rec := setup(t, up)
	sub := newRecorder()
	if !llm.Subscribe(c, sub) {
		t.Fatal("cache over a Fake refused the subscription")
	}
	for range 3 {
		if _, err := c.Generate(ctx, det("q")); err != nil {
			t.Fatal(err)
		}
		st.Wait()
	}
	if !maps.Equal(sub.counts, rec.counts) || sub.n(llm.EventCacheHit) != 2 || sub.n(llm.EventCacheStore) != 1 {
		t.Fatalf("subscribed observer heard %v, the context's %v; want 1 miss, 1 store, 2 hits", sub.counts, rec.counts)
	}

	opaque, _, _, _ := setup(t, llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return &llm.Response{Text: "x"}, nil
	}))
	if llm.Subscribe(opaque, newRecorder()) {
		t.Fatal("cache over a ClientFunc accepted a subscription")
	}
	if n := opaque.(*client).c.obs.Len(); n != 0 {
		t.Fatalf("a refused subscription left %d observers", n)
	}
}
