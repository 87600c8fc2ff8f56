package limit

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/llm"
)

// HintsConfig configures Hints. Zero fields take the defaults named.
type HintsConfig struct {
	// Name is the Source of the events about the hint store itself.
	// Default "hints".
	Name string
	// Prefix starts every Redis key. Default "llmkit:cool:".
	Prefix string
	// Timeout bounds each Redis call. Default 50 ms.
	Timeout time.Duration
	// Refresh is how often a name's hint is read again from Redis; what
	// a replica believes is at most Refresh plus Timeout stale. Default
	// 500 ms; at most 1 s.
	Refresh time.Duration
	// MaxCooldown caps one published cooldown, so that a wild
	// Retry-After cannot take a deployment out for a day. Default 5 min.
	MaxCooldown time.Duration
	// BreakerCooldown is how long a deployment cools when its breaker
	// opens (see Observer): the breaker's delay. Default 60 s, the
	// resilience breaker's default delay.
	BreakerCooldown time.Duration
	// Observer hears EventCooldown when a cooldown starts (published here
	// or first learned from another replica), and EventLimit with Reason
	// "fail_open" when the hint store failed and the call went on without
	// it.
	Observer llm.Observer
}

// Hints shares "cooling until T" between replicas: when one sees a
// deployment answer 429 with a Retry-After, or its breaker open, it
// publishes the cooldown to Redis (extend-only, expiring at T), and every
// replica reads it through a local cache, so that the others skip that
// deployment too. Hints only add to local state: the local breaker stays
// authoritative, and when Redis is down each replica goes by what it saw
// itself. It is safe for concurrent use.
type Hints struct {
	cfg   HintsConfig
	store hintStore
	mu    sync.Mutex
	names map[string]*hint
}

// hint is what this process knows of one name's cooldown.
type hint struct {
	mu      sync.Mutex
	until   time.Time // cooling until then, by the local clock
	readAt  time.Time // last read from the store (or attempt)
	reading bool      // a read is in flight; others use what is known
}

// hintStore keeps cooldowns as remaining durations, so that replicas
// whose clocks disagree still agree on when a cooldown ends.
type hintStore interface {
	// extend makes name cool for at least d from now.
	extend(ctx context.Context, name string, d time.Duration) error
	// remaining returns how long name still cools; 0 when it does not.
	remaining(ctx context.Context, name string) (time.Duration, error)
}

// NewHints returns hints kept in rdb, or an error for an invalid config.
func NewHints(rdb goredis.Cmdable, cfg HintsConfig) (*Hints, error) {
	if err := checkClient(rdb); err != nil {
		return nil, err
	}
	cfg.Name = cmp.Or(cfg.Name, "hints")
	cfg.Prefix = cmp.Or(cfg.Prefix, "llmkit:cool:")
	cfg.Timeout = cmp.Or(cfg.Timeout, 50*time.Millisecond)
	cfg.Refresh = cmp.Or(cfg.Refresh, 500*time.Millisecond)
	cfg.MaxCooldown = cmp.Or(cfg.MaxCooldown, 5*time.Minute)
	cfg.BreakerCooldown = cmp.Or(cfg.BreakerCooldown, time.Minute)
	if cfg.Timeout < 0 || cfg.Refresh < 0 || cfg.Refresh > time.Second || cfg.MaxCooldown < 0 || cfg.BreakerCooldown < 0 {
		return nil, errors.New("limit: HintsConfig durations must not be negative, Refresh at most 1 s")
	}
	return newHints(&redisHints{rdb: rdb, prefix: cfg.Prefix, timeout: cfg.Timeout}, cfg), nil
}

func newHints(st hintStore, cfg HintsConfig) *Hints {
	return &Hints{cfg: cfg, store: st, names: map[string]*hint{}}
}

// get returns name's state. Names come from the caller's configured set
// of deployments, so the map stays small.
func (h *Hints) get(name string) *hint {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.names[name]
	if !ok {
		e = &hint{}
		h.names[name] = e
	}
	return e
}

// CoolUntil publishes that name cools until until (capped at
// MaxCooldown from now). It only ever extends a cooldown. A store error
// is reported to the observers, never returned: this replica still knows.
func (h *Hints) CoolUntil(ctx context.Context, name string, until time.Time) {
	now := time.Now()
	d := min(until.Sub(now), h.cfg.MaxCooldown)
	if d <= 0 {
		return
	}
	e := h.get(name)
	e.mu.Lock()
	if u := now.Add(d); u.After(e.until) {
		e.until = u
	}
	e.mu.Unlock()
	if err := h.store.extend(ctx, name, d); err != nil {
		h.storeFailed(ctx, err)
	}
}

