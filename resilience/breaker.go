package resilience

import (
	"cmp"
	"context"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/llmkit/llmkit/llm"
)

// BreakerConfig tunes a circuit breaker. The zero value is the classic
// breaker: open after 5 consecutive failures, half-open after 60 s, one
// probe, which closes it on success and reopens it on failure.
type BreakerConfig struct {
	Name             string // the Source of its events; default "default"
	FailureThreshold uint   // consecutive failures that open it; default 5
	// FailureRate, when in (0, 1], switches to ratio mode: the breaker
	// opens when at least FailureRate of the calls within Period failed,
	// once MinCalls calls were seen (default 10, within 1 minute).
	FailureRate float64
	MinCalls    uint
	Period      time.Duration
	Delay       time.Duration // how long it stays open; default 60 s
	// Probes is how many calls the half-open breaker admits; all must
	// succeed to close it, one failure reopens it. Default 1.
	Probes uint
	// IsFailure decides which errors count against the provider; default
	// llm.Retryable. Bad requests and the caller's own cancellations never
	// count, whatever IsFailure says.
	IsFailure func(error) bool
	// Observer hears every state change (EventBreakerState), whichever
	// middleware's call caused it, as do the observers on that call's
	// context. They run under the breaker's lock: State is fine, Acquire not.
	Observer llm.Observer
}

// Breaker is failsafe-go's CircuitBreaker used through its permits. It is
// safe for concurrent use and may guard several middlewares at once.
//
// failsafe-go cannot give back a half-open permit without recording an
// outcome, and a probe whose caller went away proves nothing. Its slot is
// kept as lost: the next call the half-open breaker would refuse takes it,
// and recording that call's outcome returns the slot to failsafe-go. A
// state change forgets lost slots; the new state has its own.
type Breaker struct {
	cb        circuitbreaker.CircuitBreaker[*llm.Response]
	name      string
	isFailure func(error) bool
	obs       llm.Observer

	// mu serializes the calls into cb, so that its state-change listener,
	// which runs inside them, reports each change in order with the context
	// of the call that caused it. It guards the fields below.
	mu   sync.Mutex
	ctx  context.Context // of the call into cb in progress
	gen  uint64          // state changes so far
	lost uint            // half-open slots whose probes were released
}

// NewBreaker builds a breaker from cfg, validated here.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	setDefault(&cfg.Name, "default")
	setDefault(&cfg.FailureThreshold, 5)
	setDefault(&cfg.Delay, 60*time.Second)
	setDefault(&cfg.Probes, 1)
	setDefault(&cfg.MinCalls, 10)
	setDefault(&cfg.Period, time.Minute)
	if cfg.IsFailure == nil {
		cfg.IsFailure = llm.Retryable
	}
	if cfg.Delay < 0 || cfg.Period < 0 || cfg.FailureRate < 0 || cfg.FailureRate > 1 {
		return nil, errf("Breaker durations must not be negative, FailureRate in [0, 1]")
	}
	b := &Breaker{name: cfg.Name, isFailure: cfg.IsFailure, obs: cfg.Observer}
	bld := circuitbreaker.NewBuilder[*llm.Response]().
		WithDelay(cfg.Delay).
		WithSuccessThreshold(cfg.Probes).
		OnStateChanged(b.changed)
	if cfg.FailureRate > 0 {
		bld = bld.WithFailureRateThreshold(cfg.FailureRate, cfg.MinCalls, cfg.Period)
	} else {
		bld = bld.WithFailureThreshold(cfg.FailureThreshold)
	}
	b.cb = bld.Build()
	return b, nil
}

// CircuitBreaker builds a breaker and returns it with its middleware.
func CircuitBreaker(cfg BreakerConfig) (*Breaker, llm.Middleware, error) {
	b, err := NewBreaker(cfg)
	if err != nil {
		return nil, nil, err
	}
	return b, b.Middleware(), nil
}

