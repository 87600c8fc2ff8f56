package resilience

import (
	"context"
)

// Permit is one call admitted by a Breaker used outside a resilience
// middleware: a cache's remote store, say, which wants the same breaker
// semantics (and the same events) for calls that are not LLM calls. Exactly
// one of Done or Release must follow a successful Acquire.
type Permit struct {
	b     *Breaker
	probe bool
}

// Acquire asks the breaker to admit one call. When the breaker is open it
// returns false; then the call must not be made. State changes are
// reported as EventBreakerState to the breaker's subscribers (Subscribe)
// and under ctx.
func (b *Breaker) Acquire(ctx context.Context) (Permit, bool) {
	ok, probe := b.acquire(ctx)
	return Permit{b: b, probe: probe}, ok
}

// Done records the call's outcome: nil is a success, an error counts
// against the breaker when the breaker's IsFailure says so. When ctx has
// ended, the outcome says nothing about the downstream and is not counted.
func (p Permit) Done(ctx context.Context, err error) {
	p.b.record(ctx, err, ctx.Err() != nil, p.probe)
}

// Release gives the permit back for a call that was not made, counting
// neither a success nor a failure.
func (p Permit) Release() {
	if p.probe {
		p.b.releaseProbe()
	}
}
