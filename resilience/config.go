package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Config selects and tunes the policies New composes. A nil or zero policy
// field leaves that policy out. Policies run in this order, outermost first:
// fallback → total timeout → rate limit → bulkhead → adaptive limit → retry →
// circuit breaker → per-attempt timeout (and stream timeouts) → hedge → the
// wrapped client.
type Config struct {
	// Fallback answers when everything inside it failed.
	Fallback *FallbackConfig
	// Timeout bounds the whole call, each attempt, and the gaps of a stream.
	Timeout TimeoutConfig
	// RateLimit bounds requests (and optionally tokens) per period.
	RateLimit *RateLimitConfig
	// Bulkhead bounds concurrent calls.
	Bulkhead *BulkheadConfig
	// AdaptiveLimit enables failsafe-go's adaptive concurrency limiter.
	AdaptiveLimit *AdaptiveLimitConfig
	// Retry retries retryable failures.
	Retry *RetryConfig
	// Breaker is a circuit breaker built with NewBreaker. It may be shared by
	// several middlewares, which then share its state.
	Breaker *Breaker
	// Hedge starts extra attempts when the first is slow.
	Hedge *HedgeConfig
	// Budget, when set, caps retries and hedges as a share of the calls in
	// flight (see BudgetConfig). Retries and hedges it refuses are reported
	// as EventRejected with Reason "budget".
	Budget *BudgetConfig
}

// DefaultConfig returns the recommended set: fallback to the static
// messages, a 2-minute total and 1-minute per-attempt timeout, 3 attempts
// with exponential backoff (500 ms base, 30 s cap, 20% jitter) and a circuit
// breaker that opens after 5 consecutive failures for 60 s. Rate limits,
// bulkheads, hedging and budgets depend on the provider's quota and the
// service's load, so they are left for the caller to size.
func DefaultConfig() Config {
	b, err := NewBreaker(BreakerConfig{})
	if err != nil {
		panic("resilience: default breaker: " + err.Error()) // unreachable: the zero config is valid
	}
	return Config{
		Fallback: &FallbackConfig{},
		Timeout:  TimeoutConfig{Total: 2 * time.Minute, Attempt: time.Minute},
		Retry:    &RetryConfig{},
		Breaker:  b,
	}
}

// TimeoutConfig bounds time. A zero field leaves that bound out. A caller's
// own deadline that is sooner always wins and costs nothing extra.
type TimeoutConfig struct {
	// Total bounds the whole call, retries and backoffs included.
	Total time.Duration
	// Attempt bounds each provider attempt (a hedged group counts as one).
	Attempt time.Duration
	// FirstChunk bounds how long a stream may take to produce its first
	// chunk.
	FirstChunk time.Duration
	// Idle bounds the gap between two chunks of a stream.
	Idle time.Duration
}

func (t TimeoutConfig) validate() error {
	if t.Total < 0 || t.Attempt < 0 || t.FirstChunk < 0 || t.Idle < 0 {
		return errors.New("resilience: timeouts must not be negative")
	}
	return nil
}

func (t TimeoutConfig) enabled() bool {
	return t.Total > 0 || t.Attempt > 0 || t.FirstChunk > 0 || t.Idle > 0
}

// RetryConfig tunes retries. Zero fields take the defaults.
type RetryConfig struct {
	// MaxAttempts counts the first attempt too. Default 3.
	MaxAttempts int
	// BaseDelay is the wait after the first failure; each later wait doubles
	// it. Default 500 ms.
	BaseDelay time.Duration
	// MaxDelay caps every wait, a provider's Retry-After included. Default
	// 30 s.
	MaxDelay time.Duration
	// Jitter spreads each backoff uniformly over ±Jitter of itself (0.2
	// means ±20%). Default 0.2; see NoJitter.
	Jitter float64
	// NoJitter turns jitter off, for exact, reproducible waits.
	NoJitter bool
	// MaxAttemptsPerKind caps the attempts that may end in a given kind,
	// for example {llm.KindRateLimited: 2}. Kinds not listed use
	// MaxAttempts.
	MaxAttemptsPerKind map[llm.Kind]int
	// Retryable decides which errors are retried. Default llm.Retryable:
	// rate limits, timeouts, 5xx, overload and cut streams; never bad
	// requests, auth, context length, content filter or cancellations.
	Retryable func(error) bool
}

func (r *RetryConfig) withDefaults() (RetryConfig, error) {
	c := *r
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = 500 * time.Millisecond
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = 30 * time.Second
	}
	if c.Jitter == 0 && !c.NoJitter {
		c.Jitter = 0.2
	}
	if c.NoJitter {
		c.Jitter = 0
	}
	if c.Retryable == nil {
		c.Retryable = llm.Retryable
	}
	switch {
	case c.MaxAttempts < 1 || c.MaxAttempts > 100:
		return c, fmt.Errorf("resilience: Retry.MaxAttempts %d out of [1, 100]", c.MaxAttempts)
	case c.BaseDelay < 0 || c.MaxDelay < 0:
		return c, errors.New("resilience: retry delays must not be negative")
	case c.MaxDelay < c.BaseDelay:
		return c, errors.New("resilience: Retry.MaxDelay is below BaseDelay")
	case c.Jitter < 0 || c.Jitter >= 1:
		return c, fmt.Errorf("resilience: Retry.Jitter %v out of [0, 1)", c.Jitter)
	}
	for k, n := range c.MaxAttemptsPerKind {
		if n < 1 {
			return c, fmt.Errorf("resilience: Retry.MaxAttemptsPerKind[%v] = %d, want ≥ 1", k, n)
		}
	}
	return c, nil
}

