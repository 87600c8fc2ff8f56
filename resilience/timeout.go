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
	return llm.Chain(totalTimeout(cfg.Total), attemptTimeout(cfg)), nil
}

func totalTimeout(d time.Duration) llm.Middleware { return bounds(d, errTotalTimeout, TimeoutConfig{}) }

func attemptTimeout(c TimeoutConfig) llm.Middleware { return bounds(c.Attempt, errAttemptTimeout, c) }

// bounds bounds each call through it by d, with cause, and a stream's
// first chunk and gaps by s's; nil when none is set.
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
			return resp, classify(ctx, bctx, err)
		})
	}
}

func noop() {}

// bound returns ctx with a deadline d from now and its cause, unless d is 0
// or ctx's own deadline comes first: then ctx itself.
func bound(ctx context.Context, d time.Duration, cause error) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); d <= 0 || ok && time.Until(dl) <= d {
		return ctx, noop
	}
	return context.WithTimeoutCause(ctx, d, cause)
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

// classify names the failure of a call whose context we bounded: a bound
// of ours that passed is a timeout, not the caller's cancellation.
func classify(parent, bounded context.Context, err error) error {
	if err == nil || bounded == parent || parent.Err() != nil || bounded.Err() == nil {
		return err
	}
	cause, ok := context.Cause(bounded).(*llm.Error)
	if e, mine := err.(*llm.Error); !ok || cause.Provider != provider || mine && e.Provider == provider && errors.Is(e, cause) {
		return err // not a bound of ours, or already named
	}
	return &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: cause.Message, Err: err}
}
