package resilience

import (
	"cmp"
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/llmkit/llmkit/internal/clock"
	"github.com/llmkit/llmkit/llm"
)

// RetryConfig tunes retries. Zero fields take the defaults.
type RetryConfig struct {
	MaxAttempts int           // the first attempt included; default 3
	BaseDelay   time.Duration // the first wait, doubled after each attempt; default 500 ms
	MaxDelay    time.Duration // caps every wait, Retry-After included; default 30 s
	Jitter      float64       // spreads each wait uniformly over ±Jitter of itself; default 0.2
	NoJitter    bool          // no jitter, for exact, reproducible waits
	// MaxAttemptsPerKind caps the attempts that may end in a given kind,
	// such as {llm.KindRateLimited: 2}; other kinds have MaxAttempts.
	MaxAttemptsPerKind map[llm.Kind]int
	Retryable          func(error) bool // which errors are retried; default llm.Retryable
	Observer           llm.Observer     // hears each attempt (EventAttempt) and retry (EventRetry)
}

func (r *RetryConfig) withDefaults() (RetryConfig, error) {
	c := *r
	setDefault(&c.MaxAttempts, 3)
	setDefault(&c.BaseDelay, 500*time.Millisecond)
	setDefault(&c.MaxDelay, 30*time.Second)
	if c.NoJitter {
		c.Jitter = 0
	} else {
		setDefault(&c.Jitter, 0.2)
	}
	if c.Retryable == nil {
		c.Retryable = llm.Retryable
	}
	c.MaxAttemptsPerKind = maps.Clone(c.MaxAttemptsPerKind)
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 || c.BaseDelay < 0 || c.MaxDelay < c.BaseDelay || c.Jitter < 0 || c.Jitter >= 1 ||
		slices.ContainsFunc(slices.Collect(maps.Values(c.MaxAttemptsPerKind)), func(n int) bool { return n < 1 }) {
		return c, errf("Retry needs MaxAttempts in [1, 100] (≥ 1 per kind), 0 ≤ BaseDelay ≤ MaxDelay, Jitter in [0, 1)")
	}
	return c, nil
}

// Retry returns the retry policy alone: exponential backoff with jitter,
// Retry-After honoured and capped, every wait cancellable, none that would
// outlive the deadline, no retry once a chunk reached the caller. A nil cfg
// takes the defaults. It is a plain loop, not failsafe-go's retry policy:
// each decision is about the call (its stream, deadline and kinds so far).
func Retry(cfg *RetryConfig) (llm.Middleware, error) {
	if cfg == nil {
		cfg = &RetryConfig{}
	}
	return newRetry(*cfg, cfg.Observer)
}

func newRetry(c RetryConfig, obs llm.Observer) (llm.Middleware, error) {
	r, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	r.Observer = obs
	return func(next llm.Client) llm.Client {
		return policyFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			return r.run(ctx, req, next)
		})
	}, nil
}

func (r *RetryConfig) run(ctx context.Context, orig *llm.Request, next llm.Client) (*llm.Response, error) {
	ctx, t := withTally(ctx)
	req, tr := track(orig)
	var perKind [16]uint8
	for n := 1; ; n++ {
		timed := r.Observer != nil || llm.Observed(ctx)
		var t0 time.Duration
		if timed {
			t0 = clock.Mono()
		}
		resp, err := next.Generate(ctx, req)
		// A Hedge inside reports its own attempts; a refused call is none.
		if !t.hedged.Load() && (err == nil || !refused(err)) {
			if a := t.n.Add(1); timed {
				llm.EmitTo(ctx, r.Observer, llm.Event{Kind: llm.EventAttempt, Request: orig, Attempt: int(a), Duration: clock.Mono() - t0, Err: err})
			}
		}
		if err == nil {
			return t.stamp(resp), nil
		}
		d, again := r.decide(ctx, n, err, tr, &perKind)
		if !again {
			return nil, final(ctx, err, tr.delivered())
		}
		llm.EmitTo(ctx, r.Observer, llm.Event{Kind: llm.EventRetry, Request: orig, Attempt: int(t.n.Load()), Delay: d, Err: err})
		if llm.Sleep(ctx, d) != nil {
			return nil, llm.FromContext(ctx, provider)
		}
	}
}

// decide says whether attempt n's failure is retried, and after what wait.
func (r *RetryConfig) decide(ctx context.Context, n int, err error, tr *tracker, perKind *[16]uint8) (time.Duration, bool) {
	if n >= r.MaxAttempts || tr.delivered() || ctx.Err() != nil || !r.Retryable(err) {
		return 0, false
	}
	if k := llm.KindOf(err); int(k) < len(perKind) {
		perKind[k]++
		if limit, ok := r.MaxAttemptsPerKind[k]; ok && int(perKind[k]) >= limit {
			return 0, false
		}
	}
	d := backoff(r, n, err, rand.Float64())
	if dl, ok := deadline(ctx); ok && !time.Now().Add(d).Before(dl) {
		return 0, false // the wait would outlive the deadline: fail now
	}
	return d, true
}

// Backoff returns how long Retry waits after attempt n (1 for the first)
// failed with err: BaseDelay doubled per attempt, spread by Jitter, raised
// to the error's Retry-After, capped at MaxDelay, with r's defaults filled
// in. It is for code that retries later by itself, a job queue that
// reschedules a failed job, say, with the same waits as Retry. An invalid
// r (see New) waits its MaxDelay, or the default 30 s.
func (r *RetryConfig) Backoff(n int, err error) time.Duration {
	if c, verr := r.withDefaults(); verr == nil {
		return backoff(&c, n, err, rand.Float64())
	}
	return cmp.Or(max(r.MaxDelay, 0), 30*time.Second)
}

// backoff computes Backoff for a valid r, u uniform in [0, 1), in constant
// time and within [0, MaxDelay] for every n: the doubling is checked
// against MaxDelay before it is made, so it cannot overflow.
func backoff(r *RetryConfig, n int, err error, u float64) time.Duration {
	d := r.MaxDelay
	if s := max(n, 1) - 1; s < 63 && r.BaseDelay <= r.MaxDelay>>s {
		d = r.BaseDelay << s
	}
	if f := float64(d) * (1 + r.Jitter*(2*u-1)); r.Jitter > 0 && f < float64(r.MaxDelay) {
		d = time.Duration(f)
	} else if r.Jitter > 0 {
		d = r.MaxDelay
	}
	return min(max(d, llm.RetryAfterOf(err), 0), r.MaxDelay)
}
