package llm

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
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
	numEventKinds
)

var eventNames = [numEventKinds]string{
	"", "attempt", "retry", "breaker_state", "rejected", "cache_hit", "cache_miss",
	"cache_stale", "cache_store", "cache_coalesced", "cache_error", "fallback", "hedge",
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

// WithObserver returns a context under which Emit also reports to obs.
// Observers registered further out keep receiving events. A nil obs returns
// ctx unchanged.
func WithObserver(ctx context.Context, obs Observer) context.Context {
	if obs == nil {
		return ctx
	}
	next, _ := ctx.Value(observerKey{}).(*observerCtx)
	return &observerCtx{Context: ctx, obs: obs, next: next}
}

// ObserverScope is the storage WithObserver allocates, for decorators that
// already allocate per-call state: embedding an ObserverScope in that state
// and calling Bind registers an observer with no further allocation.
type ObserverScope struct {
	c observerCtx
}

// Bind returns a context under which Emit also reports to obs, like
// WithObserver, using s as its storage. s must not be bound again while the
// returned context is in use. A nil obs returns ctx unchanged.
func (s *ObserverScope) Bind(ctx context.Context, obs Observer) context.Context {
	if obs == nil {
		return ctx
	}
	next, _ := ctx.Value(observerKey{}).(*observerCtx)
	s.c = observerCtx{Context: ctx, obs: obs, next: next}
	return &s.c
}

// Observed reports whether anybody listens under ctx, so that an emitter
// can skip building an event nobody reads.
func Observed(ctx context.Context) bool {
	_, ok := ctx.Value(observerKey{}).(*observerCtx)
	return ok
}

// Emit reports ev to every observer registered under ctx, innermost first.
// It costs one context lookup when nobody listens.
func Emit(ctx context.Context, ev Event) { emitCtx(ctx, ev, nil) }

// emitCtx reports ev to the observers registered under ctx, innermost
// first, except the comparable ones in skip (which already heard it).
func emitCtx(ctx context.Context, ev Event, skip *observerList) {
	c, _ := ctx.Value(observerKey{}).(*observerCtx)
	for ; c != nil; c = c.next {
		if skip == nil || !skip.has(c.obs) {
			c.obs.Observe(ctx, ev)
		}
	}
}

// Subscriber is a Client that can deliver the events it and the clients
// inside it emit to an observer given once, at construction, instead of
// one registered in every call's context with WithObserver (which costs an
// allocation per call). A decorator whose observer keeps no per-call state
// (the Prometheus middleware, say) subscribes when it wraps its client and,
// when that succeeds, leaves the call's context alone.
//
// Decorators implement it by subscribing their own wrapped client first
// and, only when that succeeds, adding the observer to the ones they
// deliver their own events to (see Observers). A provider adapter that
// emits nothing implements it by returning true. A client that cannot
// promise delivery returns false; so does any Client that does not
// implement Subscriber (a ClientFunc, for one), since it might emit events
// or call other decorated clients that only a context-registered observer
// would hear.
type Subscriber interface {
	// Subscribe makes o receive, from now on, every event this client and
	// the clients inside it emit, for every call they serve (whoever made
	// it), and reports true; or subscribes nothing and reports false.
	// Subscribing the same comparable observer twice delivers once.
	Subscribe(o Observer) bool
}

// Subscribe subscribes o to c's events when c is a Subscriber and accepts;
// it reports whether o is now subscribed. A nil o is never subscribed.
func Subscribe(c Client, o Observer) bool {
	s, ok := c.(Subscriber)
	return ok && o != nil && s.Subscribe(o)
}

// Observers is the set of observers subscribed to a decorator that emits
// events (see Subscriber). The zero value is an empty set ready to use; a
// nil *Observers is an empty set that cannot be added to. It is safe for
// concurrent use; adding is meant for construction and copies the set.
type Observers struct {
	list atomic.Pointer[observerList]
	mu   sync.Mutex // serialises Add
}

// observerList is an immutable snapshot of an Observers set.
type observerList struct {
	all []Observer
	// cmp are the observers of comparable types, the ones Emit can
	// recognise when they are also registered on the call's context.
	cmp []Observer
}

// has reports whether o is one of the comparable observers. Comparing an
// interface with one of a comparable dynamic type never panics: values of
// another type are simply unequal.
func (l *observerList) has(o Observer) bool {
	for _, x := range l.cmp {
		if x == o {
			return true
		}
	}
	return false
}

// Add subscribes o. Adding a comparable observer that is already in the
// set does nothing, so that two decorators sharing one observer (two
// Prometheus middlewares on one registry, say) do not count an event twice.
func (s *Observers) Add(o Observer) {
	if o == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var old observerList
	if p := s.list.Load(); p != nil {
		old = *p
	}
	comparable := reflect.TypeOf(o).Comparable()
	if comparable && old.has(o) {
		return
	}
	l := observerList{all: append(old.all[:len(old.all):len(old.all)], o), cmp: old.cmp}
	if comparable {
		l.cmp = append(old.cmp[:len(old.cmp):len(old.cmp)], o)
	}
	s.list.Store(&l)
}

// Len returns the number of subscribed observers.
func (s *Observers) Len() int {
	if s == nil {
		return 0
	}
	if p := s.list.Load(); p != nil {
		return len(p.all)
	}
	return 0
}

// Emit reports ev to the subscribed observers, then, as the package-level
// Emit does, to every observer registered under ctx, except one that is
// also subscribed here (a comparable observer that reached the call's
// context by another path hears the event once). An observer registered
// twice on the context itself hears it twice: registration is per call,
// and checking the context's chain for repeats would cost every event.
func (s *Observers) Emit(ctx context.Context, ev Event) {
	var l *observerList
	if s != nil {
		l = s.list.Load()
	}
	if l == nil {
		Emit(ctx, ev)
		return
	}
	for _, o := range l.all {
		o.Observe(ctx, ev)
	}
	emitCtx(ctx, ev, l)
}

// Observed reports whether anybody listens: a subscribed observer, or one
// registered under ctx.
func (s *Observers) Observed(ctx context.Context) bool {
	return s.Len() > 0 || Observed(ctx)
}
