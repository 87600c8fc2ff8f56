package resilience

import (
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// nonRetryable are the kinds that pass through retries and fallbacks
// unchanged by design; retryable ones are (correctly) retried into the
// conformance fake's next, successful answer.
var nonRetryable = llmtest.ErrorKinds(llm.KindBadRequest, llm.KindAuth, llm.KindContextLength, llm.KindContentFilter)

func factory(mk func() (llm.Middleware, error)) llmtest.Factory {
	return func(t *testing.T, up llm.Client) llm.Client {
		mw, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		return mw(up)
	}
}

func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		mk   func() (llm.Middleware, error)
		opts []llmtest.Option
	}{
		{"Retry", func() (llm.Middleware, error) { return Retry(nil) }, []llmtest.Option{nonRetryable}},
		{"RetrySingleAttempt", func() (llm.Middleware, error) { return Retry(&RetryConfig{MaxAttempts: 1}) }, nil},
		{"CircuitBreaker", func() (llm.Middleware, error) { _, mw, err := CircuitBreaker(BreakerConfig{}); return mw, err }, nil},
		{"Timeout", func() (llm.Middleware, error) {
			return Timeout(TimeoutConfig{Total: time.Minute, Attempt: 30 * time.Second, FirstChunk: 10 * time.Second, Idle: 10 * time.Second})
		}, nil},
		{"Fallback", func() (llm.Middleware, error) { return Fallback(&FallbackConfig{NoStatic: true}) }, nil},
		{"FallbackStatic", func() (llm.Middleware, error) { return Fallback(nil) }, []llmtest.Option{nonRetryable}},
		{"FallbackClients", func() (llm.Middleware, error) {
			return Fallback(&FallbackConfig{NoStatic: true, Clients: []llm.Client{&llmtest.Fake{Default: llmtest.Step{Text: "from the fallback client"}}}})
		}, []llmtest.Option{nonRetryable}},
		{"RateLimit", func() (llm.Middleware, error) {
			return RateLimit(RateLimitConfig{Requests: 100000, Bursty: true, TokensPerMinute: 100000000, PerTenant: true})
		}, nil},
		{"Bulkhead", func() (llm.Middleware, error) {
			return Bulkhead(BulkheadConfig{MaxConcurrent: 8, MaxWait: time.Minute})
		}, nil},
		{"AdaptiveLimit", func() (llm.Middleware, error) {
			return AdaptiveLimit(AdaptiveLimitConfig{MinLimit: 64, MaxLimit: 256, InitialLimit: 64, MaxWait: time.Minute})
		}, nil},
		{"Hedge", func() (llm.Middleware, error) {
			return Hedge(HedgeConfig{Delay: 50 * time.Millisecond})
		}, nil},
		{"Default", func() (llm.Middleware, error) { return New(DefaultConfig()) }, []llmtest.Option{nonRetryable}},
		// The default set retries: a retryable failure followed by an
		// answer returns the answer. Its static fallback answers the
		// retryable kinds, so only the others come back as errors.
		{"DefaultRetrying", func() (llm.Middleware, error) { return New(quickDefault()) }, []llmtest.Option{llmtest.Retrying(), nonRetryable}},
		// Without the static messages every kind comes back unchanged
		// (RetryAfter included) once the retries are spent.
		{"DefaultRetryingNoStatic", func() (llm.Middleware, error) {
			cfg := quickDefault()
			cfg.Fallback.NoStatic = true
			return New(cfg)
		}, []llmtest.Option{llmtest.Retrying()}},
		{"EverythingPassThrough", func() (llm.Middleware, error) {
			cfg := fullConfig()
			cfg.Retry = &RetryConfig{MaxAttempts: 1}
			cfg.Fallback = &FallbackConfig{NoStatic: true}
			return New(cfg)
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { llmtest.Run(t, factory(tc.mk), tc.opts...) })
	}
}

// fullConfig is every policy but hedging, sized not to get in the way.
func fullConfig() Config {
	cfg := DefaultConfig()
	cfg.RateLimit = &RateLimitConfig{Requests: 1 << 30, Bursty: true}
	cfg.Bulkhead = &BulkheadConfig{MaxConcurrent: 1024, MaxWait: time.Minute}
	cfg.AdaptiveLimit = &AdaptiveLimitConfig{MinLimit: 1024, MaxLimit: 4096, InitialLimit: 1024, MaxWait: time.Minute}
	return cfg
}

// quickDefault is DefaultConfig with millisecond backoffs, so that the
// conformance suite's retries stay quick.
func quickDefault() Config {
	cfg := DefaultConfig()
	cfg.Retry = &RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	return cfg
}
