package cache

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/resilience"
)

// RedisAddrEnv is the environment variable that names the Redis address
// the tests (and RedisAddr) use.
const RedisAddrEnv = "LLMKIT_REDIS_ADDR"

// DefaultRedisAddr is the address RedisAddr returns when RedisAddrEnv is
// unset.
const DefaultRedisAddr = "127.0.0.1:6379"

// RedisAddr returns $LLMKIT_REDIS_ADDR, or 127.0.0.1:6379.
func RedisAddr() string {
	if a := os.Getenv(RedisAddrEnv); a != "" {
		return a
	}
	return DefaultRedisAddr
}

// ErrStoreOpen is the error a Redis store returns while its circuit breaker
// is open: the call was not made.
var ErrStoreOpen = errors.New("cache: store circuit breaker is open")

// ErrWritesBusy is the error Set returns when RedisConfig.AsyncWrites
// writes are already in flight: the entry was not stored.
var ErrWritesBusy = errors.New("cache: too many store writes in flight")

var errNoContextTimeout = errors.New("cache: the Redis client needs ContextTimeoutEnabled: true, or RedisConfig.Timeout cannot bound its commands")

// RedisConfig configures a Redis store. Zero fields take the defaults.
type RedisConfig struct {
	// Prefix starts every key, so that several caches can share a Redis.
	// Default "llmkit:cache:".
	Prefix string
	// Timeout bounds each Redis command. Default 50 ms.
	Timeout time.Duration
	// BreakerFailures is how many consecutive failures open the store's
	// circuit breaker. Default 5.
	BreakerFailures int
	// BreakerCooldown is how long the breaker stays open before it lets
	// one probe through. Default 5 s.
	BreakerCooldown time.Duration
	// MaxItemBytes is the largest encoded entry stored. Default 1 MiB.
	MaxItemBytes int
	// AsyncWrites, when > 0, makes Set return at once and write in the
	// background, with at most this many writes in flight; a Set beyond
	// that is dropped with ErrWritesBusy. A failed background write is
	// reported as an EventCacheError under the caller's context values.
	// Call Wait or Close to let pending writes finish. Default 0: Set
	// writes before it returns.
	AsyncWrites int
	// Name is the Source of the events. Default "redis".
	Name string
}

// Redis is a Store shared by every process that talks to the same Redis.
//
// Keys are Prefix + "v1:" + hex(tenant hash) + ":" + hex(digest): no raw
// tenant or prompt appears in them. Values are a compact binary encoding
// of the answer and its deadlines, stored with the entry's TTL. Every
// command has a timeout; a failed or timed-out command is returned as an
// error, which the middleware turns into a miss and an EventCacheError, so
// Redis never fails a call. A circuit breaker of its own stops calling a
// Redis that keeps failing, so a dead Redis costs nothing per call.
type Redis struct {
	rdb     redis.Cmdable
	prefix  string
	timeout time.Duration
	maxItem int
	name    string
	br      *resilience.Breaker

	sem     chan struct{} // background write slots; nil when synchronous
	pending sync.WaitGroup

	// obs are the observers subscribed through the caches over this
	// store: they hear its background write errors and breaker changes.
	obs llm.Observers
}

