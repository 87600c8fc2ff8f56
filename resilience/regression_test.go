package resilience

import (
	"context"
	"errors"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Backoff stays within [0, MaxDelay] for any config and any attempt, and
// returns at once: doubling BaseDelay once per attempt overflowed (a
// 1-second base with no cap waited 0 after 35 attempts) and took as many
// steps as attempts.
func TestBackoffBoundedForAnyConfig(t *testing.T) {
	fail := &llm.Error{Kind: llm.KindUnavailable}
	configs := []RetryConfig{
		{BaseDelay: time.Second, MaxDelay: math.MaxInt64},
		{BaseDelay: time.Second, MaxDelay: math.MaxInt64, NoJitter: true},
		{BaseDelay: 1, MaxDelay: math.MaxInt64, Jitter: 0.99},
		{BaseDelay: math.MaxInt64, MaxDelay: math.MaxInt64},
		{BaseDelay: 3 * time.Nanosecond, MaxDelay: 7 * time.Nanosecond},
		{},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range configs {
			r, err := c.withDefaults()
			if err != nil {
				t.Error(err)
				continue
			}
			for _, n := range []int{math.MinInt, -1, 0, 1, 2, 34, 35, 36, 62, 63, 64, 65, 1000, math.MaxInt32, math.MaxInt} {
				d := c.Backoff(n, fail)
				if d < 0 || d > r.MaxDelay {
					t.Errorf("%+v: Backoff(%d) = %v, outside [0, %v]", c, n, d, r.MaxDelay)
				}
				nominal := r.MaxDelay
				if s := max(n, 1) - 1; s < 63 && r.BaseDelay <= r.MaxDelay>>s {
					nominal = r.BaseDelay << s
				}
				if lo := time.Duration(float64(nominal) * (1 - r.Jitter)); d < lo-1 {
					t.Errorf("%+v: Backoff(%d) = %v, below %v", c, n, d, lo)
				}
			}
		}
		exact := &RetryConfig{BaseDelay: time.Second, MaxDelay: math.MaxInt64, NoJitter: true}
		if d := exact.Backoff(34, fail); d != time.Second<<33 {
			t.Errorf("Backoff(34) = %v, want %v", d, time.Second<<33)
		}
		if d := exact.Backoff(35, fail); d != math.MaxInt64 {
			t.Errorf("Backoff(35) = %v, want the cap %v", d, time.Duration(math.MaxInt64))
		}
	}()
	liveness := time.NewTimer(time.Minute) // against a loop per attempt, not a latency bound
	defer liveness.Stop()
	select {
	case <-done:
	case <-liveness.C:
		t.Fatal("Backoff did not return within a minute")
	}
}

// An error a wrapped ClientFunc returns, such as the *url.Error of an
// http.Do to a URL with ?key=…, leaves every policy redacted, its kind and
// its secret-free cause kept.
func TestErrorsLeaveRedacted(t *testing.T) {
	const secret = "SECRET-0123456789"
	refused := errors.New("connection refused")
	leaky := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return nil, &url.Error{Op: "Post", URL: "https://llm.example/v1/chat?key=" + secret, Err: refused}
	})
	unavailable := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return nil, &llm.Error{Kind: llm.KindUnavailable, Status: 503, Message: "upstream said Authorization: Bearer " + secret}
	})
	policies := benchConfigs()
	quick := &RetryConfig{BaseDelay: time.Nanosecond, NoJitter: true}
	policies["Retry"] = func() (llm.Middleware, error) { return Retry(quick) }
	policies["Fallback"] = func() (llm.Middleware, error) { return Fallback(&FallbackConfig{NoStatic: true}) }
	for _, name := range []string{"Default", "All"} {
		cfg := fullConfig()
		if name == "Default" {
			cfg = DefaultConfig()
		}
		cfg.Retry, cfg.Fallback.NoStatic = quick, true
		policies[name] = func() (llm.Middleware, error) { return New(cfg) }
	}
	for name, mk := range policies {
		mw, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		_, err = mw(leaky).Generate(context.Background(), llm.Prompt("x"))
		if err == nil || strings.Contains(err.Error(), secret) || !errors.Is(err, refused) {
			t.Errorf("%s: %v: want an error without the secret that still wraps its cause", name, err)
		}
	}
	mw, err := New(Config{Retry: &RetryConfig{MaxAttempts: 2, BaseDelay: time.Nanosecond, NoJitter: true}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = mw(unavailable).Generate(context.Background(), llm.Prompt("x"))
	if err == nil || strings.Contains(err.Error(), secret) || llm.KindOf(err) != llm.KindUnavailable {
		t.Errorf("retried: %v: want kind unavailable without the secret", err)
	}
}
