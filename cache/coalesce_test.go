package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func mapClient(t *testing.T, up llm.Client, opts ...Option) (llm.Client, *mapStore) {
	t.Helper()
	st := newMapStore()
	mw, err := Middleware(st, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return mw(up), st
}

type result struct {
	resp   *llm.Response
	err    error
	chunks []llm.Chunk
}

// fire starts n identical calls, every other one streaming, and returns a
// function that waits for their results.
func fire(ctx context.Context, c llm.Client, text string, n int) func() []result {
	out := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req := det(text)
			if i%2 == 1 {
				req.Stream = func(ch llm.Chunk) error { out[i].chunks = append(out[i].chunks, ch); return nil }
			}
			out[i].resp, out[i].err = c.Generate(ctx, req)
		})
	}
	return func() []result { wg.Wait(); return out }
}

func TestCoalescing100Calls1Upstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Default: llmtest.Step{Latency: time.Second, Chunks: []string{"one ", "answer"}}}
		c, _ := mapClient(t, up)
		rec := &llmtest.Recorder{}
		results := fire(llm.WithObserver(context.Background(), rec), c, "same question", 100)()
		if up.Calls() != 1 {
			t.Fatalf("upstream calls = %d, want 1", up.Calls())
		}
		cached := 0
		for i, r := range results {
			if r.err != nil || r.resp.Text != "one answer" {
				t.Fatalf("call %d: %+v, %v", i, r.resp, r.err)
			}
			if r.resp.Cached {
				cached++
			}
			if i%2 == 1 {
				var b strings.Builder
				for j, ch := range r.chunks {
					if ch.Index != j {
						t.Fatalf("call %d: chunk %d has index %d", i, j, ch.Index)
					}
					b.WriteString(ch.Text)
				}
				if b.String() != "one answer" {
					t.Fatalf("streaming call %d got %q", i, b.String())
				}
			}
		}
		if cached != 99 || rec.Count(llm.EventCacheCoalesced) != 99 || rec.Count(llm.EventCacheStore) != 1 {
			t.Fatalf("cached=%d coalesced=%d stores=%d, want 99, 99, 1", cached, rec.Count(llm.EventCacheCoalesced), rec.Count(llm.EventCacheStore))
		}
	})
}

func TestCoalescingFollowersShareOneResponseSafely(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Default: llmtest.Step{Latency: time.Second, Text: "x"}}
		c, _ := mapClient(t, up, WithStoreIf(func(*llm.Response) bool { return false }))
		results := fire(context.Background(), c, "q", 10)()
		seen := map[*llm.Response]bool{}
		for _, r := range results {
			if r.err != nil || seen[r.resp] {
				t.Fatalf("two callers got the same *Response, or an error: %v", r.err)
			}
			seen[r.resp] = true
			r.resp.Text = "mine" // no race with the others (checked by -race)
		}
		if up.Calls() != 1 {
			t.Fatalf("upstream calls = %d, want 1 even when the answer is not stored", up.Calls())
		}
	})
}

func TestCoalescingLeaderCanceledFollowersSucceed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Steps: []llmtest.Step{{Hang: true}}, Default: llmtest.Step{Latency: time.Second, Text: "answer"}}
		c, _ := mapClient(t, up)
		leaderCtx, cancel := context.WithCancel(context.Background())
		var leaderErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, leaderErr = c.Generate(leaderCtx, det("q"))
		}()
		synctest.Wait() // the leader is in the upstream call
		wait := fire(context.Background(), c, "q", 10)
		synctest.Wait() // the followers wait for it
		cancel()
		<-done
		if llm.KindOf(leaderErr) != llm.KindCanceled {
			t.Fatalf("leader error = %v, want canceled", leaderErr)
		}
		for i, r := range wait() {
			if r.err != nil || r.resp.Text != "answer" {
				t.Fatalf("follower %d: %+v, %v: the leader's cancellation failed it", i, r.resp, r.err)
			}
		}
		if up.Calls() != 2 {
			t.Fatalf("upstream calls = %d, want 2 (the canceled leader, one new leader)", up.Calls())
		}
	})
}

