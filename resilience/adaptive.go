package resilience

import (
	"cmp"
	"context"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"

	"github.com/llmkit/llmkit/llm"
)

// AdaptiveLimitConfig enables failsafe-go's adaptive concurrency limiter
// with its defaults, bounded by MinLimit and MaxLimit when set.
type AdaptiveLimitConfig struct {
	MinLimit, MaxLimit, InitialLimit uint
	MaxWait                          time.Duration // a cancellable wait for a permit; 0 refuses at once
	Observer                         llm.Observer  // hears each refusal (EventRejected, "adaptive_limit")
}

// AdaptiveLimit returns failsafe-go's adaptive concurrency limiter alone.
// A call the caller abandons does not teach the limiter its latency.
func AdaptiveLimit(cfg AdaptiveLimitConfig) (llm.Middleware, error) {
	return newAdaptiveLimit(cfg, cfg.Observer)
}

func newAdaptiveLimit(c AdaptiveLimitConfig, obs llm.Observer) (llm.Middleware, error) {
	mn := max(c.MinLimit, 1)
	mx := cmp.Or(c.MaxLimit, max(200, mn))
	in := cmp.Or(c.InitialLimit, min(max(20, mn), mx))
	if mn > mx || in < mn || in > mx || c.MaxWait < 0 {
		return nil, errf("AdaptiveLimit must have Min ≤ Initial ≤ Max, MaxWait ≥ 0")
	}
	b := adaptivelimiter.NewBuilder[*llm.Response]()
	if c.MinLimit > 0 || c.MaxLimit > 0 || c.InitialLimit > 0 {
		b = b.WithLimits(mn, mx, in)
	}
	if c.MaxWait > 0 {
		b = b.WithQueueing(2, 3).WithMaxWaitTime(c.MaxWait)
	}
	al := b.Build()
	return func(next llm.Client) llm.Client {
		return policyFunc(func(ctx context.Context, req *llm.Request) (resp *llm.Response, err error) {
			if ctx.Err() != nil {
				return nil, llm.FromContext(ctx, provider)
			}
			permit, ok := al.TryAcquirePermit()
			if !ok && c.MaxWait > 0 {
				var werr error
				permit, werr = al.AcquirePermitWithMaxWait(ctx, c.MaxWait)
				ok = werr == nil
			}
			if !ok {
				if ctx.Err() != nil {
					return nil, llm.FromContext(ctx, provider)
				}
				return nil, reject(ctx, obs, req, "adaptive_limit", &llm.Error{Kind: llm.KindOverloaded, Provider: provider,
					Message: "adaptive concurrency limit reached"})
			}
			defer func() { // a panic records a failed call too
				if err != nil && gone(ctx) {
					permit.Drop()
				} else {
					permit.Record()
				}
			}()
			return next.Generate(ctx, req)
		})
	}, nil
}
