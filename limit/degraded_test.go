package limit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/internal/redistest"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// The tests here run the local parts (degraded modes, lease expiry) under
// testing/synctest's fake clock, which Redis cannot follow: they stand a
// scripted store in for it. Redis itself is killed for real in
// TestRedisKilledMidway.

var errDown = &llm.Error{Kind: llm.KindUnavailable, Provider: "limit", Message: "limit store failed"}

// scriptedStore answers as its fields say and records the settlements.
type scriptedStore struct {
	mu       sync.Mutex
	err      error // every call fails with it when set
	reserves int
	settled  map[int64]int // id → requests settled
	ids      []int64
}

func (s *scriptedStore) reserve(_ context.Context, _ string, id int64, reqs, _, _, _ int, _ bool) (decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserves++
	if s.err != nil {
		return decision{}, s.err
	}
	s.ids = append(s.ids, id)
	return decision{admitted: true, granted: reqs}, nil
}

func (s *scriptedStore) settle(_ context.Context, _ string, id int64, reqs, _ int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.settled == nil {
		s.settled = map[int64]int{}
	}
	s.settled[id] = reqs
	return nil
}

func (s *scriptedStore) breakerState() llm.BreakerState { return llm.BreakerClosed }

// limiterOn builds a limiter on st instead of Redis.
func limiterOn(t *testing.T, st store, cfg Config) *Limiter {
	t.Helper()
	cfg.Redis = redistest.Client("127.0.0.1:1") // never called
	t.Cleanup(func() { cfg.Redis.(interface{ Close() error }).Close() })
	l := newLimiter(t, cfg)
	l.store = st
	return l
}

func TestFailOpenAdmitsAndCounts(t *testing.T) {
	rec := &llmtest.Recorder{}
	l := limiterOn(t, &scriptedStore{err: errDown}, Config{RPM: 1, TPM: 100, Observer: rec})
	c := l.Middleware()(&llmtest.Fake{})
	for range 5 {
		if _, err := c.Generate(context.Background(), llm.Prompt("x")); err != nil {
			t.Fatalf("fail open refused a call: %v", err)
		}
	}
	if n := countEvents(rec, llm.EventLimit, "fail_open"); n != 5 {
		t.Fatalf("%d fail_open events, want 5", n)
	}
	ev, _ := lastEvent(rec, llm.EventLimit)
	if !errors.Is(ev.Err, llm.ErrUnavailable) || ev.Tokens == 0 {
		t.Fatalf("event %+v: want the store's error and the tokens reserved", ev)
	}
	if countEvents(rec, llm.EventLimitSettle, "") != 5 {
		t.Fatal("reservations made while failing open were not settled")
	}
}

func TestFailClosedRefusesWithTheCause(t *testing.T) {
	rec := &llmtest.Recorder{}
	l := limiterOn(t, &scriptedStore{err: errDown}, Config{RPM: 100, OnRedisError: FailClosed, Observer: rec})
	fake := &llmtest.Fake{}
	_, err := l.Middleware()(fake).Generate(context.Background(), llm.Prompt("x"))
	var e *llm.Error
	if !errors.As(err, &e) || e.Kind != llm.KindRateLimited || e.RetryAfter <= 0 || !errors.Is(e.Err, llm.ErrUnavailable) {
		t.Fatalf("%v: want rate_limited with a RetryAfter, caused by the store", err)
	}
	if fake.Calls() != 0 || countEvents(rec, llm.EventLimit, "fail_closed") != 1 {
		t.Fatalf("provider calls %d, fail_closed events %d: want 0 and 1", fake.Calls(), countEvents(rec, llm.EventLimit, "fail_closed"))
	}
}

