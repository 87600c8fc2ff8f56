package resilience

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/llmkit/llmkit/internal/clock"
	"github.com/llmkit/llmkit/llm"
)

func errf(msg string) error { return errors.New("resilience: " + msg) }

// engine holds every policy, built once by New and shared by every client
// the middleware wraps.
type engine struct {
	fb     *FallbackConfig
	to     TimeoutConfig
	rl     *rateLimit
	bh     *bulk
	al     *adaptive
	retry  *RetryConfig
	br     *Breaker
	hedge  *hedger
	budget budgetPermits
	// retryExec is the single failsafe-go executor: the retry loop that
	// runs once the first attempt failed with a retryable error.
	retryExec failsafe.Executor[*llm.Response]
	streamTO  bool
}

// New builds the policies cfg selects, once, and returns them as one
// middleware. It returns an error for an invalid config and never panics on
// a request. See Config for the order.
func New(cfg Config) (llm.Middleware, error) {
	e := &engine{to: cfg.Timeout}
	if err := cfg.Timeout.validate(); err != nil {
		return nil, err
	}
	e.streamTO = cfg.Timeout.FirstChunk > 0 || cfg.Timeout.Idle > 0
	if cfg.Fallback != nil {
		fb := cfg.Fallback.withDefaults()
		for _, c := range fb.Clients {
			if c == nil {
				return nil, errf("Fallback.Clients holds a nil client")
			}
		}
		e.fb = &fb
	}
	var err error
	if cfg.RateLimit != nil {
		if e.rl, err = newRateLimit(*cfg.RateLimit); err != nil {
			return nil, err
		}
	}
	if cfg.Bulkhead != nil {
		if e.bh, err = newBulk(*cfg.Bulkhead); err != nil {
			return nil, err
		}
	}
	if cfg.AdaptiveLimit != nil {
		if e.al, err = newAdaptive(*cfg.AdaptiveLimit); err != nil {
			return nil, err
		}
	}
	if cfg.Budget != nil {
		if e.budget, err = newBudget(*cfg.Budget); err != nil {
			return nil, err
		}
	}
	if cfg.Retry != nil {
		rc, err := cfg.Retry.withDefaults()
		if err != nil {
			return nil, err
		}
		e.retry = &rc
		e.retryExec = failsafe.With[*llm.Response](retrypolicy.NewBuilder[*llm.Response]().
			HandleIf(func(_ *llm.Response, err error) bool { return err != nil }).
			AbortIf(func(_ *llm.Response, err error) bool {
				_, again := err.(*retryMark)
				return !again
			}).
			WithMaxAttempts(rc.MaxAttempts).
			WithDelayFunc(func(exec failsafe.ExecutionAttempt[*llm.Response]) time.Duration {
				if m, ok := exec.LastError().(*retryMark); ok {
					return m.delay
				}
				return 0
			}).
			ReturnLastFailure().
			Build())
	}
	e.br = cfg.Breaker
	if cfg.Hedge != nil {
		if e.hedge, err = newHedger(*cfg.Hedge); err != nil {
			return nil, err
		}
	}
	return func(next llm.Client) llm.Client {
		return &client{engine: e, next: next}
	}, nil
}

// client is what the middleware returns for one wrapped client.
type client struct {
	*engine
	next llm.Client
	obs  llm.Observers // subscribed at construction; see Subscribe
}

// Subscribe subscribes o to the events of this client's policies once
// the wrapped client accepts it too (see llm.Subscriber). With fallback
// clients (FallbackConfig.Clients) it refuses: they are other clients
// whose events only the call's context reaches, and subscribing them too
// could not be undone if one of them refused. (Events from
// FallbackConfig.Stale come from the Cache that serves it, which reports
// them to the observers subscribed through its own middleware.)
func (c *client) Subscribe(o llm.Observer) bool {
	if c.fb != nil && len(c.fb.Clients) > 0 {
		return false
	}
	if !llm.Subscribe(c.next, o) {
		return false
	}
	c.obs.Add(o)
	if c.br != nil {
		c.br.Subscribe(o) // its changes, whichever client's call sees them
	}
	return true
}

var _ llm.Client = (*client)(nil)

// call is one Generate's state. It lives on the caller's stack on the
// success path; the retry path copies it to the heap.
type call struct {
	c        *client
	ctx      context.Context // the caller's
	orig     *llm.Request    // the caller's, read-only
	req      *llm.Request    // what goes downstream (a clone for streams)
	tr       *tracker        // nil unless streaming
	deadline time.Time       // min(caller's deadline, start+Total); zero if none
	ours     bool            // deadline is the total timeout, not the caller's
	start    time.Time       // when the call began, if a timeout needs it
	attempts int             // provider attempts so far
	perKind  [16]uint8
	budgetOn bool // a budget permit is held for the running retry
}