// FallbackConfig is the ordered degradation chain: Clients, then Models,
// then Stale, then the static message for the cause. The answer it gives is
// marked Degraded with DegradedReason set to the triggering error's kind.
type FallbackConfig struct {
	// Clients are tried in order with the caller's request.
	Clients []llm.Client
	// Models are tried in order through the wrapped client, with the
	// request's Model replaced, one attempt each.
	Models []string
	// Stale returns an expired answer still within its grace period (the
	// cache package provides it: Cache.Stale). The cache_stale event it
	// emits reaches observers subscribed at construction only through that
	// Cache's own middleware: use the Cache whose middleware is in the same
	// chain (as the recommended stack does), or observers subscribed to
	// this client miss it while those on the call's context hear it.
	Stale func(ctx context.Context, req *llm.Request) (*llm.Response, bool)
	// ErrorMessage is the static answer to a failure. Default "The service
	// is temporarily unavailable, please try again later."
	ErrorMessage string
	// TimeoutMessage is the static answer to a timeout. Default "The
	// request took too long; please simplify your prompt."
	TimeoutMessage string
	// NoStatic leaves the static messages out, so the error is returned
	// when nothing else answered.
	NoStatic bool
	// Trigger decides which errors fall back. Default: retryable errors,
	// circuit_open and timeouts, never bad_request (nor auth, context
	// length, content filter or the caller's cancellation).
	Trigger func(error) bool
}

// The default static messages.
const (
	DefaultErrorMessage   = "The service is temporarily unavailable, please try again later."
	DefaultTimeoutMessage = "The request took too long; please simplify your prompt."
)

// DefaultTrigger is the default FallbackConfig.Trigger.
func DefaultTrigger(err error) bool {
	switch llm.KindOf(err) {
	case llm.KindBadRequest, llm.KindCanceled:
		return false
	case llm.KindCircuitOpen, llm.KindTimeout:
		return true
	}
	return llm.Retryable(err)
}

func (f *FallbackConfig) withDefaults() FallbackConfig {
	c := *f
	if c.ErrorMessage == "" {
		c.ErrorMessage = DefaultErrorMessage
	}
	if c.TimeoutMessage == "" {
		c.TimeoutMessage = DefaultTimeoutMessage
	}
	if c.Trigger == nil {
		c.Trigger = DefaultTrigger
	}
	c.Clients = append([]llm.Client(nil), c.Clients...)
	c.Models = append([]string(nil), c.Models...)
	return c
}

// HedgeConfig starts extra attempts when the first one is slow. The first
// attempt to succeed wins (for a stream, the first to produce a chunk) and
// the others are canceled.
type HedgeConfig struct {
	// Delay is how long to wait before each hedge. Required unless Quantile
	// is set.
	Delay time.Duration
	// Quantile, when in (0, 1), replaces Delay with that quantile of recent
	// successful attempt latencies (Delay serves until enough are seen).
	Quantile float64
	// MaxHedges caps the extra attempts. Default 1.
	MaxHedges int
}

// BudgetConfig caps retries and hedges fleet-wide with failsafe-go's budget:
// extra attempts in flight may not exceed MaxRate of the calls in flight,
// once more than MinConcurrency are in flight.
type BudgetConfig struct {
	// MaxRate defaults to 0.2.
	MaxRate float64
	// MinConcurrency defaults to 3.
	MinConcurrency uint
}

// RateLimitConfig limits requests, and optionally tokens, per period.
type RateLimitConfig struct {
	// Requests per Period. Required.
	Requests uint
	// Period defaults to one second.
	Period time.Duration
	// Bursty lets up to Requests run at once at the start of each period;
	// the default spreads them evenly.
	Bursty bool
	// TokensPerMinute, when > 0, also limits tokens: each call reserves its
	// estimated input tokens plus MaxTokens, and the difference from the
	// actual usage is settled after the call.
	TokensPerMinute uint
	// DefaultMaxTokens is what a request without MaxTokens reserves for its
	// output. Default 1024.
	DefaultMaxTokens int
	// MaxWait is how long a call may wait, cancellably, for a permit;
	// 0 rejects at once with kind rate_limited and a RetryAfter.
	MaxWait time.Duration
	// PerTenant keeps one limiter per Request.Tenant.
	PerTenant bool
	// MaxTenants bounds the per-tenant limiters; tenants beyond it share
	// one. Default 10,000.
	MaxTenants int
}

// BulkheadConfig bounds concurrent calls.
type BulkheadConfig struct {
	// MaxConcurrent is required.
	MaxConcurrent uint
	// MaxWait is how long a call may wait for a slot; 0 rejects at once.
	// Rejections have kind overloaded.
	MaxWait time.Duration
}

// AdaptiveLimitConfig enables failsafe-go's adaptive concurrency limiter
// with its defaults, bounded by MinLimit and MaxLimit when set.
type AdaptiveLimitConfig struct {
	MinLimit, MaxLimit, InitialLimit uint
	// MaxWait is how long a call may wait for a permit; 0 rejects at once.
	MaxWait time.Duration
}
