// Package stack builds llmkit's recommended stack around a provider in one
// call, outermost first:
//
//	OTel → Prometheus → Log → health → pprof labels → slow-call capture →
//	your middlewares → validation → cache → resilience → provider
//
// Observability is outermost, so it sees every call, hits and fallbacks
// included. The cache sits outside resilience: a hit costs no limiter
// permit or breaker probe, and nothing a fallback produced is stored.
// New wires the counting observers (Prometheus, health) into the cache and
// resilience, which is the one thing a hand-built stack must not forget.
package stack

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmkit/llmkit/cache"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/metrics"
	"github.com/llmkit/llmkit/profiling"
	"github.com/llmkit/llmkit/resilience"
)

// Config says where the stack's telemetry goes and how it is tuned. Only
// Registry is required; every other zero field takes the default named.
type Config struct {
	// Registry receives the Prometheus metrics: prometheus.DefaultRegisterer
	// for the global one. Required unless Prometheus is set, so that
	// nothing registers globally by surprise.
	Registry prometheus.Registerer
	// Models and Endpoints are the label values metrics and profiles keep;
	// others are counted as "other".
	Models, Endpoints []string
	// ProviderName names the provider in traces ("openai", "anthropic").
	ProviderName string
	// TracerProvider receives spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// Logger receives one line per call; nil means slog.Default().
	Logger *slog.Logger
	// Store keeps cached answers; nil means an in-process ristretto store
	// of 64 MiB, closed by Close.
	Store cache.Store
	// NoCache leaves the cache out.
	NoCache bool
	// CacheTTL and CacheGrace: how long answers are served fresh, and for
	// how long after that they may stand in, degraded, for a failing
	// provider. Defaults 10 minutes and 1 hour.
	CacheTTL, CacheGrace time.Duration
	// Resilience configures the policies; nil means
	// resilience.DefaultConfig() (rate limits and bulkheads depend on the
	// provider's quota and the service's load: size them here). Its Fallback,
	// when set, also serves the cache's stale entries. Its Observer, if
	// any, hears the events as well as the stack's own observers.
	Resilience *resilience.Config
	// Capturer, when set, saves a runtime trace (or CPU profile) around
	// slow calls.
	Capturer *profiling.Capturer
	// Middlewares are decorators of your own, placed inside the metrics,
	// logs and traces (which see what they do) and outside the cache.
	Middlewares []llm.Middleware
	// Observer, when set, hears every event of the cache and resilience,
	// as the stack's Prometheus metrics and health do.
	Observer llm.Observer
	// CacheOptions are added after the stack's own cache options (TTL,
	// grace, observer): cache.WithNondeterministic(), say.
	CacheOptions []cache.Option
	// MetricsOptions are added after the stack's own Prometheus options
	// (models, endpoints): metrics.WithDurationBuckets(...), say.
	MetricsOptions []metrics.Option
	// Prometheus, instead of Registry and MetricsOptions, is a Prometheus
	// you built, so that what you build before the stack (a router, a
	// shared limiter) can report to it too: give it to them as their
	// Observer, with metrics.WithDeployments or WithLimiters naming them.
	Prometheus *metrics.Prometheus
}

// Stack is the built client (embedded: call Generate on the Stack) and
// what an operator reads.
type Stack struct {
	llm.Client
	// Health is the readiness handler (an http.Handler) fed by the stack.
	Health *metrics.Health
	owned  *cache.Ristretto
}

// New builds the stack around provider. It returns the first invalid
// setting as an error and builds nothing in that case.
func New(provider llm.Client, cfg Config) (*Stack, error) {
	if provider == nil {
		return nil, errors.New("stack: provider is nil")
	}
	if cfg.Prometheus != nil && (cfg.Registry != nil || cfg.MetricsOptions != nil) {
		return nil, errors.New("stack: set Config.Prometheus or Registry and MetricsOptions, not both")
	}
	if cfg.Registry == nil && cfg.Prometheus == nil {
		return nil, errors.New("stack: Config.Registry is required (prometheus.DefaultRegisterer for the global one)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	prom := cfg.Prometheus
	if prom == nil {
		opts := append([]metrics.Option{metrics.WithModels(cfg.Models...), metrics.WithEndpoints(cfg.Endpoints...)}, cfg.MetricsOptions...)
		var err error
		if prom, err = metrics.NewPrometheus(cfg.Registry, opts...); err != nil {
			return nil, err
		}
	}
	var otelOpts []metrics.Option
	if cfg.ProviderName != "" {
		otelOpts = append(otelOpts, metrics.WithProviderName(cfg.ProviderName))
	}
	if cfg.TracerProvider != nil {
		otelOpts = append(otelOpts, metrics.WithTracerProvider(cfg.TracerProvider))
	}
	traces, err := metrics.OTel(otelOpts...)
	if err != nil {
		return nil, err
	}
	logs, err := metrics.Log(cfg.Logger)
	if err != nil {
		return nil, err
	}
	st := &Stack{}
	if st.Health, err = metrics.NewHealth(); err != nil {
		return nil, err
	}
	labels, err := profiling.Labels(profiling.Endpoints(cfg.Endpoints...), profiling.Models(cfg.Models...))
	if err != nil {
		return nil, err
	}
	obs := llm.MultiObserver(prom, st.Health, cfg.Observer)

	rc := resilience.DefaultConfig()
	if cfg.Resilience != nil {
		rc = *cfg.Resilience
	}
	rc.Observer = llm.MultiObserver(obs, rc.Observer)

	var responses llm.Middleware
	if !cfg.NoCache {
		c, owned, err := newCache(cfg, obs)
		if err != nil {
			return nil, err
		}
		st.owned = owned
		responses = c.Middleware()
		if rc.Fallback != nil {
			fb := *rc.Fallback
			fb.Stale = c.Stale
			rc.Fallback = &fb
		}
	}
	policies, err := resilience.New(rc)
	if err != nil {
		st.Close()
		return nil, err
	}
	var capture llm.Middleware
	if cfg.Capturer != nil {
		capture = cfg.Capturer.Middleware
	}
	mws := []llm.Middleware{traces, prom.Middleware(), logs, st.Health.Middleware(), labels, capture}
	mws = append(mws, cfg.Middlewares...)
	mws = append(mws, llm.Validate(llm.Limits{}), responses, policies)
	st.Client = llm.Wrap(provider, mws...)
	return st, nil
}

// newCache builds the cache over cfg.Store, or over a ristretto store of
// its own that the Stack closes.
func newCache(cfg Config, obs llm.Observer) (*cache.Cache, *cache.Ristretto, error) {
	ttl, grace := cfg.CacheTTL, cfg.CacheGrace
	if ttl == 0 {
		ttl = 10 * time.Minute
	}
	if grace == 0 {
		grace = time.Hour
	}
	store, owned := cfg.Store, (*cache.Ristretto)(nil)
	if store == nil {
		var err error
		if owned, err = cache.NewRistretto(cache.RistrettoConfig{MaxCost: 64 << 20}); err != nil {
			return nil, nil, err
		}
		store = owned
	}
	opts := append([]cache.Option{cache.WithTTL(ttl), cache.WithGrace(grace), cache.WithObserver(obs)}, cfg.CacheOptions...)
	c, err := cache.New(store, opts...)
	if err != nil && owned != nil {
		owned.Close()
	}
	return c, owned, err
}

// Close releases what New built itself (the default cache store). It does
// not close a Store or Capturer passed in Config.
func (st *Stack) Close() error {
	if st.owned != nil {
		st.owned.Close()
	}
	return nil
}