func TestLocalShareKeepsEachReplicaToItsShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &llmtest.Recorder{}
		l := limiterOn(t, &scriptedStore{err: errDown}, Config{RPM: 30, Replicas: 3, Window: time.Minute,
			OnRedisError: LocalShare, Observer: rec})
		c := l.Middleware()(&llmtest.Fake{})
		admitted := func() int {
			n := 0
			for range 20 {
				_, err := c.Generate(context.Background(), llm.Prompt("x"))
				switch {
				case err == nil:
					n++
				case llm.KindOf(err) != llm.KindRateLimited || !errors.Is(err, llm.ErrUnavailable):
					t.Fatalf("%v: want a local-share refusal caused by the store", err)
				}
			}
			return n
		}
		if n := admitted(); n != 10 {
			t.Fatalf("%d admitted, want 10, a third of 30", n)
		}
		if a := countEvents(rec, llm.EventLimit, "local_share"); a != 20 {
			t.Fatalf("%d local_share events, want one per decision", a)
		}
		time.Sleep(time.Minute) // the next window (fake clock)
		if n := admitted(); n != 10 {
			t.Fatalf("next window: %d admitted, want 10", n)
		}
		// Tenants have a share each.
		other := &llm.Request{Messages: []llm.Message{llm.User("x")}, Tenant: "other"}
		if _, err := c.Generate(context.Background(), other); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLocalShareLimitsTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := limiterOn(t, &scriptedStore{err: errDown}, Config{TPM: 3000, Replicas: 2, OnRedisError: LocalShare})
		c := l.Middleware()(&llmtest.Fake{})
		req := &llm.Request{Messages: []llm.Message{llm.User("x")}, MaxTokens: 495} // 500 tokens reserved
		n := 0
		for range 10 {
			if _, err := c.Generate(context.Background(), req); err == nil {
				n++
			}
		}
		if n != 3 {
			t.Fatalf("%d admitted, want 3 (1500 tokens, half of 3000, at 500 each)", n)
		}
	})
}

func TestLocalShareBoundsItsKeys(t *testing.T) {
	ls := newLocalShare(1, time.Minute, 2)
	for _, k := range []string{"a", "b", "c", "d"} {
		if !ls.take(k, 1, 0, 0) && k != "d" {
			t.Fatalf("key %s refused", k)
		}
	}
	if len(ls.keys) != 2 {
		t.Fatalf("%d keys kept, want at most 2", len(ls.keys))
	}
	if ls.take("d", 1, 0, 0) {
		t.Fatal("keys beyond MaxKeys do not share one limit")
	}
}

func TestLeaseSavesRoundTrips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &scriptedStore{}
		l := limiterOn(t, st, Config{RPM: 1000, Lease: 10, Window: time.Minute})
		c := l.Middleware()(&llmtest.Fake{})
		for range 25 {
			if _, err := c.Generate(context.Background(), llm.Prompt("x")); err != nil {
				t.Fatal(err)
			}
		}
		if st.reserves != 3 {
			t.Fatalf("%d round trips for 25 calls in leases of 10, want 3", st.reserves)
		}
		// The third lease used 5 of 10; once it expires (Window/10 = 6 s,
		// capped at 1 s), the next call gives the rest back.
		time.Sleep(time.Second)
		c.Generate(context.Background(), llm.Prompt("x"))
		if got, ok := st.settled[st.ids[2]]; !ok || got != 5 {
			t.Fatalf("expired lease settled to %d (%v), want the 5 it used", got, ok)
		}
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := st.settled[st.ids[3]]; got != 1 {
			t.Fatalf("Close settled the last lease to %d, want 1", got)
		}
	})
}

func TestTokenLimitedCallsAreNotLeased(t *testing.T) {
	st := &scriptedStore{}
	l := limiterOn(t, st, Config{RPM: 1000, TPM: 100000, Lease: 10})
	c := l.Middleware()(&llmtest.Fake{})
	for range 3 {
		c.Generate(context.Background(), llm.Prompt("x"))
	}
	if st.reserves != 3 {
		t.Fatalf("%d round trips, want one per call under a TPM limit", st.reserves)
	}
}