// CoolingUntil returns when name stops cooling, or the zero time when it
// does not cool. It reads the store at most once per Refresh per name
// (one caller reads, the others use what is known meanwhile); when the
// store fails, only what this process published itself counts.
func (h *Hints) CoolingUntil(ctx context.Context, name string) time.Time {
	e := h.get(name)
	now := time.Now()
	e.mu.Lock()
	if e.reading || now.Sub(e.readAt) < h.cfg.Refresh {
		u := e.until
		e.mu.Unlock()
		return cooling(u, now)
	}
	e.reading = true
	e.mu.Unlock()

	d, err := h.store.remaining(ctx, name)
	now = time.Now()
	e.mu.Lock()
	e.reading, e.readAt = false, now
	learned := err == nil && d > 0 && now.Add(d).After(e.until)
	if learned {
		e.until = now.Add(d)
	}
	u := e.until
	e.mu.Unlock()
	if err != nil {
		h.storeFailed(ctx, err)
	} else if learned && d > time.Millisecond {
		llm.EmitTo(ctx, h.cfg.Observer, llm.Event{Kind: llm.EventCooldown, Source: name, Delay: d, Reason: "shared"})
	}
	return cooling(u, now)
}

func cooling(until, now time.Time) time.Time {
	if until.After(now) {
		return until
	}
	return time.Time{}
}

func (h *Hints) storeFailed(ctx context.Context, err error) {
	llm.EmitTo(ctx, h.cfg.Observer, llm.Event{Kind: llm.EventLimit, Source: h.cfg.Name, Reason: FailOpen.String(), Err: err})
}

// Middleware returns a middleware for the deployment name. While name
// cools it fails fast with KindCircuitOpen and the time left as
// RetryAfter, without calling the deployment. When the deployment answers
// KindRateLimited with a RetryAfter, it publishes the cooldown. Put it
// around the deployment's client, inside retries: each attempt is then
// checked and each 429 published.
func (h *Hints) Middleware(name string) llm.Middleware {
	return func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			if u := h.CoolingUntil(ctx, name); !u.IsZero() {
				return nil, &llm.Error{Kind: llm.KindCircuitOpen, Provider: provider, RetryAfter: time.Until(u),
					Message: "deployment " + name + " is cooling down"}
			}
			resp, err := next.Generate(ctx, req)
			if ra := llm.RetryAfterOf(err); ra > 0 && llm.KindOf(err) == llm.KindRateLimited && !ownRefusal(err) {
				h.publish(ctx, name, ra, llm.KindRateLimited)
			}
			return resp, err
		})
	}
}

// ownRefusal reports whether err is a refusal by one of llmkit's own
// limiters, which says nothing about the deployment.
func ownRefusal(err error) bool {
	var e *llm.Error
	return errors.As(err, &e) && (e.Provider == provider || e.Provider == "resilience")
}

// publish starts or extends name's cooldown by d and reports it.
func (h *Hints) publish(ctx context.Context, name string, d time.Duration, cause llm.Kind) {
	d = min(d, h.cfg.MaxCooldown)
	h.CoolUntil(ctx, name, time.Now().Add(d))
	llm.EmitTo(ctx, h.cfg.Observer, llm.Event{Kind: llm.EventCooldown, Source: name, Delay: d, Reason: cause.String()})
}

// Observer returns an observer that publishes a cooldown of
// BreakerCooldown for name when it hears a breaker open. Give it to that
// deployment's breaker (resilience.BreakerConfig.Observer, or
// resilience.Config.Observer when its only breaker guards name).
func (h *Hints) Observer(name string) llm.Observer {
	return llm.ObserverFunc(func(ctx context.Context, ev llm.Event) {
		if ev.Kind == llm.EventBreakerState && ev.State == llm.BreakerOpen {
			h.publish(ctx, name, h.cfg.BreakerCooldown, llm.KindCircuitOpen)
		}
	})
}

// redisHints keeps each cooldown as a key that expires when it ends.
type redisHints struct {
	rdb     goredis.Cmdable
	prefix  string
	timeout time.Duration
}

// extendScript sets KEYS[1] to expire in ARGV[1] ms unless it already
// expires later: extend-only.
var extendScript = goredis.NewScript(`
local left = redis.call('PTTL', KEYS[1])
local d = tonumber(ARGV[1])
if left < d then
  redis.call('SET', KEYS[1], '1', 'PX', d)
  return d
end
return left
`)

func (s *redisHints) extend(ctx context.Context, name string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return s.wrap(extendScript.Run(ctx, s.rdb, []string{s.prefix + name}, int64(ms)).Err())
}

func (s *redisHints) remaining(ctx context.Context, name string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	d, err := s.rdb.PTTL(ctx, s.prefix+name).Result()
	if err != nil {
		return 0, s.wrap(err)
	}
	return max(d, 0), nil // -2: no key; -1: no expiry (never set so here)
}

func (s *redisHints) wrap(err error) error {
	if err == nil {
		return nil
	}
	kind := llm.KindOf(err)
	if kind != llm.KindTimeout {
		kind = llm.KindUnavailable
	}
	return llm.RedactError(&llm.Error{Kind: kind, Provider: provider, Message: "hint store failed", Err: err})
}
