package resilience

import (
	"cmp"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/ratelimiter"

	"github.com/llmkit/llmkit/llm"
)

// RateLimitConfig limits requests, and optionally tokens, per period.
type RateLimitConfig struct {
	Requests uint          // per Period; required
	Period   time.Duration // default 1 s
	Bursty   bool          // all Requests may run at the start of a period; else spread evenly
	// TokensPerMinute, when > 0, also limits tokens: each call reserves its
	// estimated input tokens plus MaxTokens, and the difference from the
	// actual usage is settled after the call.
	TokensPerMinute  uint
	DefaultMaxTokens int           // reserved for the output of a request without MaxTokens; default 1024
	MaxWait          time.Duration // a cancellable wait for a permit; 0 refuses at once
	PerTenant        bool          // one limiter per Request.Tenant
	MaxTenants       int           // per-tenant limiters at most, the others share one; default 10,000
	Observer         llm.Observer  // hears each refusal (EventRejected, "rate_limit")
}

// RateLimit returns the rate limiter alone, on failsafe-go's rate limiters.
func RateLimit(cfg RateLimitConfig) (llm.Middleware, error) { return newRateLimit(cfg, cfg.Observer) }

type rateLimit struct {
	RateLimitConfig
	shared     *limiterPair
	tenants    sync.Map // tenant → *limiterPair
	nTenants   atomic.Int64
	retryAfter time.Duration
}

// limiterPair limits requests and tokens. credit holds tokens reserved but
// not used, for later reservations: failsafe-go cannot take permits back.
type limiterPair struct {
	req, tok ratelimiter.RateLimiter[*llm.Response]
	credit   atomic.Int64
}

func newRateLimit(c RateLimitConfig, obs llm.Observer) (llm.Middleware, error) {
	setDefault(&c.Period, time.Second)
	setDefault(&c.DefaultMaxTokens, 1024)
	setDefault(&c.MaxTenants, 10000)
	if c.Requests == 0 || c.Period < 0 || c.MaxWait < 0 || c.MaxTenants < 0 || c.DefaultMaxTokens < 0 {
		return nil, errf("RateLimit.Requests must be > 0, durations and sizes not negative")
	}
	c.Observer = obs
	r := &rateLimit{RateLimitConfig: c, retryAfter: c.Period / time.Duration(c.Requests)}
	if c.Bursty {
		r.retryAfter = c.Period
	}
	r.shared = r.newPair()
	return func(next llm.Client) llm.Client {
		return policyFunc(func(ctx context.Context, req *llm.Request) (resp *llm.Response, err error) {
			p, reserved, err := r.acquire(ctx, req)
			if err != nil {
				return nil, err
			}
			defer func() { r.settle(p, reserved, resp) }()
			return next.Generate(ctx, req)
		})
	}, nil
}

func (r *rateLimit) newPair() *limiterPair {
	p := &limiterPair{req: ratelimiter.NewSmooth[*llm.Response](r.Requests, r.Period)}
	if r.Bursty {
		p.req = ratelimiter.NewBursty[*llm.Response](r.Requests, r.Period)
	}
	if r.TokensPerMinute > 0 {
		p.tok = ratelimiter.NewBursty[*llm.Response](r.TokensPerMinute, time.Minute)
	}
	return p
}

func (r *rateLimit) pairFor(tenant string) *limiterPair {
	if !r.PerTenant || tenant == "" {
		return r.shared
	}
	if p, ok := r.tenants.Load(tenant); ok {
		return p.(*limiterPair)
	}
	if r.nTenants.Load() >= int64(r.MaxTenants) {
		return r.shared
	}
	p, loaded := r.tenants.LoadOrStore(tenant, r.newPair())
	if !loaded {
		r.nTenants.Add(1)
	}
	return p.(*limiterPair)
}

// acquire takes one request permit and, with a token limit, the request's
// estimated tokens, credit first. It returns the pair and the tokens
// reserved.
func (r *rateLimit) acquire(ctx context.Context, req *llm.Request) (*limiterPair, int, error) {
	if ctx.Err() != nil {
		return nil, 0, llm.FromContext(ctx, provider)
	}
	p := r.pairFor(req.Tenant)
	if err := r.take(ctx, req, p.req, 1); err != nil || p.tok == nil {
		return p, 0, err
	}
	need := req.EstimateInputTokens() + cmp.Or(max(req.MaxTokens, 0), r.DefaultMaxTokens)
	// What the credit held before this call's share was taken from it, at
	// most need, is this call's; the rest goes back.
	fromCredit := min(max(int64(need)+p.credit.Add(-int64(need)), 0), int64(need))
	p.credit.Add(int64(need) - fromCredit)
	if rest := need - int(fromCredit); rest > 0 {
		if err := r.take(ctx, req, p.tok, uint(rest)); err != nil {
			p.credit.Add(fromCredit)
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
	if used > reserved {
		p.tok.ReservePermits(uint(used - reserved))
	} else if c := p.credit.Add(int64(reserved - used)); c > int64(r.TokensPerMinute) {
		p.credit.Store(int64(r.TokensPerMinute))
	}
}

// take takes n permits from lim, waiting up to MaxWait, cancellably.
func (r *rateLimit) take(ctx context.Context, req *llm.Request, lim ratelimiter.RateLimiter[*llm.Response], n uint) error {
	d, retryAfter := time.Duration(-1), r.retryAfter
	if r.MaxWait > 0 {
		d, retryAfter = lim.TryReservePermits(n, r.MaxWait), r.MaxWait
	} else if lim.TryAcquirePermits(n) {
		d = 0
	}
	if d < 0 {
		return reject(ctx, r.Observer, req, "rate_limit", &llm.Error{Kind: llm.KindRateLimited, Provider: provider,
			Message: "local rate limit reached", RetryAfter: retryAfter})
	}
	if llm.Sleep(ctx, d) != nil {
		return llm.FromContext(ctx, provider)
	}
	return nil
}
