package resilience

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// provider names this package in the errors it makes.
const provider = "resilience"

func errf(msg string) error { return errors.New("resilience: " + msg) }

// setDefault sets *v to d when *v is the zero value.
func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Config selects and tunes the policies New composes, in the package's
// order. A nil or zero policy field leaves that policy out.
type Config struct {
	// Observer hears every policy's events, besides the observers on the
	// call's context: the observers that only count, such as metrics. A
	// policy config's own Observer hears that policy's events too.
	Observer  llm.Observer
	Fallback  *FallbackConfig
	Timeout   TimeoutConfig
	RateLimit *RateLimitConfig
	// Limit is a limiter shared across replicas, such as
	// limit.New(...).Middleware(). It runs where RateLimit does, after it
	// when both are set.
	Limit         llm.Middleware
	Bulkhead      *BulkheadConfig
	AdaptiveLimit *AdaptiveLimitConfig
	Retry         *RetryConfig // without it, one attempt per call (still reported)
	// Breaker configures the circuit breaker New builds for this
	// middleware; its state changes reach Observer and Breaker.Observer.
	Breaker *BreakerConfig
	// SharedBreaker, instead of Breaker, is a breaker built with NewBreaker
	// and shared with other middlewares, which then share its state. Its
	// state changes reach the observer it was built with, not Observer.
	SharedBreaker *Breaker
	Hedge         *HedgeConfig
}

// DefaultConfig returns the recommended set: fallback to the static
// messages, 2-minute total and 1-minute attempt timeouts, 3 attempts with
// backoff (500 ms base, 30 s cap, 20% jitter) and a breaker that opens after
// 5 consecutive failures for 60 s, which New builds, reporting to
// Config.Observer. Limits and hedging are left for the caller to size.
func DefaultConfig() Config {
	return Config{
		Fallback: &FallbackConfig{},
		Timeout:  TimeoutConfig{Total: 2 * time.Minute, Attempt: time.Minute},
		Retry:    &RetryConfig{},
		Breaker:  &BreakerConfig{},
	}
}

// New builds the policies cfg selects, once, and returns them as one
// middleware: an llm.Chain of the policy middlewares in Config's order. It
// returns an error for an invalid config and never panics on a request.
func New(cfg Config) (llm.Middleware, error) {
	if cfg.Breaker != nil && cfg.SharedBreaker != nil {
		return nil, errf("set Breaker or SharedBreaker, not both")
	}
	obs := func(own llm.Observer) llm.Observer { return llm.MultiObserver(cfg.Observer, own) }
	var mws []llm.Middleware
	err := cfg.Timeout.validate()
	add := func(mw llm.Middleware, e error) {
		if err == nil {
			mws, err = append(mws, mw), e
		}
	}
	var fb *fallback
	if c := cfg.Fallback; c != nil && err == nil {
		fb, err = newFallback(*c, obs(c.Observer))
	}
	// The total timeout is a budget, without a timer, when an attempt
	// timeout enforces it and nothing but Retry waits between the two.
	budgeted := cfg.Timeout.Attempt > 0 && cfg.RateLimit == nil && cfg.Limit == nil && cfg.Bulkhead == nil && cfg.AdaptiveLimit == nil
	add(totalTimeout(cfg.Timeout.Total, budgeted), nil)
	if c := cfg.RateLimit; c != nil {
		add(newRateLimit(*c, obs(c.Observer)))
	}
	if cfg.Limit != nil {
		add(cfg.Limit, nil)
	}
	if c := cfg.Bulkhead; c != nil {
		add(newBulkhead(*c, obs(c.Observer)))
	}
	if c := cfg.AdaptiveLimit; c != nil {
		add(newAdaptiveLimit(*c, obs(c.Observer)))
	}
	rc := cfg.Retry
	if rc == nil {
		rc = &RetryConfig{MaxAttempts: 1}
	}
	add(newRetry(*rc, obs(rc.Observer)))
	if c := cfg.Breaker; c != nil {
		bc := *c
		bc.Observer = obs(c.Observer)
		_, mw, e := CircuitBreaker(bc)
		add(mw, e)
	} else if cfg.SharedBreaker != nil {
		add(cfg.SharedBreaker.Middleware(), nil)
	}
	add(attemptTimeout(cfg.Timeout), nil)
	if c := cfg.Hedge; c != nil {
		add(newHedge(*c, obs(c.Observer)))
	}
	if err != nil {
		return nil, err
	}
	inner := llm.Chain(nil, mws...)
	if cfg.Fallback == nil {
		return inner, nil
	}
	// Model fallbacks go to the wrapped client: the retries and the breaker
	// are the primary model's.
	return func(next llm.Client) llm.Client { return fb.wrap(inner(next), next) }, nil
}

