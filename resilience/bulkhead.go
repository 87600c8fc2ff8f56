package resilience

import (
	"context"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"

	"github.com/llmkit/llmkit/llm"
)

// BulkheadConfig bounds concurrent calls.
type BulkheadConfig struct {
	MaxConcurrent uint          // required
	MaxWait       time.Duration // a cancellable wait for a slot; 0 refuses at once
	Observer      llm.Observer  // hears each refusal (EventRejected, "bulkhead")
}

// Bulkhead returns the bulkhead alone, on failsafe-go's bulkhead. A slot is
// freed when the call returns, or panics.
func Bulkhead(cfg BulkheadConfig) (llm.Middleware, error) { return newBulkhead(cfg, cfg.Observer) }

func newBulkhead(c BulkheadConfig, obs llm.Observer) (llm.Middleware, error) {
	if c.MaxConcurrent == 0 || c.MaxWait < 0 {
		return nil, errf("Bulkhead needs MaxConcurrent > 0, MaxWait ≥ 0")
	}
	bh := bulkhead.New[*llm.Response](c.MaxConcurrent)
	return func(next llm.Client) llm.Client {
		return policyFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			if ctx.Err() != nil {
				return nil, llm.FromContext(ctx, provider)
			}
			if !bh.TryAcquirePermit() {
				if c.MaxWait == 0 || bh.AcquirePermitWithMaxWait(ctx, c.MaxWait) != nil {
					if ctx.Err() != nil {
						return nil, llm.FromContext(ctx, provider)
					}
					return nil, reject(ctx, obs, req, "bulkhead", &llm.Error{Kind: llm.KindOverloaded, Provider: provider, Message: "bulkhead full"})
				}
			}
			defer bh.ReleasePermit()
			return next.Generate(ctx, req)
		})
	}, nil
}
