package router

import (
	"context"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// causeShared marks a cooldown another replica's hint started.
const causeShared = 255

// cooldownFor returns how long a deployment cools after err, 0 when err
// says nothing against it: Retry-After when the provider sent one, else
// Cooldown (AuthCooldown for 401/403); an open breaker of the deployment's
// own cools it for its RetryAfter only.
func (r *Router) cooldownFor(err error) time.Duration {
	after := llm.RetryAfterOf(err)
	switch llm.KindOf(err) {
	case llm.KindRateLimited, llm.KindTimeout, llm.KindUnavailable, llm.KindOverloaded:
		if after <= 0 {
			after = r.cfg.Cooldown
		}
	case llm.KindAuth:
		if after <= 0 {
			after = r.cfg.AuthCooldown
		}
	case llm.KindCircuitOpen:
	default:
		return 0
	}
	return min(after, r.cfg.MaxCooldown)
}

// cool makes d cool for dur from now, unless it already cools longer:
// cooldowns only extend. A new or extended cooldown is reported and,
// when it is this replica's own (not a shared hint), shared.
func (r *Router) cool(ctx context.Context, req *llm.Request, d *deployment, dur time.Duration, cause uint32) {
	dur = min(dur, r.cfg.MaxCooldown)
	if dur <= 0 {
		return
	}
	until := int64(r.now() + dur)
	for {
		cur := d.until.Load()
		if cur >= until {
			return
		}
		if d.until.CompareAndSwap(cur, until) {
			break
		}
	}
	d.cause.Store(cause)
	llm.EmitTo(ctx, r.cfg.Observer, llm.Event{Kind: llm.EventCooldown, Request: req, Source: d.Name, Delay: dur, Reason: causeName(cause)})
	if r.cfg.Shared != nil && cause != causeShared {
		r.cfg.Shared.CoolUntil(ctx, d.Name, time.Now().Add(dur))
	}
}

// ended reports the end of d's cooldown that ended at until, once: the
// first decision to notice it clears it.
func (r *Router) ended(ctx context.Context, d *deployment, until int64) {
	if d.until.CompareAndSwap(until, 0) {
		llm.EmitTo(ctx, r.cfg.Observer, llm.Event{Kind: llm.EventCooldown, Source: d.Name, Reason: causeName(d.cause.Load())})
	}
}

// sharedCooling adopts another replica's cooldown of d, and reports
// whether d cools now.
func (r *Router) sharedCooling(ctx context.Context, req *llm.Request, d *deployment) bool {
	if r.cfg.Shared == nil {
		return false
	}
	left := time.Until(r.cfg.Shared.CoolingUntil(ctx, d.Name))
	if left <= 0 {
		return false
	}
	r.cool(ctx, req, d, left, causeShared)
	return true
}

func causeName(c uint32) string {
	if c == causeShared {
		return "shared"
	}
	return llm.Kind(c).String()
}