func (r *Redis) subscribe(o llm.Observer) {
	r.obs.Add(o)
	r.br.Subscribe(o)
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store over rdb (a *redis.Client, *redis.ClusterClient
// or any redis.Cmdable). The caller owns rdb and closes it.
//
// The store bounds each command with a context deadline, which go-redis
// honours only when the client's ContextTimeoutEnabled option is set, so
// NewRedis refuses a *redis.Client or *redis.ClusterClient without it.
// Give the client few retries and a short DialTimeout too: its own retries
// run before the store's breaker sees a failure.
func NewRedis(rdb redis.Cmdable, cfg RedisConfig) (*Redis, error) {
	switch c := rdb.(type) {
	case nil:
		return nil, errors.New("cache: nil Redis client")
	case *redis.Client:
		if c == nil {
			return nil, errors.New("cache: nil Redis client")
		}
		if !c.Options().ContextTimeoutEnabled {
			return nil, errNoContextTimeout
		}
	case *redis.ClusterClient:
		if c == nil {
			return nil, errors.New("cache: nil Redis client")
		}
		if !c.Options().ContextTimeoutEnabled {
			return nil, errNoContextTimeout
		}
	}
	if cfg.Timeout < 0 || cfg.BreakerFailures < 0 || cfg.BreakerCooldown < 0 || cfg.MaxItemBytes < 0 || cfg.AsyncWrites < 0 {
		return nil, errors.New("cache: negative RedisConfig field")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "llmkit:cache:"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 50 * time.Millisecond
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = 5
	}
	if cfg.BreakerCooldown == 0 {
		cfg.BreakerCooldown = 5 * time.Second
	}
	if cfg.MaxItemBytes == 0 {
		cfg.MaxItemBytes = 1 << 20
	}
	if cfg.Name == "" {
		cfg.Name = "redis"
	}
	r := &Redis{
		rdb: rdb, prefix: cfg.Prefix + "v1:", timeout: cfg.Timeout, maxItem: cfg.MaxItemBytes, name: cfg.Name,
	}
	br, err := resilience.NewBreaker(resilience.BreakerConfig{
		Name: cfg.Name, FailureThreshold: uint(cfg.BreakerFailures), Delay: cfg.BreakerCooldown,
		// Every store error is the store's health: there are no bad
		// requests here, and the caller's own cancellations are never
		// counted (Permit.Done).
		IsFailure: func(error) bool { return true },
	})
	if err != nil {
		return nil, err
	}
	r.br = br
	if cfg.AsyncWrites > 0 {
		r.sem = make(chan struct{}, cfg.AsyncWrites)
	}
	return r, nil
}

// key returns prefix + hex(scope) + ":" + hex(digest).
func (r *Redis) key(k Key) string {
	b := make([]byte, 0, len(r.prefix)+len(k.Scope)*2+1+len(k.Digest)*2)
	b = append(b, r.prefix...)
	b = hex.AppendEncode(b, k.Scope[:])
	b = append(b, ':')
	b = hex.AppendEncode(b, k.Digest[:])
	return string(b)
}

// Get fetches and decodes the entry for key.
func (r *Redis) Get(ctx context.Context, key Key) (Entry, bool, error) {
	p, ok := r.br.Acquire(ctx)
	if !ok {
		return Entry{}, false, ErrStoreOpen
	}
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	b, err := r.rdb.Get(cctx, r.key(key)).Bytes()
	cancel()
	switch {
	case errors.Is(err, redis.Nil):
		p.Done(ctx, nil)
		return Entry{}, false, nil
	case err != nil:
		serr := storeError(r.name, err)
		p.Done(ctx, serr)
		return Entry{}, false, serr
	}
	p.Done(ctx, nil)
	e, err := decodeEntry(b)
	if err != nil {
		return Entry{}, false, err
	}
	return e, true, nil
}

// Set encodes e and stores it for ttl. It runs even when ctx is canceled
// (the answer is already paid for), bounded by the store's timeout; with
// AsyncWrites it runs in the background.
func (r *Redis) Set(ctx context.Context, key Key, e Entry, ttl time.Duration) error {
	if e.Response == nil || ttl <= 0 {
		return nil
	}
	v := appendEntry(make([]byte, 0, 64+len(e.Response.Text)), e)
	if len(v) > r.maxItem {
		return nil
	}
	p, ok := r.br.Acquire(ctx)
	if !ok {
		return ErrStoreOpen
	}
	ctx = context.WithoutCancel(ctx)
	if r.sem == nil {
		return r.set(ctx, key, v, ttl, p)
	}
	select {
	case r.sem <- struct{}{}:
	default:
		p.Release() // not a Redis outcome either way
		return ErrWritesBusy
	}
	r.pending.Add(1)
	go func() {
		defer func() { <-r.sem; r.pending.Done() }()
		if err := r.set(ctx, key, v, ttl, p); err != nil {
			r.obs.Emit(ctx, llm.Event{Kind: llm.EventCacheError, Source: r.name, Err: err})
		}
	}()
	return nil
}

// Wait blocks until every background write started before it is done.
func (r *Redis) Wait() { r.pending.Wait() }

// Close waits for background writes. It does not close the Redis client,
// which the caller owns.
func (r *Redis) Close() { r.pending.Wait() }

// set writes v under the breaker's permit p and records the outcome.
func (r *Redis) set(ctx context.Context, key Key, v []byte, ttl time.Duration, p resilience.Permit) error {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	err := r.rdb.Set(cctx, r.key(key), v, ttl).Err()
	cancel()
	if err != nil {
		serr := storeError(r.name, err)
		p.Done(ctx, serr)
		return serr
	}
	p.Done(ctx, nil)
	return nil
}

// Name returns the store's name, the Source of its events.
func (r *Redis) Name() string { return r.name }

// BreakerState returns the state of the store's circuit breaker.
func (r *Redis) BreakerState() llm.BreakerState { return r.br.State() }

// storeError wraps a store failure as an *llm.Error of KindUnavailable (or
// KindTimeout), so observers classify it like any other failure. The text
// of a Redis error never holds a key or a value.
func storeError(name string, err error) error {
	kind := llm.KindOf(err)
	if kind != llm.KindTimeout {
		kind = llm.KindUnavailable
	}
	return &llm.Error{Kind: kind, Provider: name, Message: "cache store failed", Err: err}
}
