package llm

import (
	"context"
	"time"
)

// EventKind says what a decorator did.
type EventKind uint8

// The events decorators report. Each names the fields of Event it sets.
const (
	// EventAttempt: one provider attempt finished. Attempt (1-based),
	// Duration, Err (nil on success).
	EventAttempt EventKind = iota + 1
	// EventRetry: a retry is scheduled. Attempt (the one that failed),
	// Delay (the wait before the next), Err.
	EventRetry
	// EventBreakerState: a circuit breaker changed state. State, Source
	// (the breaker's name).
	EventBreakerState
	// EventRejected: a rate limiter, bulkhead, budget or concurrency limit
	// refused or gave up waiting. Reason ("rate_limit", "bulkhead",
	// "adaptive_limit", "budget"), Err.
	EventRejected
	// EventCacheHit, EventCacheMiss: a cache lookup. Source (the store).
	// A miss with a Reason is a bypass: a request the cache did not look
	// up, the store not asked, and the Reason says why, from a bounded set:
	// "nondeterministic" (no temperature 0), "opted_out" (CacheBypass),
	// "skip_read" (CacheSkipRead alone: a refresh) or "no_key" (no
	// canonical key). A plain miss has no Reason.
	EventCacheHit
	EventCacheMiss
	// EventCacheStale: an expired entry within its grace window was served
	// as a degraded answer.
	EventCacheStale
	// EventCacheStore: an answer was stored.
	EventCacheStore
	// EventCacheCoalesced: the call waited for an identical call in flight
	// instead of calling the provider.
	EventCacheCoalesced
	// EventCacheError: a store failed; the call went on as a miss. Err.
	EventCacheError
	// EventFallback: a fallback produced the answer. Reason (the Kind of the
	// triggering error, as a string), Source (which fallback), Err.
	EventFallback
	// EventHedge: a hedged attempt started. Attempt.
	EventHedge
	// EventLimit: a limiter shared across replicas decided on a call.
	// Source (the limiter's name), Reason: "allowed", "rejected", or, when
	// its store failed, the degraded mode that decided instead:
	// "fail_open", "fail_closed" or "local_share". Tokens (reserved for
	// the call when admitted), Err (the store's error in a degraded mode).
	// A LocalShare refusal carries the refusal (KindRateLimited, its cause
	// the store's error) as Err. Cooldown hints report a failing store as
	// EventLimit with Source the hints' name and Reason "fail_open".
	EventLimit
	// EventLimitSettle: a reservation was settled after the call. Source,
	// Tokens (the tokens the call really used; the rest was refunded), Err
	// (the store's error when the settlement could not be written).
	EventLimitSettle
	// EventRoute: a router's attempt on one deployment finished. Source
	// (the deployment's name, from the router's configured set), Reason
	// ("ok" or the error's Kind), Duration, Err.
	EventRoute
	// EventCooldown: a deployment's cooldown started, was extended or
	// ended. Source (the deployment or the cooling key), Delay (how long it
	// still cools; 0 when it has ended), Reason (the Kind that caused it,
	// or "shared" when another replica's hint did).
	EventCooldown
	numEventKinds
)

var eventNames = [numEventKinds]string{
	"", "attempt", "retry", "breaker_state", "rejected", "cache_hit", "cache_miss",
	"cache_stale", "cache_store", "cache_coalesced", "cache_error", "fallback", "hedge",
	"limit", "limit_settle", "route", "cooldown",
}

// String returns a bounded name for the event kind, such as "cache_hit".
func (k EventKind) String() string {
	if k >= numEventKinds || k == 0 {
		return "unknown"
	}
	return eventNames[k]
}

// BreakerState is a circuit breaker's state.
type BreakerState uint8

// The breaker states. The numeric values are what the
// llm_circuit_breaker_state gauge exports.
const (
	BreakerClosed   BreakerState = 0
	BreakerHalfOpen BreakerState = 1
	BreakerOpen     BreakerState = 2
)

// String returns "closed", "half_open" or "open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half_open"
	case BreakerOpen:
		return "open"
	}
	return "unknown"
}

// Event is one thing a decorator did during a call. Only the fields its
// Kind names are set. Reason and Source come from bounded sets, so they may
// be used as label values; Request is the caller's request, read-only.
type Event struct {
	Kind     EventKind
	Request  *Request
	Attempt  int
	Delay    time.Duration
	Duration time.Duration
	Err      error
	State    BreakerState
	Reason   string
	Source   string
	Tokens   int
}

// Observer receives events. Observe is called synchronously on the goroutine
// of the decorator that emits, possibly from several goroutines at once; it
// must be quick, must not block and must not call back into the decorator.
type Observer interface {
	Observe(ctx context.Context, ev Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(ctx context.Context, ev Event)

// Observe calls f(ctx, ev).
func (f ObserverFunc) Observe(ctx context.Context, ev Event) { f(ctx, ev) }

type observerKey struct{}

// observerCtx carries one observer and links to the ones registered further
// out, so registering costs one allocation and Emit walks a short list.
type observerCtx struct {
	context.Context
	obs  Observer
	next *observerCtx
}

func (c *observerCtx) Value(key any) any {
	if key == (observerKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithObserver returns a context under which Emit also reports to obs, for
// an observer that keeps per-call state (the attempts of one call, say).
// Observers registered further out keep receiving events. A nil obs returns
// ctx unchanged. An observer that only counts is better given once, at
// construction, to the decorators whose events it wants (see MultiObserver).
func WithObserver(ctx context.Context, obs Observer) context.Context {
	if obs == nil {
		return ctx
	}
	next, _ := ctx.Value(observerKey{}).(*observerCtx)
	return &observerCtx{Context: ctx, obs: obs, next: next}
}

// Observed reports whether anybody listens under ctx, so that an emitter
// can skip building an event nobody reads.
func Observed(ctx context.Context) bool {
	_, ok := ctx.Value(observerKey{}).(*observerCtx)
	return ok
}

// Emit reports ev to every observer registered under ctx, innermost first.
// It costs one context lookup when nobody listens. A decorator that was
// also given an observer at construction reports to it as well, with
// EmitTo.
func Emit(ctx context.Context, ev Event) {
	for c, _ := ctx.Value(observerKey{}).(*observerCtx); c != nil; c = c.next {
		c.obs.Observe(ctx, ev)
	}
}

// EmitTo reports ev to o, when o is not nil, then to the observers under
// ctx (Emit). It is how a decorator built with an observer emits.
func EmitTo(ctx context.Context, o Observer, ev Event) {
	if o != nil {
		o.Observe(ctx, ev)
	}
	Emit(ctx, ev)
}

// MultiObserver returns an Observer that reports each event to every one of
// obs in order, like io.MultiWriter; nil ones are skipped. It returns nil
// when none is left, and the observer itself when only one is.
func MultiObserver(obs ...Observer) Observer {
	var all multiObserver
	for _, o := range obs {
		switch o := o.(type) {
		case nil:
		case multiObserver:
			all = append(all, o...)
		default:
			all = append(all, o)
		}
	}
	switch len(all) {
	case 0:
		return nil
	case 1:
		return all[0]
	}
	return all
}

type multiObserver []Observer

func (m multiObserver) Observe(ctx context.Context, ev Event) {
	for _, o := range m {
		o.Observe(ctx, ev)
	}
}
