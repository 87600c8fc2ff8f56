package main

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/limit"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/resilience"
)

// perKeyLimits returns the middleware that holds each tenant (each API
// key's) to its requests and tokens per minute. With Redis (rdb not nil)
// the limits hold across replicas: package limit counts in Redis, and
// while Redis fails each call is let through (limit.FailOpen, reported as
// an event). Without Redis they hold per replica: resilience's rate
// limiter (failsafe-go's), one per tenant with limits, built here, at
// start. Requests of other tenants pass.
//
// It sits in stack.Config.Middlewares, outside the cache and resilience:
// a refusal is the caller's quota with this service, so it is answered 429
// with Retry-After, not replaced by the fallback text; and a cached answer
// counts against the key's requests like any other.
// keyLimiterName is the per-key limiter's name: the limiter label of its
// llm_limiter_* series.
const keyLimiterName = "api_keys"

func perKeyLimits(limits map[string]keyLimits, rdb goredis.Cmdable, prefix string, obs llm.Observer) (llm.Middleware, error) {
	if len(limits) == 0 {
		return nil, nil
	}
	if rdb != nil {
		l, err := limit.New(limit.Config{Redis: rdb, Name: keyLimiterName, Prefix: prefix, Observer: obs,
			Limits: func(req *llm.Request) (int, int) { l := limits[req.Tenant]; return l.RPM, l.TPM }})
		if err != nil {
			return nil, err
		}
		return l.Middleware(), nil
	}
	mws := make(map[string]llm.Middleware, len(limits))
	for tenant, l := range limits {
		// Bursty: a key may spend its minute's requests at once, as API
		// quotas are usually read, rather than one every 60/RPM seconds.
		rc := resilience.RateLimitConfig{Requests: uint(l.RPM), Period: time.Minute, Bursty: true,
			TokensPerMinute: uint(l.TPM)}
		if l.RPM == 0 {
			// Tokens only: every call reserves at least one token, so a
			// request limit of TPM per minute never binds before it.
			rc.Requests = uint(l.TPM)
		}
		mw, err := resilience.RateLimit(rc)
		if err != nil {
			return nil, err
		}
		mws[tenant] = mw
	}
	return func(next llm.Client) llm.Client {
		limited := make(map[string]llm.Client, len(mws))
		for tenant, mw := range mws {
			limited[tenant] = mw(next)
		}
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			if c, ok := limited[req.Tenant]; ok {
				return c.Generate(ctx, req)
			}
			return next.Generate(ctx, req)
		})
	}, nil
}
