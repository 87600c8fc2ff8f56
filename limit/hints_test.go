package limit

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// memHints stands in for Redis under the fake clock: cooldowns as
// deadlines, and a count of reads.
type memHints struct {
	mu    sync.Mutex
	until map[string]time.Time
	reads int
	err   error
}

func (m *memHints) extend(_ context.Context, name string, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if u := time.Now().Add(d); u.After(m.until[name]) {
		m.until[name] = u
	}
	return nil
}

func (m *memHints) remaining(_ context.Context, name string) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.err != nil {
		return 0, m.err
	}
	return max(time.Until(m.until[name]), 0), nil
}

func hintsOn(st hintStore, obs llm.Observer) *Hints {
	return newHints(st, HintsConfig{Name: "hints", Refresh: 500 * time.Millisecond, MaxCooldown: 5 * time.Minute,
		BreakerCooldown: time.Minute, Observer: obs})
}

func TestHintsReadThroughACacheAtMostRefreshStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memHints{until: map[string]time.Time{}}
		rec := &llmtest.Recorder{}
		h := hintsOn(st, rec)
		ctx := context.Background()
		if !h.CoolingUntil(ctx, "dep").IsZero() {
			t.Fatal("cooling before anything was published")
		}
		// Another replica publishes: this one learns it within Refresh.
		st.extend(ctx, "dep", 10*time.Second)
		for range 100 {
			h.CoolingUntil(ctx, "dep")
		}
		if st.reads != 1 {
			t.Fatalf("%d reads within Refresh, want 1", st.reads)
		}
		time.Sleep(500 * time.Millisecond)
		u := h.CoolingUntil(ctx, "dep")
		if want := time.Now().Add(9500 * time.Millisecond); !u.Equal(want) {
			t.Fatalf("cooling until %v, want %v", u, want)
		}
		if ev, ok := lastEvent(rec, llm.EventCooldown); !ok || ev.Reason != "shared" || ev.Source != "dep" {
			t.Fatalf("event %+v, want a shared cooldown of dep", ev)
		}
		time.Sleep(10 * time.Second)
		if !h.CoolingUntil(ctx, "dep").IsZero() {
			t.Fatal("still cooling after the cooldown ended")
		}
	})
}

func TestHintsAreExtendOnlyAndCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memHints{until: map[string]time.Time{}}
		h := hintsOn(st, nil)
		ctx := context.Background()
		now := time.Now()
		h.CoolUntil(ctx, "dep", now.Add(time.Minute))
		h.CoolUntil(ctx, "dep", now.Add(time.Second)) // shorter: ignored
		if u := h.CoolingUntil(ctx, "dep"); !u.Equal(now.Add(time.Minute)) {
			t.Fatalf("cooling until %v, want a minute from now", u)
		}
		h.CoolUntil(ctx, "dep", now.Add(24*time.Hour))
		if u := st.until["dep"]; !u.Equal(now.Add(5 * time.Minute)) {
			t.Fatalf("published until %v, want capped at MaxCooldown", u)
		}
	})
}

func TestHintsStoreDownLocalStateDecides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memHints{until: map[string]time.Time{}, err: errDown}
		rec := &llmtest.Recorder{}
		h := hintsOn(st, rec)
		ctx := context.Background()
		if !h.CoolingUntil(ctx, "dep").IsZero() {
			t.Fatal("cooling with nothing known")
		}
		h.CoolUntil(ctx, "dep", time.Now().Add(time.Second))
		if h.CoolingUntil(ctx, "dep").IsZero() {
			t.Fatal("this replica's own cooldown was lost with the store")
		}
		if countEvents(rec, llm.EventLimit, "fail_open") != 2 {
			t.Fatalf("store failures reported %d times, want 2 (one read, one publish)", countEvents(rec, llm.EventLimit, "fail_open"))
		}
	})
}

func TestHintsMiddlewarePublishesAndFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memHints{until: map[string]time.Time{}}
		rec := &llmtest.Recorder{}
		h := hintsOn(st, rec)
		ctx := context.Background()
		limited := &llm.Error{Kind: llm.KindRateLimited, Status: 429, Provider: "openai", RetryAfter: 3 * time.Second}
		fake := &llmtest.Fake{Steps: []llmtest.Step{{Err: limited}}}
		c := h.Middleware("dep")(fake)
		if _, err := c.Generate(ctx, llm.Prompt("x")); llm.KindOf(err) != llm.KindRateLimited {
			t.Fatal(err)
		}
		_, err := c.Generate(ctx, llm.Prompt("x"))
		if llm.KindOf(err) != llm.KindCircuitOpen || llm.RetryAfterOf(err) != 3*time.Second || fake.Calls() != 1 {
			t.Fatalf("%v (calls %d): want circuit_open for the 3 s left, without calling", err, fake.Calls())
		}
		if ev, _ := lastEvent(rec, llm.EventCooldown); ev.Reason != "rate_limited" || ev.Delay != 3*time.Second {
			t.Fatalf("event %+v", ev)
		}
		time.Sleep(3 * time.Second)
		if _, err := c.Generate(ctx, llm.Prompt("x")); err != nil || fake.Calls() != 2 {
			t.Fatalf("after the cooldown: %v", err)
		}
		// A refusal by llmkit's own limiter says nothing about the deployment.
		own := h.Middleware("other")(&llmtest.Fake{Default: llmtest.Step{Err: &llm.Error{Kind: llm.KindRateLimited, Provider: "resilience", RetryAfter: time.Second}}})
		own.Generate(ctx, llm.Prompt("x"))
		if _, ok := st.until["other"]; ok {
			t.Fatal("a local limiter's refusal was published")
		}
	})
}

func TestHintsObserverPublishesWhenABreakerOpens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memHints{until: map[string]time.Time{}}
		h := hintsOn(st, nil)
		obs := h.Observer("dep")
		obs.Observe(context.Background(), llm.Event{Kind: llm.EventBreakerState, State: llm.BreakerHalfOpen})
		if _, ok := st.until["dep"]; ok {
			t.Fatal("published on a half-open breaker")
		}
		obs.Observe(context.Background(), llm.Event{Kind: llm.EventBreakerState, State: llm.BreakerOpen})
		if u := st.until["dep"]; !u.Equal(time.Now().Add(time.Minute)) {
			t.Fatalf("published until %v, want BreakerCooldown from now", u)
		}
	})
}

func TestHintsOnRedis(t *testing.T) {
	rdb, prefix := liveRedis(t)
	h, err := NewHints(rdb, HintsConfig{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h.CoolUntil(ctx, "dep", time.Now().Add(time.Minute))
	h.CoolUntil(ctx, "dep", time.Now().Add(time.Second)) // extend-only
	ttl, err := rdb.PTTL(ctx, prefix+"dep").Result()
	if err != nil || ttl < 55*time.Second || ttl > time.Minute {
		t.Fatalf("the hint expires in %v (%v), want about a minute", ttl, err)
	}
	// A replica that never published reads it.
	other, _ := NewHints(rdb, HintsConfig{Prefix: prefix})
	if u := other.CoolingUntil(ctx, "dep"); time.Until(u) < 55*time.Second {
		t.Fatalf("another replica reads cooling until %v", u)
	}
	if !other.CoolingUntil(ctx, "never").IsZero() {
		t.Fatal("a name never published cools")
	}
}