// policyFunc adapts one policy's call to an llm.Client. Every error that
// leaves it has passed through llm.RedactError: a wrapped ClientFunc may
// return foreign errors (a *url.Error naming a ?key=… URL, say).
type policyFunc func(ctx context.Context, req *llm.Request) (*llm.Response, error)

func (f policyFunc) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	resp, err := f(ctx, req)
	return resp, llm.RedactError(err)
}

// tally counts the provider attempts of one call. The outermost policy
// that needs it puts it on the call's context and the inner ones share it,
// so that each attempt is reported once with its number in the call (by
// Hedge when one runs, else by Retry) and the answer's Attempts counts all.
type tally struct {
	context.Context
	n      atomic.Int32
	hedged atomic.Bool // a Hedge reports the attempts
}

type tallyKey struct{}

func (t *tally) Value(key any) any {
	if key == (tallyKey{}) {
		return t
	}
	return t.Context.Value(key)
}

func withTally(ctx context.Context) (context.Context, *tally) {
	if t, ok := ctx.Value(tallyKey{}).(*tally); ok {
		return ctx, t
	}
	t := &tally{Context: ctx}
	return t, t
}

// stamp records the attempt count on a copy of the answer, which may be
// shared; one attempt is not recorded (Attempts 0 means one).
func (t *tally) stamp(resp *llm.Response) *llm.Response {
	n := max(int(t.n.Load()), resp.Attempts) // an inner client (a router) may have made more
	if resp.Attempts == n || n <= 1 && resp.Attempts == 0 {
		return resp
	}
	r := resp.Clone()
	r.Attempts = n
	return r
}

// tracker watches the caller's Stream callback: once a chunk reached the
// caller, nothing may be retried, hedged or replaced.
type tracker struct{ sent atomic.Bool }

// track returns req with its Stream callback watched, on a copy; req itself
// and a nil tracker when it does not stream.
func track(req *llm.Request) (*llm.Request, *tracker) {
	if req.Stream == nil {
		return req, nil
	}
	t, orig := &tracker{}, req.Stream
	req = req.Clone()
	req.Stream = func(ch llm.Chunk) error { t.sent.Store(true); return orig(ch) }
	return req, t
}

func (t *tracker) delivered() bool { return t != nil && t.sent.Load() }

// The causes of the contexts this package bounds, and the failure a panic
// in the wrapped client counts as.
var (
	errTotalTimeout      = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: "total timeout"}
	errAttemptTimeout    = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: "attempt timeout"}
	errFirstChunkTimeout = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: "no first chunk in time"}
	errIdleTimeout       = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: "stream idle too long"}
	errPanic             = &llm.Error{Kind: llm.KindUnavailable, Provider: provider, Message: "the wrapped client panicked"}
)

// gone reports whether the caller ended ctx, rather than a timeout of
// ours: the outcome then says nothing about the provider.
func gone(ctx context.Context) bool {
	e, ours := context.Cause(ctx).(*llm.Error)
	return ctx.Err() != nil && !(ours && e.Provider == provider)
}

// final is what the caller sees of err once ctx ended: its own
// cancellation as such, unless part of an answer already reached it. A
// budget that passed (see totalTimeout) ends ctx as the total timeout's
// timer would have.
func final(ctx context.Context, err error, delivered bool) error {
	if k := llm.KindOf(err); delivered || k == llm.KindCanceled || k == llm.KindTimeout {
		return err
	}
	if ctx.Err() != nil {
		return llm.FromContext(ctx, provider)
	}
	if overdue(ctx) {
		return &llm.Error{Kind: llm.KindTimeout, Provider: provider, Err: errTotalTimeout}
	}
	return err
}

// refused reports whether err is a refusal by a policy of ours: the call
// never reached the provider.
func refused(err error) bool {
	var e *llm.Error
	return errors.As(err, &e) && e.Provider == provider &&
		(e.Kind == llm.KindCircuitOpen || e.Kind == llm.KindRateLimited || e.Kind == llm.KindOverloaded)
}

// reject reports a refusal and returns its error.
func reject(ctx context.Context, obs llm.Observer, req *llm.Request, reason string, err error) error {
	llm.EmitTo(ctx, obs, llm.Event{Kind: llm.EventRejected, Request: req, Reason: reason, Err: err})
	return err
}
