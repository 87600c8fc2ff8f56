package resilience

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/ratelimiter"

	"github.com/llmkit/llmkit/llm"
)

const provider = "resilience"

// rateLimit holds failsafe-go rate limiters, one shared or one per tenant.
type rateLimit struct {
	cfg        RateLimitConfig
	shared     *limiterPair
	tenants    sync.Map // tenant → *limiterPair
	nTenants   atomic.Int64
	retryAfter time.Duration
}

// limiterPair limits requests and, optionally, tokens. credit holds tokens
// reserved but not used, which the next reservations draw on first:
// failsafe-go's limiter has no way to give permits back.
type limiterPair struct {
	req, tok ratelimiter.RateLimiter[*llm.Response]
	credit   atomic.Int64
}

func newRateLimit(c RateLimitConfig) (*rateLimit, error) {
	if c.Requests == 0 {
		return nil, errf("RateLimit.Requests must be > 0")
	}
	if c.Period == 0 {
		c.Period = time.Second
	}
	if c.Period < 0 || c.MaxWait < 0 || c.MaxTenants < 0 || c.DefaultMaxTokens < 0 {
		return nil, errf("RateLimit durations and sizes must not be negative")
	}
	if c.DefaultMaxTokens == 0 {
		c.DefaultMaxTokens = 1024
	}
	if c.MaxTenants == 0 {
		c.MaxTenants = 10000
	}
	r := &rateLimit{cfg: c, retryAfter: c.Period / time.Duration(c.Requests)}
	if c.Bursty {
		r.retryAfter = c.Period
	}
	r.shared = r.newPair()
	return r, nil
}

func (r *rateLimit) newPair() *limiterPair {
	p := &limiterPair{}
	if r.cfg.Bursty {
		p.req = ratelimiter.NewBursty[*llm.Response](r.cfg.Requests, r.cfg.Period)
	} else {
		p.req = ratelimiter.NewSmooth[*llm.Response](r.cfg.Requests, r.cfg.Period)
	}
	if r.cfg.TokensPerMinute > 0 {
		p.tok = ratelimiter.NewBursty[*llm.Response](r.cfg.TokensPerMinute, time.Minute)
	}
	return p
}

func (r *rateLimit) pairFor(tenant string) *limiterPair {
	if !r.cfg.PerTenant || tenant == "" {
		return r.shared
	}
	if p, ok := r.tenants.Load(tenant); ok {
		return p.(*limiterPair)
	}
	if r.nTenants.Load() >= int64(r.cfg.MaxTenants) {
		return r.shared
	}
	p, loaded := r.tenants.LoadOrStore(tenant, r.newPair())
	if !loaded {
		r.nTenants.Add(1)
	}
	return p.(*limiterPair)
}

// acquire takes one request permit and, with a token limit, the request's
// estimated tokens. It returns the pair and the tokens reserved.
func (r *rateLimit) acquire(ctx context.Context, obs *llm.Observers, req *llm.Request) (*limiterPair, int, error) {
	p := r.pairFor(req.Tenant)
	if err := r.take(ctx, obs, p.req, 1); err != nil {
		return nil, 0, err
	}
	if p.tok == nil {
		return p, 0, nil
	}
	maxTok := req.MaxTokens
	if maxTok <= 0 {
		maxTok = r.cfg.DefaultMaxTokens
	}
	need := req.EstimateInputTokens() + maxTok
	fromCredit := 0
	for {
		c := p.credit.Load()
		if c <= 0 {
			break
		}
		use := min(c, int64(need))
		if p.credit.CompareAndSwap(c, c-use) {
			fromCredit = int(use)
			break
		}
	}
	if rest := need - fromCredit; rest > 0 {
		if err := r.take(ctx, obs, p.tok, uint(rest)); err != nil {
			p.credit.Add(int64(fromCredit))
			return nil, 0, err
		}
	}
	return p, need, nil
}

// settle reconciles the reservation with the tokens actually used: unused
// tokens become credit (capped at a minute's worth), extra ones are taken
// as debt that later calls wait for.
func (r *rateLimit) settle(p *limiterPair, reserved int, resp *llm.Response) {
	if p == nil || p.tok == nil {
		return
	}
	used := 0
	if resp != nil {
		used = resp.Usage.Total()
	}
	switch {
	case used < reserved:
		if c := p.credit.Add(int64(reserved - used)); c > int64(r.cfg.TokensPerMinute) {
			p.credit.Store(int64(r.cfg.TokensPerMinute))
		}
	case used > reserved:
		p.tok.ReservePermits(uint(used - reserved))
	}
}

