// Package redis is a cache.Store on Redis, shared by every process that
// talks to the same Redis: put a cache.Ristretto in front of it with
// cache.NewTiered.
//
// Redis down never fails a call: every command has a timeout, a failure is
// returned to the cache middleware, which reports it and goes on as a
// miss, and a failsafe-go circuit breaker stops calling a Redis that keeps
// failing, so a dead Redis costs nothing per call.
package redis

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	goredis "github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/internal/breaker"
	"github.com/llmkit/llmkit/llm"
)

// AddrEnv is the environment variable that names the Redis address the
// tests (and Addr) use.
const AddrEnv = "LLMKIT_REDIS_ADDR"

// DefaultAddr is the address Addr returns when AddrEnv is unset.
const DefaultAddr = "127.0.0.1:6379"

// Addr returns $LLMKIT_REDIS_ADDR, or 127.0.0.1:6379.
func Addr() string {
	if a := os.Getenv(AddrEnv); a != "" {
		return a
	}
	return DefaultAddr
}

// ErrOpen is the cause of the error a Store returns while its circuit
// breaker is open: Redis was not called.
var ErrOpen = circuitbreaker.ErrOpen

// ErrWritesBusy is the error Set returns when Config.AsyncWrites writes
// are already in flight: the entry was not stored.
var ErrWritesBusy = errors.New("cache/redis: too many writes in flight")

var errNoContextTimeout = errors.New("cache/redis: the client needs ContextTimeoutEnabled: true, or Config.Timeout cannot bound its commands")

// Config configures a Store. Zero fields take the defaults.
type Config struct {
	// Prefix starts every key, so that several caches can share a Redis.
	// Default "llmkit:cache:".
	Prefix string
	// Timeout bounds each Redis command. Default 50 ms.
	Timeout time.Duration
	// BreakerFailures is how many consecutive failures open the circuit
	// breaker. Default 5.
	BreakerFailures int
	// BreakerCooldown is how long the breaker stays open before it lets
	// probes through. Default 5 s.
	BreakerCooldown time.Duration
	// MaxItemBytes is the largest encoded entry stored. Default 1 MiB.
	MaxItemBytes int
	// AsyncWrites, when > 0, makes Set return at once and write in the
	// background, with at most this many writes in flight; a Set beyond
	// that is dropped with ErrWritesBusy. Call Wait or Close to let
	// pending writes finish. Default 0: Set writes before it returns.
	AsyncWrites int
	// Name is the Source of the events. Default "redis".
	Name string
	// Observer hears the store's own events: its breaker's state changes
	// and the errors of background writes. They also reach the observers
	// on the context of the call that caused them. Optional.
	Observer llm.Observer
}

// Store is a cache.Store on Redis.
//
// Keys are Prefix + "v1:" + hex(tenant hash) + ":" + hex(digest): no raw
// tenant or prompt appears in them. Values are a compact binary encoding
// of the answer and its deadlines, stored with the entry's TTL.
type Store struct {
	rdb     goredis.Cmdable
	prefix  string
	timeout time.Duration
	maxItem int
	name    string
	obs     llm.Observer
	cb      circuitbreaker.CircuitBreaker[[]byte]

	sem     chan struct{} // background write slots; nil when synchronous
	pending sync.WaitGroup
}

var _ cache.Store = (*Store)(nil)

// New returns a store over rdb (a *goredis.Client, *goredis.ClusterClient
// or any goredis.Cmdable). The caller owns rdb and closes it.
//
// The store bounds each command with a context deadline, which go-redis
// honours only when the client's ContextTimeoutEnabled option is set, so
// New refuses a *goredis.Client or *goredis.ClusterClient without it.
// Give the client few retries and a short DialTimeout too: its own retries
// run before the breaker sees a failure.
func New(rdb goredis.Cmdable, cfg Config) (*Store, error) {
	switch c := rdb.(type) {
	case nil:
		return nil, errors.New("cache/redis: nil client")
	case *goredis.Client:
		if c == nil {
			return nil, errors.New("cache/redis: nil client")
		} else if !c.Options().ContextTimeoutEnabled {
			return nil, errNoContextTimeout
		}
	case *goredis.ClusterClient:
		if c == nil {
			return nil, errors.New("cache/redis: nil client")
		} else if !c.Options().ContextTimeoutEnabled {
			return nil, errNoContextTimeout
		}
	}
	if cfg.Timeout < 0 || cfg.BreakerFailures < 0 || cfg.BreakerCooldown < 0 || cfg.MaxItemBytes < 0 || cfg.AsyncWrites < 0 {
		return nil, errors.New("cache/redis: negative Config field")
	}
	s := &Store{
		rdb: rdb, prefix: cmp.Or(cfg.Prefix, "llmkit:cache:") + "v1:", timeout: cmp.Or(cfg.Timeout, 50*time.Millisecond),
		maxItem: cmp.Or(cfg.MaxItemBytes, 1<<20), name: cmp.Or(cfg.Name, "redis"), obs: cfg.Observer,
	}
	s.cb = circuitbreaker.NewBuilder[[]byte]().
		// A missing key is an answer, not a failure.
		HandleIf(func(_ []byte, err error) bool { return err != nil && !errors.Is(err, goredis.Nil) }).
		WithFailureThreshold(cmp.Or(uint(cfg.BreakerFailures), 5)).
		WithDelay(cmp.Or(cfg.BreakerCooldown, 5*time.Second)).
		OnStateChanged(s.stateChanged).
		Build()
	if cfg.AsyncWrites > 0 {
		s.sem = make(chan struct{}, cfg.AsyncWrites)
	}
	return s, nil
}

