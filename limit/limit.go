// Package limit holds limits and cooldowns that hold across replicas: a
// requests- and tokens-per-minute limiter whose counts live in Redis, so
// that N replicas together admit the limit and not N times it, and shared
// cooldown hints, so that a 429 one replica saw makes the others wait too.
//
// Every decision is one Lua script on Redis, timed by Redis's own clock
// (TIME), over a sliding log of the calls admitted in the last window:
// whatever the number of replicas, no window of Config.Window holds more
// admitted calls (or reserved tokens) than the limit. When Redis is slow
// or down, Config.OnRedisError decides, and every such decision is
// reported (EventLimit with the mode as Reason): never a silent change.
//
// See docs/limits.md.
package limit

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	goredis "github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/internal/breaker"
	"github.com/llmkit/llmkit/llm"
)

// provider names this package in the errors it makes.
const provider = "limit"

// Mode is what decides a call when Redis is slow or down.
type Mode int

// The degraded modes.
const (
	// FailOpen admits every call while Redis cannot decide.
	FailOpen Mode = iota
	// FailClosed refuses every call while Redis cannot decide, with a
	// KindRateLimited error.
	FailClosed
	// LocalShare limits each replica to its share of the limit, the limit
	// divided by Config.Replicas, in process.
	LocalShare
)

// String returns the mode as the Reason of its events: "fail_open",
// "fail_closed" or "local_share".
func (m Mode) String() string {
	switch m {
	case FailOpen:
		return "fail_open"
	case FailClosed:
		return "fail_closed"
	case LocalShare:
		return "local_share"
	}
	return "unknown"
}

// Config configures a Limiter. Zero fields take the defaults named.
type Config struct {
	// Redis holds the counts; required. A *goredis.Client needs
	// ContextTimeoutEnabled, or Timeout cannot bound its commands. Give it
	// few retries (MaxRetries -1) and a short DialTimeout: its own retries
	// run before the limiter sees a failure.
	Redis goredis.Cmdable
	// Name is the Source of the limiter's events and part of its Redis
	// keys: one name per limit (per deployment, say). Default "limit".
	Name string
	// Prefix starts every Redis key. Default "llmkit:limit:".
	Prefix string
	// RPM and TPM are the limits per key: requests and tokens per Window.
	// 0 leaves that dimension unlimited.
	RPM, TPM int
	// Limits, when set, returns the limits of one call instead of RPM and
	// TPM: limits per API key or per tenant plan, say.
	Limits func(req *llm.Request) (rpm, tpm int)
	// Key returns the scope a call counts against. Default: req.Tenant,
	// so each tenant has the whole limit (an empty Tenant is one scope of
	// its own); return "" for one limit shared by every call. The key is
	// hashed (SHA-256) before it reaches Redis: it may hold an API key.
	Key func(req *llm.Request) string
	// ExpectedOutputTokens is reserved for the output of a request
	// without MaxTokens. Default 1024.
	ExpectedOutputTokens int
	// Window is the span RPM and TPM count over. Default one minute,
	// which is what the names say; tests use shorter ones.
	Window time.Duration
	// OnRedisError is what decides while Redis fails or is slow.
	// Default FailOpen.
	OnRedisError Mode
	// Replicas is the number of replicas sharing the limit; LocalShare
	// gives each 1/Replicas of it. Required with LocalShare.
	Replicas int
	// Timeout bounds each Redis call. Default 50 ms.
	Timeout time.Duration
	// BreakerFailures consecutive Redis failures stop the limiter from
	// calling Redis for BreakerCooldown; the degraded mode decides
	// meanwhile. Defaults 5 and 5 s.
	BreakerFailures int
	BreakerCooldown time.Duration
	// MaxKeys bounds the keys LocalShare and leasing keep in memory; the
	// others share one. Default 10,000.
	MaxKeys int
	// Lease, when > 0, takes request permits from Redis in blocks of
	// Lease and hands them out in process, saving round trips at the cost
	// of at most Replicas × Lease requests over the limit in a window
	// (see docs/limits.md). Calls under a TPM limit are not leased.
	Lease int
	// Observer hears the limiter's events (EventLimit, EventLimitSettle,
	// and the state of its Redis breaker as EventBreakerState), besides
	// the observers on the call's context.
	Observer llm.Observer
}

// Limiter is a Redis-coordinated RPM and TPM limiter. It is safe for
// concurrent use.
type Limiter struct {
	cfg    Config
	window time.Duration
	store  store
	local  *localShare
	leases *leases
}

var errNoContextTimeout = errors.New("limit: the Redis client needs ContextTimeoutEnabled: true, or Timeout cannot bound its commands")