func (r *rateLimit) take(ctx context.Context, obs *llm.Observers, lim ratelimiter.RateLimiter[*llm.Response], n uint) error {
	if r.cfg.MaxWait == 0 {
		if lim.TryAcquirePermits(n) {
			return nil
		}
		return reject(ctx, obs, "rate_limit", &llm.Error{Kind: llm.KindRateLimited, Provider: provider,
			Message: "local rate limit reached", RetryAfter: r.retryAfter})
	}
	d := lim.TryReservePermits(n, r.cfg.MaxWait)
	if d < 0 {
		return reject(ctx, obs, "rate_limit", &llm.Error{Kind: llm.KindRateLimited, Provider: provider,
			Message: "local rate limit reached", RetryAfter: r.cfg.MaxWait})
	}
	return sleep(ctx, d)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if llm.Sleep(ctx, d) != nil {
		return llm.FromContext(ctx, provider)
	}
	return nil
}

func reject(ctx context.Context, obs *llm.Observers, reason string, err error) error {
	obs.Emit(ctx, llm.Event{Kind: llm.EventRejected, Reason: reason, Err: err})
	return err
}

type bulk struct {
	bh   bulkhead.Bulkhead[*llm.Response]
	wait time.Duration
}

func newBulk(c BulkheadConfig) (*bulk, error) {
	if c.MaxConcurrent == 0 {
		return nil, errf("Bulkhead.MaxConcurrent must be > 0")
	}
	if c.MaxWait < 0 {
		return nil, errf("Bulkhead.MaxWait must not be negative")
	}
	return &bulk{bh: bulkhead.New[*llm.Response](c.MaxConcurrent), wait: c.MaxWait}, nil
}

func (b *bulk) acquire(ctx context.Context, obs *llm.Observers) error {
	if b.bh.TryAcquirePermit() {
		return nil
	}
	if b.wait > 0 {
		err := b.bh.AcquirePermitWithMaxWait(ctx, b.wait)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return llm.FromContext(ctx, provider)
		}
	}
	return reject(ctx, obs, "bulkhead", &llm.Error{Kind: llm.KindOverloaded, Provider: provider, Message: "bulkhead full"})
}

type adaptive struct {
	al   adaptivelimiter.AdaptiveLimiter[*llm.Response]
	wait time.Duration
}

func newAdaptive(c AdaptiveLimitConfig) (*adaptive, error) {
	if c.MaxWait < 0 {
		return nil, errf("AdaptiveLimit.MaxWait must not be negative")
	}
	b := adaptivelimiter.NewBuilder[*llm.Response]()
	if c.MinLimit > 0 || c.MaxLimit > 0 || c.InitialLimit > 0 {
		mn, mx, in := max(c.MinLimit, 1), c.MaxLimit, c.InitialLimit
		if mx == 0 {
			mx = max(200, mn)
		}
		if in == 0 {
			in = min(max(20, mn), mx)
		}
		if mn > mx || in < mn || in > mx {
			return nil, errf("AdaptiveLimit limits must satisfy Min ≤ Initial ≤ Max")
		}
		b = b.WithLimits(mn, mx, in)
	}
	if c.MaxWait > 0 {
		b = b.WithQueueing(2, 3).WithMaxWaitTime(c.MaxWait)
	}
	return &adaptive{al: b.Build(), wait: c.MaxWait}, nil
}

func (a *adaptive) acquire(ctx context.Context, obs *llm.Observers) (adaptivelimiter.Permit, error) {
	if p, ok := a.al.TryAcquirePermit(); ok {
		return p, nil
	}
	if a.wait > 0 {
		p, err := a.al.AcquirePermitWithMaxWait(ctx, a.wait)
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return nil, llm.FromContext(ctx, provider)
		}
	}
	return nil, reject(ctx, obs, "adaptive_limit", &llm.Error{Kind: llm.KindOverloaded, Provider: provider, Message: "adaptive concurrency limit reached"})
}

// budgetPermits is the part of failsafe-go's budget its retry and hedge
// executors use; the budget implements it although budget.Budget does not
// list it.
type budgetPermits interface {
	budget.Budget
	RecordExecution()
	ReleaseExecution()
	TryAcquirePermit() bool
	ReleasePermit()
}

func newBudget(c BudgetConfig) (budgetPermits, error) {
	b := budget.NewBuilder()
	if c.MaxRate < 0 || c.MaxRate > 1 {
		return nil, errf("Budget.MaxRate out of [0, 1]")
	}
	if c.MaxRate > 0 {
		b = b.WithMaxRate(c.MaxRate)
	}
	if c.MinConcurrency > 0 {
		b = b.WithMinConcurrency(c.MinConcurrency)
	}
	bp, ok := b.Build().(budgetPermits)
	if !ok {
		return nil, errf("failsafe-go budget lacks permit methods")
	}
	return bp, nil
}