// Generate runs req through the policies.
func (c *client) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if ctx.Err() != nil {
		return nil, llm.FromContext(ctx, provider)
	}
	st := call{c: c, ctx: ctx, orig: req, req: req}
	if req.Stream != nil {
		st.tr = &tracker{orig: req.Stream, idle: c.to.Idle}
		st.req = req.Clone()
		st.req.Stream = st.tr.onChunk
	}
	if dl, ok := ctx.Deadline(); ok {
		st.deadline = dl
	}
	if c.to.Total > 0 || c.to.Attempt > 0 {
		st.start = time.Now()
	}
	if c.to.Total > 0 {
		if t := st.start.Add(c.to.Total); st.deadline.IsZero() || t.Before(st.deadline) {
			st.deadline, st.ours = t, true
		}
	}
	resp, err := c.run(&st)
	if err != nil && c.fb != nil {
		return c.fallback(&st, err)
	}
	return resp, err
}

func (c *client) run(st *call) (resp *llm.Response, err error) {
	if c.rl != nil {
		p, reserved, err := c.rl.acquire(st.ctx, &c.obs, st.orig)
		if err != nil {
			return nil, err
		}
		defer func() { c.rl.settle(p, reserved, resp) }()
	}
	if c.bh != nil {
		if err := c.bh.acquire(st.ctx, &c.obs); err != nil {
			return nil, err
		}
		defer c.bh.bh.ReleasePermit()
	}
	if c.al != nil {
		permit, err := c.al.acquire(st.ctx, &c.obs)
		if err != nil {
			return nil, err
		}
		settled := false
		defer func() {
			switch {
			case settled:
			case st.ctx.Err() != nil:
				permit.Drop()
			default: // a panic: the call failed
				permit.Record()
			}
		}()
		resp, err = c.attempts(st)
		settled = true
		if st.ctx.Err() != nil && err != nil {
			permit.Drop()
		} else {
			permit.Record()
		}
		return resp, err
	}
	return c.attempts(st)
}

func (c *client) attempts(st *call) (*llm.Response, error) {
	if c.budget != nil {
		c.budget.RecordExecution()
		defer c.budget.ReleaseExecution()
	}
	resp, err := st.attempt(1)
	if err == nil {
		return st.finish(resp), nil
	}
	if c.retry == nil {
		return nil, st.final(err)
	}
	d, again := st.shouldRetry(1, err)
	if !again {
		return nil, st.final(err)
	}
	return c.retrying(st, err, d)
}

// retryMark tells the failsafe retry policy to retry after delay.
type retryMark struct {
	err   error
	delay time.Duration
}

func (m *retryMark) Error() string { return m.err.Error() }
func (m *retryMark) Unwrap() error { return m.err }

// retrying hands the call to the failsafe-go executor once the first
// attempt failed: failsafe waits (cancellably) and loops; each attempt
// decides, knowing the deadline and the stream, whether another may follow.
func (c *client) retrying(st *call, firstErr error, d time.Duration) (*llm.Response, error) {
	h := new(call)
	*h = *st
	first := &retryMark{err: firstErr, delay: d}
	resp, err := c.retryExec.WithContext(st.ctx).GetWithExecution(func(exec failsafe.Execution[*llm.Response]) (*llm.Response, error) {
		n := exec.Attempts()
		if n == 1 {
			return nil, first
		}
		resp, err := h.attempt(n)
		h.releaseBudget()
		if err == nil {
			return resp, nil
		}
		if d, again := h.shouldRetry(n, err); again {
			return nil, &retryMark{err: err, delay: d}
		}
		return nil, err
	})
	h.releaseBudget()
	st.attempts = h.attempts
	if err == nil && resp != nil {
		return st.finish(resp), nil
	}
	var m *retryMark
	if errors.As(err, &m) {
		err = m.err
	}
	return nil, st.final(err)
}

func (st *call) releaseBudget() {
	if st.budgetOn {
		st.budgetOn = false
		st.c.budget.ReleasePermit()
	}
}

// shouldRetry decides whether attempt n's failure is retried, and after
// what delay; it reports the retry (or the budget's refusal).
func (st *call) shouldRetry(n int, err error) (time.Duration, bool) {
	r := st.c.retry
	if n >= r.MaxAttempts || st.tr.delivered() || st.ctx.Err() != nil || !r.Retryable(err) {
		return 0, false
	}
	k := llm.KindOf(err)
	if int(k) < len(st.perKind) {
		st.perKind[k]++
		if lim, ok := r.MaxAttemptsPerKind[k]; ok && int(st.perKind[k]) >= lim {
			return 0, false
		}
	}
	d := backoff(r, n, err, rand.Float64())
	if !st.deadline.IsZero() && !time.Now().Add(d).Before(st.deadline) {
		return 0, false // the wait would outlive the deadline: fail now
	}
	if b := st.c.budget; b != nil {
		if !b.TryAcquirePermit() {
			reject(st.ctx, &st.c.obs, "budget", err)
			return 0, false
		}
		st.budgetOn = true
	}
	st.c.obs.Emit(st.ctx, llm.Event{Kind: llm.EventRetry, Request: st.orig, Attempt: n, Delay: d, Err: err})
	return d, true
}

