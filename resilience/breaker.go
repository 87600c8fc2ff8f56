package resilience

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/llmkit/llmkit/llm"
)

// BreakerConfig tunes a circuit breaker. The zero value is the classic
// breaker: open after 5 consecutive failures, half-open after 60 s, one
// probe, which closes it on success and reopens it on failure.
type BreakerConfig struct {
	// Name is reported as the Source of EventBreakerState. Default
	// "default".
	Name string
	// FailureThreshold opens the breaker after that many consecutive
	// failures (count mode). Default 5.
	FailureThreshold uint
	// FailureRate, when in (0, 1], switches to ratio mode: the breaker
	// opens when at least FailureRate of the calls within Period failed,
	// once MinCalls calls were seen.
	FailureRate float64
	// MinCalls is the ratio mode's minimum number of calls. Default 10.
	MinCalls uint
	// Period is the ratio mode's sliding window. Default 1 minute.
	Period time.Duration
	// Delay is how long the breaker stays open. Default 60 s.
	Delay time.Duration
	// Probes is how many calls the half-open breaker admits. All must
	// succeed to close it; one failure reopens it. Default 1.
	Probes uint
	// IsFailure decides which errors count against the provider's health.
	// Default: rate limits, timeouts, 5xx, overload and cut streams (those
	// llm.Retryable accepts). Bad requests and the caller's own
	// cancellations never count, whatever IsFailure says.
	IsFailure func(error) bool
	// Observer receives every state change with context.Background(),
	// outside the breaker's lock, e.g. for a state gauge.
	Observer llm.Observer
}

// Breaker is a circuit breaker on failsafe-go's CircuitBreaker. It is safe
// for concurrent use and may guard several clients at once.
type Breaker struct {
	cb        circuitbreaker.CircuitBreaker[*llm.Response]
	name      string
	isFailure func(error) bool
	observer  llm.Observer
	// obs hear the state changes, whichever call observes them: the
	// observers subscribed to the clients that use this breaker, and any
	// given to Subscribe.
	obs llm.Observers

	// state mirrors the failsafe state, written by its listener, so that the
	// hot path reads one atomic instead of taking the breaker's lock.
	state atomic.Uint32

	// Changes wait here until a call that holds a context emits them:
	// failsafe's listeners have none. pendingN lets the hot path skip the
	// lock when nothing waits.
	mu       sync.Mutex
	pending  []llm.BreakerState
	pendingN atomic.Int32
	// quiet suppresses reporting while a canceled probe's slot is returned.
	quiet atomic.Bool

	// countMode is the consecutive-failure breaker (no FailureRate). In
	// it, while the breaker is closed and no failure was recorded since
	// the last recorded success, a success changes nothing in failsafe-go's
	// window, so neither the permit nor the success is taken to
	// failsafe-go: the closed, healthy path touches no lock, and calls on
	// different cores do not contend. unresolved counts failures recorded
	// since the last recorded success.
	countMode  bool
	unresolved atomic.Int64
}

// NewBreaker builds a breaker from cfg, validated here.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = 5
	}
	if cfg.Delay == 0 {
		cfg.Delay = 60 * time.Second
	}
	if cfg.Probes == 0 {
		cfg.Probes = 1
	}
	if cfg.MinCalls == 0 {
		cfg.MinCalls = 10
	}
	if cfg.Period == 0 {
		cfg.Period = time.Minute
	}
	if cfg.IsFailure == nil {
		cfg.IsFailure = llm.Retryable
	}
	switch {
	case cfg.Delay < 0 || cfg.Period < 0:
		return nil, errors.New("resilience: breaker durations must not be negative")
	case cfg.FailureRate < 0 || cfg.FailureRate > 1:
		return nil, errors.New("resilience: Breaker.FailureRate out of [0, 1]")
	}
	b := &Breaker{name: cfg.Name, isFailure: cfg.IsFailure, observer: cfg.Observer, countMode: cfg.FailureRate == 0}
	bld := circuitbreaker.NewBuilder[*llm.Response]().
		WithDelay(cfg.Delay).
		WithSuccessThreshold(cfg.Probes).
		OnStateChanged(b.onStateChanged)
	if cfg.FailureRate > 0 {
		bld = bld.WithFailureRateThreshold(cfg.FailureRate, cfg.MinCalls, cfg.Period)
	} else {
		bld = bld.WithFailureThreshold(cfg.FailureThreshold)
	}
	b.cb = bld.Build()
	return b, nil
}

func fromFailsafe(s circuitbreaker.State) llm.BreakerState {
	switch s {
	case circuitbreaker.OpenState:
		return llm.BreakerOpen
	case circuitbreaker.HalfOpenState:
		return llm.BreakerHalfOpen
	}
	return llm.BreakerClosed
}

