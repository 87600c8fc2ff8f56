package limit

import (
	"context"
	"errors"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	goredis "github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/internal/breaker"
	"github.com/llmkit/llmkit/llm"
)

// decision is what the store answered: admitted (granted requests), or
// refused until retryAfter has passed.
type decision struct {
	admitted   bool
	granted    int
	retryAfter time.Duration
	at         int64 // Redis's clock at the decision, µs since the epoch
}

// store keeps the sliding logs. Each entry of a log is one reservation:
// an id, the time it was admitted, the requests and tokens it holds.
type store interface {
	// reserve admits reqs requests and toks tokens under key when the
	// window has room for them under rpm and tpm (0: unlimited). With
	// partial, fewer requests than reqs may be granted (a lease).
	reserve(ctx context.Context, key string, id int64, reqs, toks, rpm, tpm int, partial bool) (decision, error)
	// settle sets the reservation id to reqs and toks, the amounts really
	// used; an entry that already left the window is left alone.
	settle(ctx context.Context, key string, id int64, reqs, toks int) error
	breakerState() llm.BreakerState
}

// redisStore is the store on Redis: one Lua script per decision, behind a
// failsafe-go circuit breaker so that a dead Redis costs nothing per call.
type redisStore struct {
	rdb       goredis.Cmdable
	windowArg any // the window in µs, boxed once for every script call
	timeout   time.Duration
	name      string
	cb        circuitbreaker.CircuitBreaker[any]
	exec      failsafe.Executor[any]
}

func newRedisStore(cfg Config, changed func(context.Context, circuitbreaker.State)) *redisStore {
	s := &redisStore{rdb: cfg.Redis, windowArg: cfg.Window.Microseconds(), timeout: cfg.Timeout, name: cfg.Name}
	s.cb = circuitbreaker.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return err != nil }).
		WithFailureThreshold(uint(cfg.BreakerFailures)).
		WithDelay(cfg.BreakerCooldown).
		OnStateChanged(func(ev circuitbreaker.StateChangedEvent) { changed(ev.Context(), ev.NewState) }).
		Build()
	s.exec = failsafe.With(s.cb)
	return s
}

// keys returns the two keys of a log, its sorted set and its hash, as
// slices of one string: one allocation for both.
func keys(key string) []string {
	both := key + ":z" + key + ":h"
	n := len(key) + 2
	return []string{both[:n], both[n:]}
}

// reserveScript decides one call. KEYS: the log (a sorted set of ids by
// admission time, in µs of Redis's clock) and its hash (id → "reqs:toks",
// and the sums "#r" and "#t"). ARGV: id, reqs, toks, rpm, tpm, window µs,
// partial ("1": grant fewer requests than asked when only they fit). It
// returns {1, 0, requests granted, now} when admitted, else {0, µs until
// the oldest entries whose leaving makes room have left, 0, now}.
//
// It first forgets up to 256 entries that left the window; more stay
// counted until later decisions forget them, which can only refuse more,
// never admit more. The sums are read once and written with the entry,
// in one HSET: each redis.call costs Redis time.
var reserveScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[6])
local sums = redis.call('HMGET', KEYS[2], '#r', '#t')
local usedR, usedT = tonumber(sums[1] or 0), tonumber(sums[2] or 0)
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window, 'LIMIT', 0, 256)
if #old > 0 then
  local vals = redis.call('HMGET', KEYS[2], unpack(old))
  for _, v in ipairs(vals) do
    if v then
      local r, k = string.match(v, '^(%d+):(%d+)$')
      usedR, usedT = usedR - tonumber(r), usedT - tonumber(k)
    end
  end
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREM', KEYS[1], unpack(old))
end
local want, need = tonumber(ARGV[2]), tonumber(ARGV[3])
local rpm, tpm = tonumber(ARGV[4]), tonumber(ARGV[5])
if ARGV[7] == '1' and rpm > 0 and usedR < rpm and usedR + want > rpm then
  want = rpm - usedR
end
local function fits(fr, ft)
  return (rpm == 0 or usedR - fr + want <= rpm) and (tpm == 0 or usedT - ft + need <= tpm)
end
if not fits(0, 0) then
  if #old > 0 then
    redis.call('HSET', KEYS[2], '#r', usedR, '#t', usedT)
  end
  local wait = window
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 127, 'WITHSCORES')
  local fr, ft = 0, 0
  for i = 1, #oldest, 2 do
    local v = redis.call('HGET', KEYS[2], oldest[i])
    if v then
      local r, k = string.match(v, '^(%d+):(%d+)$')
      fr, ft = fr + tonumber(r), ft + tonumber(k)
    end
    wait = tonumber(oldest[i + 1]) + window - now
    if fits(fr, ft) then break end
  end
  return {0, math.max(wait, 1), 0, now}
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], want .. ':' .. need, '#r', usedR + want, '#t', usedT + need)
local ttl = math.floor(window / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, 0, want, now}
`)

// settleScript sets one reservation to what was used. KEYS as
// reserveScript's; ARGV: id, reqs, toks. It returns 0 when the entry had
// already left the window.
var settleScript = goredis.NewScript(`
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then return 0 end
local r, k = string.match(v, '^(%d+):(%d+)$')
local nr, nt = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], nr .. ':' .. nt)
redis.call('HINCRBY', KEYS[2], '#r', nr - tonumber(r))
redis.call('HINCRBY', KEYS[2], '#t', nt - tonumber(k))
return 1
`)

// do runs cmd through the breaker, bounded by the timeout and detached
// from the caller's cancellation: the outcome is Redis's own, which is
// what the breaker counts.
//
// The command returns its error only: a reply it writes to a variable of
// the caller's, which costs no boxing.
func (s *redisStore) do(ctx context.Context, cmd func(context.Context) error) error {
	ctx = context.WithoutCancel(ctx)
	_, err := s.exec.WithContext(ctx).Get(func() (any, error) {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		return nil, cmd(cctx)
	})
	return err
}

func (s *redisStore) reserve(ctx context.Context, key string, id int64, reqs, toks, rpm, tpm int, partial bool) (decision, error) {
	p := 0
	if partial {
		p = 1
	}
	var r []int64
	err := s.do(ctx, func(ctx context.Context) (err error) {
		r, err = reserveScript.Run(ctx, s.rdb, keys(key), id, reqs, toks, rpm, tpm, s.windowArg, p).Int64Slice()
		return err
	})
	if err != nil {
		return decision{}, s.storeError(err)
	}
	if len(r) != 4 {
		return decision{}, s.storeError(errors.New("unexpected script reply"))
	}
	return decision{admitted: r[0] == 1, retryAfter: time.Duration(r[1]) * time.Microsecond, granted: int(r[2]), at: r[3]}, nil
}

func (s *redisStore) settle(ctx context.Context, key string, id int64, reqs, toks int) error {
	err := s.do(ctx, func(ctx context.Context) error {
		return settleScript.Run(ctx, s.rdb, keys(key), id, reqs, toks).Err()
	})
	if err != nil {
		return s.storeError(err)
	}
	return nil
}

func (s *redisStore) breakerState() llm.BreakerState { return breaker.State(s.cb.State()) }

// storeError wraps a Redis failure as an *llm.Error of KindUnavailable
// (or KindTimeout). The text of a Redis error holds no key or value.
func (s *redisStore) storeError(err error) error {
	kind := llm.KindOf(err)
	if kind != llm.KindTimeout {
		kind = llm.KindUnavailable
	}
	return llm.RedactError(&llm.Error{Kind: kind, Provider: s.name, Message: "limit store failed", Err: err})
}
