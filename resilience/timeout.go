package resilience

import (
	"cmp"
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// TimeoutConfig bounds time. A zero field leaves that bound out. A caller's
// own deadline that is sooner always wins and costs nothing extra.
type TimeoutConfig struct {
	Total      time.Duration // the whole call, retries and backoffs included
	Attempt    time.Duration // each attempt (a hedged group counts as one)
	FirstChunk time.Duration // a stream's wait for its first chunk
	Idle       time.Duration // the gap between chunks (and the first wait, without FirstChunk)
}

func (t TimeoutConfig) validate() error {
	if min(t.Total, t.Attempt, t.FirstChunk, t.Idle) < 0 {
		return errf("timeouts must not be negative")
	}
	return nil
}

// Timeout returns the timeouts alone: total, then per attempt, first chunk
// and stream idle. A bound that passed is an error of kind timeout; the
// caller's own cancellation stays canceled.
func Timeout(cfg TimeoutConfig) (llm.Middleware, error) {
	if err := cfg.validate(); err != nil || cfg == (TimeoutConfig{}) {
		return nil, cmp.Or(err, errf("Timeout needs at least one bound"))
	}
	return llm.Chain(totalTimeout(cfg.Total, cfg.Attempt > 0), attemptTimeout(cfg)), nil
}

// totalTimeout bounds the whole call by d. With a per-attempt timeout
// inside it and nothing between that waits but Retry (which never waits
// past the deadline), the total needs no timer of its own: it is a budget,
// a deadline on the context that the attempt timeout and Retry honour, and
// an attempt's timer fires at whichever of the two bounds comes first.
func totalTimeout(d time.Duration, budgeted bool) llm.Middleware {
	if !budgeted || d <= 0 {
		return bounds(d, errTotalTimeout, TimeoutConfig{})
	}
	return func(next llm.Client) llm.Client {
		return policyFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			dl := time.Now().Add(d)
			if pdl, ok := deadline(ctx); ok && !pdl.After(dl) {
				return next.Generate(ctx, req)
			}
			resp, err := next.Generate(&budget{Context: ctx, deadline: dl}, req)
			if err != nil && ctx.Err() == nil && !time.Now().Before(dl) {
				err = name(err, errTotalTimeout)
			}
			return resp, err
		})
	}
}

func attemptTimeout(c TimeoutConfig) llm.Middleware { return bounds(c.Attempt, errAttemptTimeout, c) }

// budget is a total timeout without a timer: its deadline, found with
// deadline, bounds each attempt and each wait between attempts. Its
// context's own Deadline and Done are the caller's.
type budget struct {
	context.Context
	deadline time.Time
}

type budgetKey struct{}

func (b *budget) Value(key any) any {
	if key == (budgetKey{}) {
		return b
	}
	return b.Context.Value(key)
}

// deadline returns the sooner of ctx's deadline and its budget's.
func deadline(ctx context.Context) (time.Time, bool) {
	dl, ok := ctx.Deadline()
	if b, in := ctx.Value(budgetKey{}).(*budget); in && (!ok || b.deadline.Before(dl)) {
		return b.deadline, true
	}
	return dl, ok
}

// overdue reports whether ctx's budget has passed.
func overdue(ctx context.Context) bool {
	b, ok := ctx.Value(budgetKey{}).(*budget)
	return ok && !time.Now().Before(b.deadline)
}

// bounds bounds each call through it by d, with cause, and a stream's
// first chunk and gaps by s's; nil when none is set. A budget on the
// context bounds the call too, with errTotalTimeout, when it comes first.
func bounds(d time.Duration, cause error, s TimeoutConfig) llm.Middleware {
	if d <= 0 && s.FirstChunk <= 0 && s.Idle <= 0 {
		return nil
	}
	return func(next llm.Client) llm.Client {
		return policyFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			bctx, cancel := bound(ctx, d, cause)
			defer cancel()
			if req.Stream != nil && (s.FirstChunk > 0 || s.Idle > 0) {
				var stop func()
				bctx, req, stop = s.watch(bctx, req)
				defer stop()
			}
			resp, err := next.Generate(bctx, req)
			return resp, classify(ctx, bctx, err, cause)
		})
	}
}

func noop() {}

// bound returns ctx with a deadline d from now and its cause, or its
// budget's deadline with errTotalTimeout when that is sooner, unless
// neither is set or ctx's own deadline comes first: then ctx itself. The
// deadline is computed once, from one reading of the clock.
func bound(ctx context.Context, d time.Duration, cause error) (context.Context, context.CancelFunc) {
	var dl time.Time
	if d > 0 {
		dl = time.Now().Add(d)
	}
	if b, ok := ctx.Value(budgetKey{}).(*budget); ok && (d <= 0 || !b.deadline.After(dl)) {
		dl, cause = b.deadline, errTotalTimeout
	}
	if pdl, ok := ctx.Deadline(); dl.IsZero() || ok && !pdl.After(dl) {
		return ctx, noop
	}
	return context.WithDeadlineCause(ctx, dl, cause)
}

// watch bounds the wait for a stream's first chunk and the gaps between
// chunks: a timer, reset by each chunk, cancels the attempt with the cause
// that says which bound passed. stop releases the timer.
func (c TimeoutConfig) watch(ctx context.Context, req *llm.Request) (context.Context, *llm.Request, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	var sent atomic.Bool
	timer := time.AfterFunc(cmp.Or(c.FirstChunk, c.Idle), func() {
		if sent.Load() || c.FirstChunk <= 0 {
			cancel(errIdleTimeout)
		} else {
			cancel(errFirstChunkTimeout)
		}
	})
	orig := req.Stream
	req = req.Clone()
	req.Stream = func(ch llm.Chunk) error {
		sent.Store(true)
		if c.Idle > 0 {
			timer.Reset(c.Idle)
		} else {
			timer.Stop()
		}
		return orig(ch)
	}
	return ctx, req, func() { timer.Stop(); cancel(nil) }
}

// classify names the failure of a call whose context we bounded by own:
// a bound of ours that passed is a timeout, not the caller's cancellation.
// The total timeout is named by its own layer, never by an inner one.
func classify(parent, bounded context.Context, err, own error) error {
	if err == nil || bounded == parent || parent.Err() != nil || bounded.Err() == nil {
		return err
	}
	cause, ok := context.Cause(bounded).(*llm.Error)
	if !ok || cause.Provider != provider || cause == errTotalTimeout && own != errTotalTimeout {
		return err // not a bound of ours, or not this layer's to name
	}
	return name(err, cause)
}

// name returns err as the timeout cause, unless it already is.
func name(err error, cause *llm.Error) error {
	if e, mine := err.(*llm.Error); mine && e.Provider == provider && errors.Is(e, cause) {
		return err
	}
	return &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: cause.Message, Err: err}
}