func TestCoalescingLeaderCallbackErrorNotInherited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Default: llmtest.Step{Latency: time.Second, Chunks: []string{"a", "b"}}}
		c, _ := mapClient(t, up)
		stop := errors.New("leader stops reading")
		var leaderErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			req := det("q")
			req.Stream = func(llm.Chunk) error { return stop }
			_, leaderErr = c.Generate(context.Background(), req)
		}()
		synctest.Wait()
		results := fire(context.Background(), c, "q", 4)()
		<-done
		if !errors.Is(leaderErr, stop) {
			t.Fatalf("leader error = %v", leaderErr)
		}
		for i, r := range results {
			if r.err != nil || r.resp.Text != "ab" {
				t.Fatalf("follower %d: %+v, %v", i, r.resp, r.err)
			}
		}
	})
}

func TestCoalescingLeaderPanicFreesFollowers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Steps: []llmtest.Step{{Latency: time.Second, Panic: "boom"}}, Default: llmtest.Step{Text: "answer"}}
		c, _ := mapClient(t, up)
		var recovered any
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() { recovered = recover() }()
			c.Generate(context.Background(), det("q"))
		}()
		synctest.Wait()
		results := fire(context.Background(), c, "q", 4)()
		<-done
		if recovered != "boom" {
			t.Fatalf("the leader's panic was swallowed: %v", recovered)
		}
		for i, r := range results {
			if r.err != nil || r.resp.Text != "answer" {
				t.Fatalf("follower %d: %+v, %v", i, r.resp, r.err)
			}
		}
	})
}

func TestCoalescingErrorSharedButNotStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Steps: []llmtest.Step{{Latency: time.Second, Err: llmtest.Error(llm.KindUnavailable)}},
			Default: llmtest.Step{Text: "recovered"}}
		c, _ := mapClient(t, up)
		for i, r := range fire(context.Background(), c, "q", 10)() {
			if !errors.Is(r.err, llm.ErrUnavailable) {
				t.Fatalf("call %d: %v, want the provider's unavailable error", i, r.err)
			}
		}
		if up.Calls() != 1 {
			t.Fatalf("upstream calls = %d, want 1", up.Calls())
		}
		resp, err := c.Generate(context.Background(), det("q"))
		if err != nil || resp.Text != "recovered" || resp.Cached {
			t.Fatalf("after the failed flight: %+v, %v: the error was cached", resp, err)
		}
	})
}

func TestCoalescingFollowerCancelsAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Default: llmtest.Step{Latency: time.Minute, Text: "slow"}}
		c, _ := mapClient(t, up)
		wait := fire(context.Background(), c, "q", 1)
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := c.Generate(ctx, det("q")); llm.KindOf(err) != llm.KindTimeout {
			t.Fatalf("follower past its deadline: %v, want timeout", err)
		}
		if r := wait()[0]; r.err != nil || r.resp.Text != "slow" {
			t.Fatalf("leader: %+v, %v", r.resp, r.err)
		}
	})
}

func TestWithoutCoalescing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Default: llmtest.Step{Latency: time.Second}}
		c, _ := mapClient(t, up, WithoutCoalescing())
		fire(context.Background(), c, "q", 5)()
		if up.Calls() != 5 {
			t.Fatalf("upstream calls = %d, want 5", up.Calls())
		}
	})
}

