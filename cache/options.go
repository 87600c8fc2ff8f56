package cache

import (
	"errors"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Option configures the middleware. Options are sealed: only this package
// makes them. A nil Option is ignored.
type Option interface{ apply(*config) error }

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

type config struct {
	ttl              time.Duration
	grace            time.Duration
	nondeterministic bool
	limits           llm.Limits
	storable         func(*llm.Response) bool
	coalesce         bool
	replayChunk      int
	obs              llm.Observer
}

// The defaults.
const (
	DefaultTTL   = 10 * time.Minute
	DefaultGrace = 10 * time.Minute
)

func defaultConfig() config {
	return config{
		ttl:      DefaultTTL,
		grace:    DefaultGrace,
		limits:   llm.DefaultLimits,
		storable: func(r *llm.Response) bool { return r.FinishReason.Complete() },
		coalesce: true,
	}
}

// WithTTL sets how long an entry answers requests. Default 10 minutes.
func WithTTL(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d <= 0 {
			return errors.New("cache: WithTTL needs a positive duration")
		}
		c.ttl = d
		return nil
	})
}

// WithGrace sets how long an entry is kept after its TTL for Cache.Stale,
// which resilience's fallback uses when the provider fails. 0 keeps no
// stale entries. Default 10 minutes.
func WithGrace(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return errors.New("cache: WithGrace needs a duration >= 0")
		}
		c.grace = d
		return nil
	})
}

// WithNondeterministic caches requests whose output is not deterministic
// too: temperature unset (providers default to 1.0) or above 0. By default
// only requests with Temperature set to 0 are cached, because caching a
// sampled answer turns one random draw into every caller's answer.
func WithNondeterministic() Option {
	return optionFunc(func(c *config) error { c.nondeterministic = true; return nil })
}

// WithLimits sets the limits requests are validated against before they are
// hashed. Zero fields take llm.DefaultLimits.
func WithLimits(lim llm.Limits) Option {
	return optionFunc(func(c *config) error {
		if lim.MaxContentBytes < 0 || lim.MaxMessages < 0 || lim.MaxStop < 0 {
			return errors.New("cache: WithLimits with a negative limit")
		}
		c.limits = lim
		return nil
	})
}

// WithStoreIf sets which successful answers may be stored. The default
// stores answers whose FinishReason is Complete (stop or tool calls), so an
// answer cut by the length limit or a content filter is not kept. Errors,
// degraded answers and cut streams are never stored, whatever f says.
func WithStoreIf(f func(*llm.Response) bool) Option {
	return optionFunc(func(c *config) error {
		if f == nil {
			return errors.New("cache: WithStoreIf(nil)")
		}
		c.storable = f
		return nil
	})
}

// WithoutCoalescing turns off request coalescing: identical misses in flight
// at once each call the provider.
func WithoutCoalescing() Option {
	return optionFunc(func(c *config) error { c.coalesce = false; return nil })
}

// WithReplayChunkBytes makes a streaming hit replay the text in chunks of
// about n bytes (split on UTF-8 boundaries) instead of one chunk.
func WithReplayChunkBytes(n int) Option {
	return optionFunc(func(c *config) error {
		if n <= 0 {
			return errors.New("cache: WithReplayChunkBytes needs n > 0")
		}
		c.replayChunk = n
		return nil
	})
}

// WithObserver gives the cache an observer that hears every event it
// emits (hits, misses, stores, coalesced calls, stale answers, store
// errors), besides those on each call's context: the place for a counting
// observer such as a Prometheus middleware's. Several calls add observers
// (see llm.MultiObserver); a nil o is ignored.
func WithObserver(o llm.Observer) Option {
	return optionFunc(func(c *config) error { c.obs = llm.MultiObserver(c.obs, o); return nil })
}
