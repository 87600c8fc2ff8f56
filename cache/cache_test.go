package cache

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func det(text string) *llm.Request {
	r := llm.Prompt(text)
	r.Temperature = llm.Ptr(0.0)
	return r
}

// setup returns a client caching over a fresh ristretto store in front of
// up, and a context that records events.
func setup(t *testing.T, up llm.Client, opts ...Option) (llm.Client, *Ristretto, context.Context, *llmtest.Recorder) {
	t.Helper()
	st := newRistrettoT(t, RistrettoConfig{MaxCost: 4 << 20})
	mw, err := Middleware(st, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rec := &llmtest.Recorder{}
	return mw(up), st, llm.WithObserver(context.Background(), rec), rec
}

func TestConformance(t *testing.T) {
	factory := func(t *testing.T, up llm.Client) llm.Client {
		st := newRistrettoT(t, RistrettoConfig{MaxCost: 4 << 20})
		mw, err := Middleware(st)
		if err != nil {
			t.Fatal(err)
		}
		return mw(up)
	}
	t.Run("deterministic", func(t *testing.T) { llmtest.Run(t, factory) })
	t.Run("nondeterministic", func(t *testing.T) {
		llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client {
			st := newRistrettoT(t, RistrettoConfig{MaxCost: 4 << 20})
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
	if rec.Count(llm.EventCacheHit) != 2 || rec.Count(llm.EventCacheMiss) != 1 || rec.Count(llm.EventCacheStore) != 1 {
		t.Fatalf("events = %v", rec.Counts())
	}
	if !slices.Equal(rec.Sources(), []string{"ristretto"}) {
		t.Fatalf("event sources = %v, want ristretto", rec.Sources())
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
		if up.Calls() != 2 || rec.Count(llm.EventCacheStore) != 0 {
			t.Fatalf("temperature %v: calls=%d stores=%d, want 2 and 0", temp, up.Calls(), rec.Count(llm.EventCacheStore))
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
			if rec.Count(llm.EventCacheStore) != 1 { // only the second, good, answer
				t.Fatalf("stores = %d, want 1", rec.Count(llm.EventCacheStore))
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
	hitsBefore := rec.Count(llm.EventCacheHit)
	b := det("the secret plan")
	b.Tenant = "B"
	resp, err := c.Generate(ctx, b)
	if err != nil || resp.Text != "for B" || resp.Cached {
		t.Fatalf("tenant B got %+v, %v", resp, err)
	}
	if hits := rec.Count(llm.EventCacheHit) - hitsBefore; hits != 0 {
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
	if _, err := NewRistretto(RistrettoConfig{MaxCost: 100 << 10}); err == nil {
		t.Error("NewRistretto accepted a MaxCost smaller than ristretto's own structures")
	}
}

// An observer given with WithObserver hears what one on the call's context
// hears; a nil one is ignored, and several all hear.
func TestWithObserver(t *testing.T) {
	a, b := &llmtest.Recorder{}, &llmtest.Recorder{}
	up := &llmtest.Fake{Default: llmtest.Step{Text: "answer"}}
	c, st, ctx, rec := setup(t, up, WithObserver(a), WithObserver(nil), WithObserver(b))
	for range 3 {
		if _, err := c.Generate(ctx, det("q")); err != nil {
			t.Fatal(err)
		}
		st.Wait()
	}
	for _, r := range []*llmtest.Recorder{a, b} {
		if !maps.Equal(r.Counts(), rec.Counts()) || r.Count(llm.EventCacheHit) != 2 || r.Count(llm.EventCacheStore) != 1 {
			t.Fatalf("construction observer heard %v, the context's %v; want 1 miss, 1 store, 2 hits", r.Counts(), rec.Counts())
		}
	}
	// Without any observer, nothing is emitted and nothing fails.
	c2, st2, _, _ := setup(t, up)
	c2.Generate(context.Background(), det("q"))
	st2.Wait()
	if resp, err := c2.Generate(context.Background(), det("q")); err != nil || !resp.Cached {
		t.Fatalf("without observers: %+v, %v", resp, err)
	}
}

// secretStore fails with an error whose text holds a secret, as a store
// client might echo a URL or a header.
type secretStore struct{ discardStore }

var errSecret = fmt.Errorf("dial redis://u:x@h?token=%s: refused", "sk-ant-abcdefghijklmnopqrstuvwxyz")

func (secretStore) Get(context.Context, Key) (Entry, bool, error) { return Entry{}, false, errSecret }

// Errors leaving the middleware, and those its events carry, are redacted.
func TestErrorsRedacted(t *testing.T) {
	leak := &llm.Error{Kind: llm.KindAuth, Provider: "p", Message: "bad key sk-ant-abcdefghijklmnopqrstuvwxyz"}
	for _, coalesce := range []bool{true, false} {
		var opts []Option
		if !coalesce {
			opts = append(opts, WithoutCoalescing())
		}
		rec := &llmtest.Recorder{}
		mw, err := Middleware(secretStore{}, append(opts, WithObserver(rec))...)
		if err != nil {
			t.Fatal(err)
		}
		up := &llmtest.Fake{Default: llmtest.Step{Err: leak}}
		_, err = mw(up).Generate(context.Background(), det("q"))
		if llm.KindOf(err) != llm.KindAuth || strings.Contains(err.Error(), "abcdefghij") {
			t.Fatalf("coalesce=%v: returned %v: want an auth error without the key", coalesce, err)
		}
		if errs := rec.Errors(); len(errs) != 1 || strings.Contains(errs[0].Error(), "abcdefghij") {
			t.Fatalf("coalesce=%v: events carried %v: want one store error without the key", coalesce, errs)
		}
	}
}

// A request the cache may not answer is reported as a miss whose Reason
// says why, and the store is not asked; a refresh (CacheSkipRead) is a
// bypass too; a lookup that finds nothing is a miss without a Reason.
func TestBypassReported(t *testing.T) {
	var reasons []string
	obs := llm.ObserverFunc(func(_ context.Context, ev llm.Event) {
		if ev.Kind == llm.EventCacheMiss {
			reasons = append(reasons, ev.Reason)
		}
	})
	up := &llmtest.Fake{Default: llmtest.Step{Text: "answer"}}
	c, _, _, _ := setup(t, up, WithObserver(obs))
	nondet := llm.Prompt("no temperature") // unset: the provider's default, nondeterministic
	skip := det("skip")
	skip.Cache = llm.CacheBypass
	refresh := det("cacheable")
	refresh.Cache = llm.CacheSkipRead
	noKey := det("no key")
	noKey.Extra = map[string]any{"f": func() {}}
	for _, req := range []*llm.Request{nondet, skip, det("cacheable"), refresh, noKey} {
		if _, err := c.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := strings.Join(reasons, ","), "nondeterministic,opted_out,,skip_read,no_key"; got != want {
		t.Fatalf("miss reasons %q, want %q", got, want)
	}
}