// onStateChanged runs inside failsafe with its lock released but without a
// context: it records the change and tells the construction-time observer.
func (b *Breaker) onStateChanged(ev circuitbreaker.StateChangedEvent) {
	s := fromFailsafe(ev.NewState)
	b.state.Store(uint32(s))
	if b.quiet.Load() {
		return
	}
	b.mu.Lock()
	b.pending = append(b.pending, s)
	b.pendingN.Store(int32(len(b.pending)))
	b.mu.Unlock()
	if b.observer != nil {
		b.observer.Observe(context.Background(), llm.Event{Kind: llm.EventBreakerState, State: s, Source: b.name})
	}
}

// flush emits the recorded state changes with the context of the call that
// observed them. No lock is held while observers run.
func (b *Breaker) flush(ctx context.Context) {
	if b.pendingN.Load() == 0 {
		return
	}
	b.mu.Lock()
	states := b.pending
	b.pending = nil
	b.pendingN.Store(0)
	b.mu.Unlock()
	for _, s := range states {
		b.obs.Emit(ctx, llm.Event{Kind: llm.EventBreakerState, State: s, Source: b.name})
	}
}

// Subscribe makes o hear the breaker's state changes (EventBreakerState)
// from now on, whichever call observes them, besides the observers on that
// call's context. A resilience middleware subscribes the observers
// subscribed to it; a store that takes Permits can subscribe its own.
// Subscribing the same comparable observer twice delivers once.
func (b *Breaker) Subscribe(o llm.Observer) { b.obs.Add(o) }

// Name returns the breaker's name, the Source of its events.
func (b *Breaker) Name() string { return b.name }

// State returns the breaker's state. An open breaker whose delay has passed
// reports half-open: the next call is admitted as a probe.
func (b *Breaker) State() llm.BreakerState {
	s := llm.BreakerState(b.state.Load())
	if s == llm.BreakerOpen && b.cb.RemainingDelay() == 0 {
		return llm.BreakerHalfOpen
	}
	return s
}

// RemainingDelay returns how long the breaker stays open, 0 unless open.
func (b *Breaker) RemainingDelay() time.Duration { return b.cb.RemainingDelay() }

// Middleware returns the breaker alone as a middleware.
func (b *Breaker) Middleware() llm.Middleware {
	mw, _ := New(Config{Breaker: b}) // a Config with only a built breaker is always valid
	return mw
}

// acquire asks for a permit. It reports whether the call was admitted and
// whether it is a half-open probe.
func (b *Breaker) acquire(ctx context.Context) (ok, probe bool) {
	if b.countMode && llm.BreakerState(b.state.Load()) == llm.BreakerClosed {
		// A closed breaker admits every call; failsafe-go would only take
		// its lock to say so.
		b.flush(ctx)
		return true, false
	}
	ok = b.cb.TryAcquirePermit()
	probe = ok && llm.BreakerState(b.state.Load()) == llm.BreakerHalfOpen
	b.flush(ctx)
	return ok, probe
}

// record settles a permit. callerDone says the caller's own context ended:
// such an outcome is not the provider's fault and is not charged.
func (b *Breaker) record(ctx context.Context, err error, callerDone, probe bool) {
	switch {
	case err == nil:
		b.recordSuccess()
	case callerDone || llm.KindOf(err) == llm.KindBadRequest || !b.isFailure(err):
		if llm.KindOf(err) == llm.KindCanceled || callerDone {
			if probe {
				b.releaseProbe()
			}
			return
		}
		// The provider answered, just not with success: it is healthy.
		b.recordSuccess()
	default:
		// Record first, then flag: a success that reads the flag before
		// it is raised is ordered before this failure, which is true.
		b.cb.RecordFailure()
		b.unresolved.Add(1)
	}
	b.flush(ctx)
}

// recordSuccess takes a success to failsafe-go unless, in count mode, the
// breaker is closed with no failure since the last recorded success: then
// it would change nothing.
func (b *Breaker) recordSuccess() {
	n := b.unresolved.Load()
	if b.countMode && n == 0 && llm.BreakerState(b.state.Load()) == llm.BreakerClosed {
		return
	}
	b.cb.RecordSuccess()
	// A failure recorded meanwhile raised the count: keep it, so the next
	// success is recorded too.
	b.unresolved.CompareAndSwap(n, 0)
}

// releaseProbe gives back the slot of a half-open probe whose caller went
// away. failsafe-go has no call for this, so the half-open state is
// restarted: the probes then in flight still report into it. The restart is
// not reported as a change.
func (b *Breaker) releaseProbe() {
	if b.cb.State() != circuitbreaker.HalfOpenState {
		return
	}
	b.quiet.Store(true)
	b.cb.Open()
	b.cb.HalfOpen()
	b.quiet.Store(false)
}

func (b *Breaker) openError() error {
	return &llm.Error{Kind: llm.KindCircuitOpen, Provider: "resilience",
		Message: "circuit breaker " + b.name + " is open", RetryAfter: b.cb.RemainingDelay()}
}
