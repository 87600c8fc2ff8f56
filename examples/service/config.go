package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/resilience"
)

// config is the service's environment, read and checked once at start: a
// bad value stops the service with an error naming the variable, never a
// secret it holds.
type config struct {
	ListenAddr string
	PprofAddr  string // "" when off
	PprofToken string
	LogLevel   slog.Level

	// Redis, when set, shares the cache and the per-key limits across
	// replicas; RedisPrefix starts their keys (<prefix>cache:…,
	// <prefix>limit:…).
	Redis       *redis.Options
	RedisPrefix string

	// Policies are resilience.DefaultConfig() with the fallback texts and
	// timeouts the environment sets.
	Policies resilience.Config
	// CacheNondeterministic caches requests without a temperature too.
	CacheNondeterministic bool
	// LatencyBuckets replace the default llm_request_duration_seconds
	// buckets when set.
	LatencyBuckets []float64
	// DrainDelay is how long /readyz answers 503 before the listener stops
	// accepting, so that load balancers stop sending first.
	DrainDelay time.Duration
	// Keys are the API keys /generate accepts; nil leaves it open.
	Keys *keyring
}

// defaultPprofAddr lets the kernel pick a free loopback port, so that
// several replicas on one host never collide; the port is logged.
const defaultPprofAddr = "127.0.0.1:0"

// loadConfig reads the environment through getenv.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{ListenAddr: ":8000", PprofAddr: defaultPprofAddr, PprofToken: getenv("PPROF_TOKEN"),
		Policies: resilience.DefaultConfig()}
	var errs []error
	fail := func(name string, err error) { errs = append(errs, fmt.Errorf("%s: %w", name, err)) }

	if v := getenv("LISTEN_ADDR"); v != "" {
		c.ListenAddr = v
	}
	switch v := getenv("PPROF_ADDR"); v {
	case "":
	case "off":
		c.PprofAddr = ""
	default:
		c.PprofAddr = v
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			fail("LOG_LEVEL", errors.New("want debug, info, warn or error"))
		}
	}

	var err error
	if c.Redis, err = redisOptions(getenv("REDIS_URL"), getenv("REDIS_ADDR")); err != nil {
		errs = append(errs, err)
	}
	c.RedisPrefix = cmp.Or(getenv("REDIS_KEY_PREFIX"), "llmkit:")

	fb := *c.Policies.Fallback
	fb.ErrorMessage = getenv("FALLBACK_MESSAGE")
	fb.TimeoutMessage = getenv("FALLBACK_TIMEOUT_MESSAGE")
	c.Policies.Fallback = &fb
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{
		{"TIMEOUT_TOTAL", &c.Policies.Timeout.Total},
		{"TIMEOUT_ATTEMPT", &c.Policies.Timeout.Attempt},
		{"TIMEOUT_FIRST_CHUNK", &c.Policies.Timeout.FirstChunk},
		{"DRAIN_DELAY", &c.DrainDelay},
	} {
		if v := getenv(d.name); v != "" {
			if *d.to, err = time.ParseDuration(v); err != nil || *d.to < 0 {
				fail(d.name, errors.New("want a duration such as 30s or 2m"))
			}
		}
	}

	if v := getenv("CACHE_NONDETERMINISTIC"); v != "" {
		if c.CacheNondeterministic, err = strconv.ParseBool(v); err != nil {
			fail("CACHE_NONDETERMINISTIC", errors.New("want 1 or 0"))
		}
	}
	if v := getenv("LATENCY_BUCKETS"); v != "" {
		if c.LatencyBuckets, err = parseBuckets(v); err != nil {
			fail("LATENCY_BUCKETS", err)
		}
	}

	if c.Keys, err = loadKeys(getenv("LLMKIT_API_KEYS"), getenv("LLMKIT_API_KEYS_FILE")); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// redisOptions reads REDIS_URL (redis://[user:password@]host:port/db, as
// go-redis's ParseURL takes it) or REDIS_ADDR (host:port). Neither: nil.
// An error never holds the URL's password.
func redisOptions(rawURL, addr string) (*redis.Options, error) {
	switch {
	case rawURL != "" && addr != "":
		return nil, errors.New("REDIS_URL and REDIS_ADDR: set one, not both")
	case rawURL != "":
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %s: %s", redactURL(rawURL), redactIn(err.Error(), rawURL))
		}
		return o, nil
	case addr != "":
		if strings.Contains(addr, "://") {
			return nil, errors.New("REDIS_ADDR takes host:port; put a redis:// URL in REDIS_URL")
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return nil, fmt.Errorf("REDIS_ADDR %q: want host:port", addr)
		}
		return &redis.Options{Addr: addr}, nil
	}
	return nil, nil
}

// redactURL returns raw with its password replaced by "xxxxx", or a
// placeholder when raw does not parse (the password cannot be told apart
// then).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// redactIn replaces raw, and its password, in an error's text.
func redactIn(msg, raw string) string {
	msg = strings.ReplaceAll(msg, raw, redactURL(raw))
	if u, err := url.Parse(raw); err == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	} else if _, rest, ok := strings.Cut(raw, "://"); ok {
		// An unparsable URL's password cannot be found: drop everything
		// after the scheme that the message repeats.
		msg = strings.ReplaceAll(msg, rest, "…")
	}
	return msg
}

// parseBuckets reads comma-separated upper bounds in seconds, increasing.
func parseBuckets(v string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(v, ",") {
		b, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || b <= 0 {
			return nil, fmt.Errorf("%q is not a positive number of seconds", strings.TrimSpace(f))
		}
		if len(out) > 0 && b <= out[len(out)-1] {
			return nil, errors.New("bounds must increase")
		}
		out = append(out, b)
	}
	return out, nil
}