// changed is failsafe-go's state-change listener. It runs inside a call
// into cb, with b.mu held and failsafe-go's own lock released, so an
// observer may read State but must not Acquire.
func (b *Breaker) changed(ev circuitbreaker.StateChangedEvent) {
	b.gen++
	b.lost = 0
	llm.EmitTo(cmp.Or(b.ctx, context.Background()), b.obs, llm.Event{Kind: llm.EventBreakerState, State: states[ev.NewState], Source: b.name})
}

// states maps failsafe-go's states to ours.
var states = [...]llm.BreakerState{circuitbreaker.ClosedState: llm.BreakerClosed,
	circuitbreaker.OpenState: llm.BreakerOpen, circuitbreaker.HalfOpenState: llm.BreakerHalfOpen}

// Name returns the breaker's name, the Source of its events.
func (b *Breaker) Name() string { return b.name }

// State returns the breaker's state. An open breaker whose delay has passed
// reports half-open: the next call is admitted as a probe.
func (b *Breaker) State() llm.BreakerState {
	s := b.cb.State()
	if s == circuitbreaker.OpenState && b.cb.RemainingDelay() == 0 {
		s = circuitbreaker.HalfOpenState
	}
	return states[s]
}

// Middleware returns the breaker as a middleware. An open breaker fails
// fast with kind circuit_open and a RetryAfter; a panic in the wrapped
// client counts as a failure and keeps unwinding.
func (b *Breaker) Middleware() llm.Middleware {
	return func(next llm.Client) llm.Client {
		return policyFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			p, ok := b.Acquire(ctx)
			if !ok {
				return nil, &llm.Error{Kind: llm.KindCircuitOpen, Provider: provider,
					Message: "circuit breaker " + b.name + " is open", RetryAfter: b.cb.RemainingDelay()}
			}
			resp, err := (*llm.Response)(nil), error(errPanic) // what a panic below counts as
			defer func() { p.Done(ctx, err) }()
			resp, err = next.Generate(ctx, req)
			return resp, err
		})
	}
}

// Permit is one call a Breaker admitted. Exactly one of Done or Release
// must follow a successful Acquire.
type Permit struct {
	b     *Breaker
	probe bool   // admitted by the half-open breaker
	gen   uint64 // the breaker's state then
}

// Acquire asks the breaker to admit one call, for code that guards calls
// other than a middleware's (a store, a queue). When the breaker is open
// it returns false; then the call must not be made. State changes are
// reported with ctx.
func (b *Breaker) Acquire(ctx context.Context) (Permit, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ctx = ctx
	ok := b.cb.TryAcquirePermit()
	b.ctx = nil
	half := b.cb.IsHalfOpen()
	if !ok && half && b.lost > 0 {
		b.lost--
		ok = true
	}
	return Permit{b: b, probe: ok && half, gen: b.gen}, ok
}

// Done records the call's outcome: nil is a success, an error counts
// against the breaker when IsFailure says so, and otherwise as a success
// (the provider answered). When the caller ended ctx, or the error is a
// cancellation, the outcome says nothing about the provider: Done then
// releases the permit as Release does.
func (p Permit) Done(ctx context.Context, err error) {
	k := llm.KindOf(err)
	switch {
	case err == nil:
		p.b.record(ctx, true)
	case gone(ctx) || k == llm.KindCanceled:
		p.Release()
	default:
		p.b.record(ctx, k == llm.KindBadRequest || !p.b.isFailure(err))
	}
}

// Release gives the permit back for a call that was not made or whose
// caller went away, counting neither a success nor a failure.
func (p Permit) Release() {
	p.b.mu.Lock()
	if p.probe && p.b.gen == p.gen {
		p.b.lost++
	}
	p.b.mu.Unlock()
}

func (b *Breaker) record(ctx context.Context, success bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ctx = ctx
	if success {
		b.cb.RecordSuccess()
	} else {
		b.cb.RecordFailure()
	}
	b.ctx = nil
}