// TestTTLAndStale walks an entry through its life on a real ristretto
// store under fake time: fresh, stale (served only by Stale), gone.
func TestTTLAndStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := NewRistretto(RistrettoConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		cache, err := New(st, WithTTL(time.Minute), WithGrace(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		up := &llmtest.Fake{Steps: []llmtest.Step{{Text: "v1"}}, Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
		c := cache.Middleware()(up)
		rec := &llmtest.Recorder{}
		ctx := llm.WithObserver(context.Background(), rec)
		if _, err := c.Generate(ctx, det("q")); err != nil {
			t.Fatal(err)
		}
		st.Wait()
		time.Sleep(59 * time.Second)
		if resp, err := c.Generate(ctx, det("q")); err != nil || !resp.Cached {
			t.Fatalf("within the TTL: %+v, %v", resp, err)
		}
		if _, ok := cache.Stale(ctx, det("other")); ok {
			t.Fatal("Stale answered a request never stored")
		}
		time.Sleep(2 * time.Second) // past the TTL, within the grace window
		if _, err := c.Generate(ctx, det("q")); !errors.Is(err, llm.ErrUnavailable) {
			t.Fatalf("an expired entry answered a request: %v", err)
		}
		resp, ok := cache.Stale(ctx, det("q"))
		if !ok || resp.Text != "v1" || !resp.Cached {
			t.Fatalf("Stale = %+v, %v", resp, ok)
		}
		resp.Text = "mutated"
		if again, _ := cache.Stale(ctx, det("q")); again.Text != "v1" {
			t.Fatal("Stale handed out the stored response itself")
		}
		if rec.Count(llm.EventCacheStale) != 2 {
			t.Fatalf("stale events = %d, want 2", rec.Count(llm.EventCacheStale))
		}
		skip := det("q")
		skip.Cache = llm.CacheSkipRead
		if _, ok := cache.Stale(ctx, skip); ok {
			t.Fatal("Stale ignored CacheSkipRead")
		}
		time.Sleep(time.Minute) // past the grace window
		if _, ok := cache.Stale(ctx, det("q")); ok {
			t.Fatal("Stale served an entry past its grace window")
		}
	})
}

// The hook type resilience's fallback takes.
var _ func(context.Context, *llm.Request) (*llm.Response, bool) = (*Cache)(nil).Stale

// TestFlightsLeaveNoTrace checks that every way a flight ends (alone or
// joined, answered, failed, panicked) takes its key out of the
// registry, so that a leader's flight never outlives its call.
func TestFlightsLeaveNoTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: time.Second, Text: "joined"},
			{Latency: time.Second, Err: llmtest.Error(llm.KindUnavailable)},
			{Latency: time.Second, Panic: "boom"},
		}, Default: llmtest.Step{Text: "alone"}}
		// Nothing is stored: followers get the copy the leader makes for them.
		c, err := New(newMapStore(), WithStoreIf(func(*llm.Response) bool { return false }))
		if err != nil {
			t.Fatal(err)
		}
		cl := c.Middleware()(up)
		fire(context.Background(), cl, "joined", 5)()
		fire(context.Background(), cl, "failed", 5)()
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want the wrapped client's panic", r)
				}
			}()
			cl.Generate(context.Background(), det("panics"))
		}()
		if _, err := cl.Generate(context.Background(), det("alone")); err != nil {
			t.Fatal(err)
		}
		checkNoFlights(t, c)
	})
}

// checkNoFlights fails unless c has no flight registered.
func checkNoFlights(t *testing.T, c *Cache) {
	t.Helper()
	c.flights.mu.Lock()
	n := len(c.flights.m)
	c.flights.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d flights still registered after every call returned", n)
	}
}

// TestFlightsManyKeys puts many keys in flight at once and checks that
// every key makes exactly one upstream call for all its callers and leaves
// nothing behind.
func TestFlightsManyKeys(t *testing.T) {
	var prompts []string
	for i := range 20 {
		prompts = append(prompts, fmt.Sprintf("prompt %d", i))
	}
	synctest.Test(t, func(t *testing.T) {
		var calls sync.Map // prompt -> *atomic.Int32
		up := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			n, _ := calls.LoadOrStore(req.Messages[0].Content, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			time.Sleep(time.Second)
			return &llm.Response{Text: req.Messages[0].Content, FinishReason: llm.FinishStop}, nil
		})
		c, err := New(newMapStore())
		if err != nil {
			t.Fatal(err)
		}
		cl := c.Middleware()(up)
		var waits []func() []result
		for _, p := range prompts {
			waits = append(waits, fire(context.Background(), cl, p, 3))
		}
		synctest.Wait() // every caller is in the air or waiting
		c.flights.mu.Lock()
		inFlight := len(c.flights.m)
		c.flights.mu.Unlock()
		if inFlight != len(prompts) {
			t.Fatalf("%d flights in the air, want %d", inFlight, len(prompts))
		}
		for i, wait := range waits {
			for _, r := range wait() {
				if r.err != nil || r.resp.Text != prompts[i] {
					t.Fatalf("%q: %+v, %v", prompts[i], r.resp, r.err)
				}
			}
		}
		for _, p := range prompts {
			if n, _ := calls.Load(p); n.(*atomic.Int32).Load() != 1 {
				t.Fatalf("%q made %d upstream calls, want 1", p, n.(*atomic.Int32).Load())
			}
		}
		checkNoFlights(t, c)
	})
}