// stateChanged reports a breaker change to the store's observer and those
// of the call that caused it.
func (s *Store) stateChanged(ev circuitbreaker.StateChangedEvent) {
	llm.EmitTo(ev.Context(), s.obs, llm.Event{Kind: llm.EventBreakerState, State: breaker.State(ev.NewState), Source: s.name})
}

// key returns prefix + hex(scope) + ":" + hex(digest).
func (s *Store) key(k cache.Key) string {
	b := make([]byte, 0, len(s.prefix)+len(k.Scope)*2+1+len(k.Digest)*2)
	b = hex.AppendEncode(append(b, s.prefix...), k.Scope[:])
	return string(hex.AppendEncode(append(b, ':'), k.Digest[:]))
}

// do runs cmd through the breaker with a context that keeps ctx's values
// but not its cancellation, bounded by the store's timeout: the outcome is
// then always Redis's own, which is what the breaker counts. (go-redis
// ends a command's network wait only at a deadline, so a caller's
// cancellation would not end it sooner anyway.)
func (s *Store) do(ctx context.Context, cmd func(context.Context) ([]byte, error)) ([]byte, error) {
	ctx = context.WithoutCancel(ctx)
	return failsafe.With(s.cb).WithContext(ctx).Get(func() ([]byte, error) {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		return cmd(cctx)
	})
}

// Get fetches and decodes the entry for key.
func (s *Store) Get(ctx context.Context, key cache.Key) (cache.Entry, bool, error) {
	b, err := s.do(ctx, func(ctx context.Context) ([]byte, error) {
		return s.rdb.Get(ctx, s.key(key)).Bytes()
	})
	switch {
	case errors.Is(err, goredis.Nil):
		return cache.Entry{}, false, nil
	case err != nil:
		return cache.Entry{}, false, s.storeError(err)
	}
	e, err := decodeEntry(b)
	if err != nil {
		return cache.Entry{}, false, err
	}
	return e, true, nil
}

// Set encodes e and stores it for ttl. It runs even when ctx is canceled
// (the answer is already paid for), bounded by the store's timeout; with
// AsyncWrites it runs in the background.
func (s *Store) Set(ctx context.Context, key cache.Key, e cache.Entry, ttl time.Duration) error {
	if e.Response == nil || ttl <= 0 {
		return nil
	}
	v := appendEntry(make([]byte, 0, 64+len(e.Response.Text)), e)
	if len(v) > s.maxItem {
		return nil
	}
	set := func() error {
		_, err := s.do(ctx, func(ctx context.Context) ([]byte, error) {
			return nil, s.rdb.Set(ctx, s.key(key), v, ttl).Err()
		})
		if err != nil {
			return s.storeError(err)
		}
		return nil
	}
	if s.sem == nil {
		return set()
	}
	select {
	case s.sem <- struct{}{}:
	default:
		return ErrWritesBusy
	}
	s.pending.Add(1)
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer func() { <-s.sem; s.pending.Done() }()
		if err := set(); err != nil {
			llm.EmitTo(ctx, s.obs, llm.Event{Kind: llm.EventCacheError, Source: s.name, Err: llm.RedactError(err)})
		}
	}()
	return nil
}

// Wait blocks until every background write started before it is done.
func (s *Store) Wait() { s.pending.Wait() }

// Close waits for background writes. It does not close the Redis client,
// which the caller owns.
func (s *Store) Close() { s.pending.Wait() }

// Name returns the store's name, the Source of its events.
func (s *Store) Name() string { return s.name }

// BreakerState returns the state of the store's circuit breaker.
func (s *Store) BreakerState() llm.BreakerState { return breaker.State(s.cb.State()) }

// storeError wraps a store failure as an *llm.Error of KindUnavailable (or
// KindTimeout), so observers classify it like any other failure. The text
// of a Redis error never holds a key or a value.
func (s *Store) storeError(err error) error {
	kind := llm.KindOf(err)
	if kind != llm.KindTimeout {
		kind = llm.KindUnavailable
	}
	return &llm.Error{Kind: kind, Provider: s.name, Message: "cache store failed", Err: err}
}
