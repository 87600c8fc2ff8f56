// Package resilience keeps an llm.Client answering when its provider
// misbehaves. Each policy is a middleware of its own, in a file of its own,
// on failsafe-go where it fits: Fallback, Timeout, RateLimit, Bulkhead,
// AdaptiveLimit, Retry, CircuitBreaker (or Breaker.Middleware) and Hedge.
// New is an llm.Chain of those a Config selects, outermost first:
//
//	fallback → total timeout → rate limit → bulkhead → adaptive limit →
//	retry → circuit breaker → per-attempt timeout → hedge → client
//
// The policies report what they do (EventAttempt, EventRetry,
// EventBreakerState, EventRejected, EventFallback, EventHedge) with
// llm.EmitTo: to the observer given at construction (Config.Observer, or a
// policy config's Observer) and to those on the call's context.
//
// Errors the package makes are *llm.Error: an open breaker is
// KindCircuitOpen and a local rate limit KindRateLimited, both with
// RetryAfter; a full bulkhead or adaptive limit KindOverloaded; a timeout of
// ours KindTimeout. The caller's own cancellation stays KindCanceled and is
// never charged to the breaker. Every error leaving a policy has passed
// through llm.RedactError. Nothing is retried, hedged or replaced once a
// chunk of a stream reached the caller.
package resilience