// backoff returns the wait after attempt n failed with err: BaseDelay
// doubled per attempt, spread by ±Jitter (u is uniform in [0, 1)), raised
// to the provider's Retry-After, all capped at MaxDelay.
// Backoff returns how long Retry waits after attempt n (1 for the first)
// failed with err: BaseDelay doubled per attempt, spread by Jitter, raised
// to the error's Retry-After, capped at MaxDelay, with c's defaults filled
// in. It is for code that retries later by itself, a job queue that
// reschedules a failed job, say, with the same waits as Retry. An invalid
// c (see New) waits its MaxDelay, or the default 30 s.
func (c *RetryConfig) Backoff(n int, err error) time.Duration {
	r, verr := c.withDefaults()
	if verr != nil {
		return max(c.MaxDelay, 30*time.Second)
	}
	return backoff(&r, n, err, rand.Float64())
}

func backoff(r *RetryConfig, n int, err error, u float64) time.Duration {
	d := r.BaseDelay
	for i := 1; i < n && d < r.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, r.MaxDelay)
	if r.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + r.Jitter*(2*u-1)))
	}
	if ra := llm.RetryAfterOf(err); ra > d {
		d = ra
	}
	return min(d, r.MaxDelay)
}

// final turns an error into what the caller sees: the caller's own
// cancellation as such.
func (st *call) final(err error) error {
	if st.ctx.Err() != nil && !st.tr.delivered() {
		var le *llm.Error
		if !errors.As(err, &le) || le.Kind != llm.KindCanceled && le.Kind != llm.KindTimeout {
			return llm.FromContext(st.ctx, provider)
		}
	}
	return err
}

// finish records the attempt count on the answer, on a copy: the answer
// may be shared (a cache, a fake). A single attempt is not recorded
// (llm.Response.Attempts 0 means one), which spares the copy on the
// common path.
func (st *call) finish(resp *llm.Response) *llm.Response {
	if resp.Attempts == st.attempts || st.attempts <= 1 && resp.Attempts == 0 {
		return resp
	}
	r := resp.Clone()
	r.Attempts = st.attempts
	return r
}

var (
	errAttemptTimeout    = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: "attempt timeout"}
	errTotalTimeout      = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: "total timeout"}
	errFirstChunkTimeout = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: "no first chunk in time"}
	errIdleTimeout       = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: "stream idle too long"}
)

// attempt is one provider attempt behind the breaker and the attempt
// timeout (a hedged group counts as one).
func (st *call) attempt(n int) (resp *llm.Response, err error) {
	c := st.c
	probe, recorded := false, false
	if c.br != nil {
		var ok bool
		if ok, probe = c.br.acquire(st.ctx); !ok {
			return nil, c.br.openError()
		}
		// A panic below skips the record: charge it here and let it go on.
		defer func() {
			if !recorded {
				c.br.record(st.ctx, errPanic, false, probe)
			}
		}()
	}
	actx := st.ctx
	if c.to.Attempt > 0 || st.ours {
		dl, cause := st.deadline, error(errTotalTimeout)
		if c.to.Attempt > 0 {
			now := st.start
			if n > 1 {
				now = time.Now()
			}
			if t := now.Add(c.to.Attempt); dl.IsZero() || t.Before(dl) {
				dl, cause = t, errAttemptTimeout
			}
		}
		if cause == errAttemptTimeout || st.ours {
			var cancel context.CancelFunc
			actx, cancel = context.WithDeadlineCause(st.ctx, dl, cause)
			defer cancel()
		}
	}
	if st.tr != nil && c.streamTO {
		var stop func()
		actx, stop = st.tr.arm(actx, c.to.FirstChunk)
		defer stop()
	}
	if c.hedge != nil {
		resp, err = st.hedged(actx)
	} else {
		resp, err = st.once(actx, st.req)
	}
	if err != nil {
		err = st.classify(actx, err)
	}
	if c.br != nil {
		recorded = true
		c.br.record(st.ctx, err, st.ctx.Err() != nil, probe)
	}
	return resp, err
}

var errPanic = &llm.Error{Kind: llm.KindUnavailable, Provider: provider, Message: "the wrapped client panicked"}

// once calls the wrapped client and reports the attempt.
func (st *call) once(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	st.attempts++
	n := st.attempts
	if !st.c.obs.Observed(st.ctx) {
		return st.c.next.Generate(ctx, req)
	}
	t0 := clock.Mono()
	resp, err := st.c.next.Generate(ctx, req)
	st.c.obs.Emit(st.ctx, llm.Event{Kind: llm.EventAttempt, Request: st.orig, Attempt: n, Duration: clock.Mono() - t0, Err: err})
	return resp, err
}

// classify names the failure of an attempt whose context this package
// bounded: a deadline of ours is a timeout, never the caller's cancel.
func (st *call) classify(actx context.Context, err error) error {
	if st.ctx.Err() != nil || actx == st.ctx || actx.Err() == nil {
		return err
	}
	cause := context.Cause(actx)
	var le *llm.Error
	if !errors.As(cause, &le) || le.Provider != provider {
		return err
	}
	return &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: le.Message, Err: err}
}
