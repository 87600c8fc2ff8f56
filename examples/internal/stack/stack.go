// Package stack builds llmkit's recommended stack for the example programs
// (the demo and the service), so that both show the same composition:
//
//	OTel → Prometheus → Log → health → pprof labels → slow-call capture →
//	cache → resilience → provider
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

// Config says what the stack is built around and where its telemetry goes.
type Config struct {
	// Provider answers the calls; ProviderName names it in traces.
	Provider     llm.Client
	ProviderName string
	// Models and Endpoints are the label values metrics and profiles keep;
	// others are counted as "other".
	Models    []string
	Endpoints []string
	// Registry receives the Prometheus metrics. Required.
	Registry prometheus.Registerer
	// TracerProvider receives spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// Logger receives one line per call at its level; nil means
	// slog.Default().
	Logger *slog.Logger
	// Store keeps cached answers; nil means an in-process ristretto store
	// of 64 MiB, closed by Stack.Close.
	Store cache.Store
	// CacheTTL and CacheGrace: how long answers are served fresh, and for
	// how long after that they can stand in, degraded, for a failing
	// provider. Defaults 10 minutes and 1 hour.
	CacheTTL, CacheGrace time.Duration
	// Capturer, when set, saves a runtime trace (or CPU profile) around
	// slow calls; it sits beside the pprof labels.
	Capturer *profiling.Capturer
	// Resilience configures the policies; nil means
	// resilience.DefaultConfig() with a bulkhead of 256 calls. Its fallback,
	// when set, gets the cache's stale entries.
	Resilience *resilience.Config
}

// Stack is the built client and the parts an operator reads.
type Stack struct {
	Client llm.Client
	Health *metrics.Health
	owned  *cache.Ristretto
}

// New builds the stack.
func New(cfg Config) (*Stack, error) {
	if cfg.Provider == nil || cfg.Registry == nil {
		return nil, errors.New("stack: Provider and Registry are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 10 * time.Minute
	}
	if cfg.CacheGrace == 0 {
		cfg.CacheGrace = time.Hour
	}
	st := &Stack{}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()

	// Observability outermost: it sees every call, hits and fallbacks too.
	prom, err := metrics.Prometheus(cfg.Registry, metrics.WithEndpoints(cfg.Endpoints...), metrics.WithModels(cfg.Models...))
	if err != nil {
		return nil, err
	}
	otelOpts := []metrics.OTelOption{metrics.WithProviderName(cfg.ProviderName)}
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
	if st.Health, err = metrics.NewHealth(); err != nil {
		return nil, err
	}
	labels, err := profiling.Labels(profiling.Endpoints(cfg.Endpoints...), profiling.Models(cfg.Models...))
	if err != nil {
		return nil, err
	}

	// The cache, outside resilience: a hit costs no limiter permit or
	// breaker probe, and nothing a fallback produced is stored.
	store := cfg.Store
	if store == nil {
		if st.owned, err = cache.NewRistretto(cache.RistrettoConfig{MaxCost: 64 << 20}); err != nil {
			return nil, err
		}
		store = st.owned
	}
	c, err := cache.New(store, cache.WithTTL(cfg.CacheTTL), cache.WithGrace(cfg.CacheGrace))
	if err != nil {
		return nil, err
	}

	var rc resilience.Config
	if cfg.Resilience != nil {
		rc = *cfg.Resilience
	} else {
		rc = resilience.DefaultConfig()
		rc.Bulkhead = &resilience.BulkheadConfig{MaxConcurrent: 256, MaxWait: time.Second}
	}
	if rc.Fallback != nil {
		fb := *rc.Fallback
		fb.Stale = c.Stale
		rc.Fallback = &fb
	}
	policies, err := resilience.New(rc)
	if err != nil {
		return nil, err
	}

	var capture llm.Middleware
	if cfg.Capturer != nil {
		capture = cfg.Capturer.Middleware
	}
	st.Client = llm.Wrap(cfg.Provider, traces, prom, logs, st.Health.Middleware(), labels, capture, c.Middleware(), policies)
	ok = true
	return st, nil
}

// Close releases what New built itself (the default cache store).
func (st *Stack) Close() {
	if st.owned != nil {
		st.owned.Close()
	}
}
