package resilience

import (
	"github.com/llmkit/llmkit/llm"
)

// Retry returns the retry policy alone: exponential backoff with jitter,
// Retry-After honoured and capped, deadline-aware, never after the first
// streamed chunk. A nil cfg takes the defaults.
func Retry(cfg *RetryConfig) (llm.Middleware, error) {
	if cfg == nil {
		cfg = &RetryConfig{}
	}
	return New(Config{Retry: cfg})
}

// Timeout returns the timeouts alone: total, per attempt, first chunk and
// stream idle.
func Timeout(cfg TimeoutConfig) (llm.Middleware, error) {
	if !cfg.enabled() {
		return nil, errf("Timeout needs at least one bound")
	}
	return New(Config{Timeout: cfg})
}

// Fallback returns the degradation chain alone. A nil cfg uses the static
// messages only.
func Fallback(cfg *FallbackConfig) (llm.Middleware, error) {
	if cfg == nil {
		cfg = &FallbackConfig{}
	}
	return New(Config{Fallback: cfg})
}

// RateLimit returns the rate limiter alone.
func RateLimit(cfg RateLimitConfig) (llm.Middleware, error) {
	return New(Config{RateLimit: &cfg})
}

// Bulkhead returns the bulkhead alone.
func Bulkhead(cfg BulkheadConfig) (llm.Middleware, error) {
	return New(Config{Bulkhead: &cfg})
}

// AdaptiveLimit returns failsafe-go's adaptive concurrency limiter alone.
func AdaptiveLimit(cfg AdaptiveLimitConfig) (llm.Middleware, error) {
	return New(Config{AdaptiveLimit: &cfg})
}

// Hedge returns hedging alone. A budget, when given, bounds the hedges.
func Hedge(cfg HedgeConfig, budget *BudgetConfig) (llm.Middleware, error) {
	return New(Config{Hedge: &cfg, Budget: budget})
}

// CircuitBreaker builds a breaker from cfg and returns it with its
// middleware; keep the *Breaker to read its state.
func CircuitBreaker(cfg BreakerConfig) (*Breaker, llm.Middleware, error) {
	b, err := NewBreaker(cfg)
	if err != nil {
		return nil, nil, err
	}
	return b, b.Middleware(), nil
}
