package resilience

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestBackoffSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
		c := wrap(t, Config{Retry: &RetryConfig{MaxAttempts: 6, BaseDelay: 500 * time.Millisecond, MaxDelay: 3 * time.Second, NoJitter: true}}, fake)
		ctx, rec := observed()
		start := time.Now()
		_, err := c.Generate(ctx, llm.Prompt("hi"))
		if llm.KindOf(err) != llm.KindUnavailable {
			t.Fatalf("err = %v, want the upstream's unavailable", err)
		}
		want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
		retries := rec.Events(llm.EventRetry)
		if len(retries) != len(want) {
			t.Fatalf("%d retries, want %d", len(retries), len(want))
		}
		var sum time.Duration
		for i, ev := range retries {
			if ev.Delay != want[i] || ev.Attempt != i+1 {
				t.Fatalf("retry %d: attempt %d delay %v, want attempt %d delay %v", i, ev.Attempt, ev.Delay, i+1, want[i])
			}
			sum += ev.Delay
		}
		if got := time.Since(start); got != sum {
			t.Fatalf("took %v, want exactly %v", got, sum)
		}
		if fake.Calls() != 6 {
			t.Fatalf("upstream calls = %d, want 6", fake.Calls())
		}
		attempts := rec.Events(llm.EventAttempt)
		if len(attempts) != 6 || attempts[5].Attempt != 6 || attempts[5].Err == nil {
			t.Fatalf("attempt events = %+v", attempts)
		}
	})
}

func TestJitterBounds(t *testing.T) {
	r, err := (&RetryConfig{BaseDelay: time.Second, MaxDelay: 30 * time.Second, Jitter: 0.2}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	fail := llmtest.Error(llm.KindUnavailable)
	for n := 1; n <= 6; n++ {
		nominal := min(time.Second<<(n-1), 30*time.Second)
		lo, hi := time.Duration(float64(nominal)*0.8), min(time.Duration(float64(nominal)*1.2), 30*time.Second)
		minSeen, maxSeen := time.Duration(1<<62), time.Duration(0)
		for range 10000 {
			d := backoff(&r, n, fail, rand.Float64())
			if d < lo || d > hi {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", n, d, lo, hi)
			}
			minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
		}
		// The draws must actually spread over the range, not sit on one value.
		if spread := float64(maxSeen-minSeen) / float64(hi-lo); spread < 0.95 {
			t.Fatalf("attempt %d: draws cover %.0f%% of the jitter range", n, spread*100)
		}
	}
}

func TestRetryAfterIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := llmtest.Error(llm.KindRateLimited)
		e.RetryAfter = 86400 * time.Second
		fake := &llmtest.Fake{Steps: []llmtest.Step{{Err: e}}}
		c := wrap(t, Config{Retry: &RetryConfig{MaxDelay: 30 * time.Second}}, fake)
		start := time.Now()
		resp, err := c.Generate(context.Background(), llm.Prompt("hi"))
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 30*time.Second {
			t.Fatalf("waited %v, want the 30s cap", got)
		}
		if resp.Attempts != 2 {
			t.Fatalf("Attempts = %d, want 2", resp.Attempts)
		}
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := llmtest.Error(llm.KindRateLimited)
		e.RetryAfter = 7 * time.Second
		fake := &llmtest.Fake{Steps: []llmtest.Step{{Err: e}}}
		c := wrap(t, Config{Retry: exactRetry(3)}, fake)
		start := time.Now()
		if _, err := c.Generate(context.Background(), llm.Prompt("hi")); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 7*time.Second {
			t.Fatalf("waited %v, want Retry-After 7s", got)
		}
	})
}

func TestDeadlineAwareSkip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Steps: []llmtest.Step{{Err: llmtest.Error(llm.KindUnavailable)}}}
		c := wrap(t, Config{Retry: &RetryConfig{BaseDelay: 2 * time.Second, NoJitter: true}}, fake)
		ctx, rec := observed()
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Generate(ctx, llm.Prompt("hi"))
		if llm.KindOf(err) != llm.KindUnavailable {
			t.Fatalf("err = %v, want the last error (unavailable)", err)
		}
		if time.Since(start) != 0 || fake.Calls() != 1 || rec.Count(llm.EventRetry) != 0 {
			t.Fatalf("elapsed %v, calls %d, retries %d: want an immediate return after 1 attempt",
				time.Since(start), fake.Calls(), rec.Count(llm.EventRetry))
		}
		// The total timeout is a deadline too.
		fake2 := &llmtest.Fake{Steps: []llmtest.Step{{Err: llmtest.Error(llm.KindUnavailable)}}}
		c2 := wrap(t, Config{Retry: &RetryConfig{BaseDelay: 2 * time.Second, NoJitter: true}, Timeout: TimeoutConfig{Total: time.Second}}, fake2)
		if _, err := c2.Generate(context.Background(), llm.Prompt("hi")); llm.KindOf(err) != llm.KindUnavailable || fake2.Calls() != 1 {
			t.Fatalf("total timeout: err %v after %d calls", err, fake2.Calls())
		}
	})
}

func TestCancelDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
		c := wrap(t, Config{Retry: &RetryConfig{BaseDelay: 10 * time.Second, NoJitter: true}}, fake)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		_, err := c.Generate(ctx, llm.Prompt("hi"))
		if llm.KindOf(err) != llm.KindCanceled {
			t.Fatalf("err = %v, want canceled", err)
		}
		if got := time.Since(start); got != time.Second {
			t.Fatalf("returned after %v, want at the cancel (1s)", got)
		}
		if fake.Calls() != 1 {
			t.Fatalf("calls = %d, want 1", fake.Calls())
		}
	})
}

func TestPerKindLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindRateLimited)}}
		c := wrap(t, Config{Retry: &RetryConfig{MaxAttempts: 5, MaxAttemptsPerKind: map[llm.Kind]int{llm.KindRateLimited: 2}}}, fake)
		if _, err := c.Generate(context.Background(), llm.Prompt("hi")); llm.KindOf(err) != llm.KindRateLimited {
			t.Fatal(err)
		}
		if fake.Calls() != 2 {
			t.Fatalf("calls = %d, want 2 (the rate_limited limit)", fake.Calls())
		}
	})
}

func TestNonRetryableNotCharged(t *testing.T) {
	for _, kind := range []llm.Kind{llm.KindBadRequest, llm.KindAuth, llm.KindContextLength, llm.KindContentFilter} {
		t.Run(kind.String(), func(t *testing.T) {
			b := breaker(t, BreakerConfig{FailureThreshold: 1})
			fake := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(kind)}}
			c := wrap(t, Config{Retry: exactRetry(3), SharedBreaker: b}, fake)
			for i := range 3 {
				_, err := c.Generate(context.Background(), llm.Prompt("hi"))
				if llm.KindOf(err) != kind {
					t.Fatalf("err = %v, want %v", err, kind)
				}
				if fake.Calls() != i+1 {
					t.Fatalf("after %d calls the upstream saw %d attempts, want exactly 1 each", i+1, fake.Calls())
				}
			}
			if b.State() != llm.BreakerClosed {
				t.Fatalf("breaker %v after %v errors: it was charged", b.State(), kind)
			}
		})
	}
}

func TestTenPercent503(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		fake := &llmtest.Fake{Func: func(int, *llm.Request) llmtest.Step {
			if rng.Float64() < 0.10 {
				return llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}
			}
			return llmtest.Step{}
		}}
		c := wrap(t, Config{Retry: &RetryConfig{}, Breaker: &BreakerConfig{FailureRate: 0.5, MinCalls: 20}}, fake)
		const n = 10000
		ok := 0
		for range n {
			resp, err := c.Generate(context.Background(), llm.Prompt("hi"))
			if err == nil {
				ok++
				if resp.Attempts > 3 {
					t.Fatalf("Attempts = %d > 3", resp.Attempts)
				}
			}
		}
		if rate := float64(ok) / n; rate < 0.999 {
			t.Fatalf("success %.4f, want ≥ 0.999", rate)
		}
		if calls := fake.Calls(); float64(calls) > 1.12*n {
			t.Fatalf("upstream calls %d > 1.12 × %d", calls, n)
		}
	})
}

func TestStreamRetriedOnlyBeforeFirstChunk(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fake := &llmtest.Fake{Steps: []llmtest.Step{
				{Err: llmtest.Error(llm.KindUnavailable)},
				{Chunks: []string{"a", "b", "c"}},
			}}
			c := wrap(t, Config{Retry: exactRetry(3)}, fake)
			var got []string
			req := llm.Prompt("hi")
			req.Stream = func(ch llm.Chunk) error { got = append(got, ch.Text); return nil }
			resp, err := c.Generate(context.Background(), req)
			if err != nil || resp.Text != "abc" || resp.Attempts != 2 {
				t.Fatalf("resp %+v err %v", resp, err)
			}
			if len(got) != 3 || got[0] != "a" {
				t.Fatalf("chunks %q, want each once", got)
			}
		})
	})
	t.Run("after", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fake := &llmtest.Fake{Steps: []llmtest.Step{{Chunks: []string{"a", "b", "c"}, CutAfter: 1}}}
			c := wrap(t, Config{Retry: exactRetry(3), Fallback: &FallbackConfig{}}, fake)
			var got []string
			req := llm.Prompt("hi")
			req.Stream = func(ch llm.Chunk) error { got = append(got, ch.Text); return nil }
			_, err := c.Generate(context.Background(), req)
			if !errors.Is(err, llm.ErrStreamCut) {
				t.Fatalf("err = %v, want stream_cut", err)
			}
			if fake.Calls() != 1 || len(got) != 1 {
				t.Fatalf("calls %d, chunks %q: want no retry and no fallback after the first chunk", fake.Calls(), got)
			}
		})
	})
}

// RetryConfig.Backoff waits as Retry does, defaults filled in.
func TestRetryConfigBackoff(t *testing.T) {
	c := &RetryConfig{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, NoJitter: true}
	fail := &llm.Error{Kind: llm.KindUnavailable}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		if got := c.Backoff(n, fail); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, want)
		}
	}
	if got := c.Backoff(1, &llm.Error{Kind: llm.KindRateLimited, RetryAfter: 700 * time.Millisecond}); got != 700*time.Millisecond {
		t.Errorf("a Retry-After of 700ms: Backoff = %v", got)
	}
	if got := (&RetryConfig{}).Backoff(1, fail); got < 400*time.Millisecond || got > 600*time.Millisecond {
		t.Errorf("defaults: Backoff(1) = %v, want 500ms ± 20%%", got)
	}
	if got := (&RetryConfig{BaseDelay: -1}).Backoff(1, fail); got != 30*time.Second {
		t.Errorf("an invalid config: Backoff = %v, want the default MaxDelay", got)
	}
}