// New returns a limiter, or an error for an invalid config.
func New(cfg Config) (*Limiter, error) {
	if err := checkClient(cfg.Redis); err != nil {
		return nil, err
	}
	cfg.Name = cmp.Or(cfg.Name, "limit")
	cfg.Prefix = cmp.Or(cfg.Prefix, "llmkit:limit:")
	cfg.ExpectedOutputTokens = cmp.Or(cfg.ExpectedOutputTokens, 1024)
	cfg.Window = cmp.Or(cfg.Window, time.Minute)
	cfg.Timeout = cmp.Or(cfg.Timeout, 50*time.Millisecond)
	cfg.BreakerFailures = cmp.Or(cfg.BreakerFailures, 5)
	cfg.BreakerCooldown = cmp.Or(cfg.BreakerCooldown, 5*time.Second)
	cfg.MaxKeys = cmp.Or(cfg.MaxKeys, 10000)
	switch {
	case cfg.RPM < 0 || cfg.TPM < 0 || cfg.ExpectedOutputTokens < 0 || cfg.Replicas < 0 || cfg.Lease < 0 || cfg.MaxKeys < 0:
		return nil, errors.New("limit: negative RPM, TPM, ExpectedOutputTokens, Replicas, Lease or MaxKeys")
	case cfg.Window < time.Millisecond || cfg.Timeout < 0 || cfg.BreakerFailures < 0 || cfg.BreakerCooldown < 0:
		return nil, errors.New("limit: Window must be at least 1 ms, Timeout and the breaker settings not negative")
	case cfg.OnRedisError < FailOpen || cfg.OnRedisError > LocalShare:
		return nil, errors.New("limit: OnRedisError must be FailOpen, FailClosed or LocalShare")
	case cfg.OnRedisError == LocalShare && cfg.Replicas == 0:
		return nil, errors.New("limit: LocalShare needs Replicas, the number of replicas sharing the limit")
	}
	l := &Limiter{cfg: cfg, window: cfg.Window}
	l.store = newRedisStore(cfg, l.breakerChanged)
	if cfg.OnRedisError == LocalShare {
		l.local = newLocalShare(cfg.Replicas, cfg.Window, cfg.MaxKeys)
	}
	if cfg.Lease > 0 {
		l.leases = newLeases(cfg.Lease, min(cfg.Window/10, time.Second), cfg.MaxKeys)
	}
	return l, nil
}

// checkClient refuses a nil client, and a go-redis client whose commands a
// context deadline cannot bound.
func checkClient(rdb goredis.Cmdable) error {
	switch c := rdb.(type) {
	case nil:
		return errors.New("limit: Config.Redis is required")
	case *goredis.Client:
		if c == nil {
			return errors.New("limit: Config.Redis is required")
		} else if !c.Options().ContextTimeoutEnabled {
			return errNoContextTimeout
		}
	case *goredis.ClusterClient:
		if c == nil {
			return errors.New("limit: Config.Redis is required")
		} else if !c.Options().ContextTimeoutEnabled {
			return errNoContextTimeout
		}
	}
	return nil
}

// Name returns the limiter's name, the Source of its events.
func (l *Limiter) Name() string { return l.cfg.Name }

// BreakerState returns the state of the breaker guarding Redis.
func (l *Limiter) BreakerState() llm.BreakerState { return l.store.breakerState() }

// breakerChanged reports a change of the Redis breaker.
func (l *Limiter) breakerChanged(ctx context.Context, st circuitbreaker.State) {
	llm.EmitTo(ctx, l.cfg.Observer, llm.Event{Kind: llm.EventBreakerState, State: breaker.State(st), Source: l.cfg.Name})
}

// limits returns the call's limits.
func (l *Limiter) limits(req *llm.Request) (rpm, tpm int) {
	if l.cfg.Limits != nil {
		rpm, tpm = l.cfg.Limits(req)
		return max(rpm, 0), max(tpm, 0)
	}
	return l.cfg.RPM, l.cfg.TPM
}

// scope returns the call's scope, before hashing.
func (l *Limiter) scope(req *llm.Request) string {
	if l.cfg.Key != nil {
		return l.cfg.Key(req)
	}
	return req.Tenant
}

// reserveTokens is what a call reserves: its estimated input plus its
// MaxTokens, or ExpectedOutputTokens when it sets none.
func (l *Limiter) reserveTokens(req *llm.Request) int {
	out := req.MaxTokens
	if out <= 0 {
		out = l.cfg.ExpectedOutputTokens
	}
	return req.EstimateInputTokens() + out
}
