package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"github.com/zeebo/xxh3"

	"github.com/llmkit/llmkit/llm"
)

// ReferenceConfig configures a Reference.
type ReferenceConfig struct {
	// Registry receives the four metrics. Required.
	Registry prometheus.Registerer
	// Models and Endpoints are the label values kept; any other value is
	// counted as "other".
	Models, Endpoints []string
	// AttemptTimeout bounds each attempt; 0 means one minute.
	AttemptTimeout time.Duration
	// BaseDelay is the first retry's backoff ceiling, doubled for each
	// retry after it; 0 means 500 ms.
	BaseDelay time.Duration
}

// Reference is the stack a Go engineer would write by hand with the same
// layers as llmkit's default stack, to measure llmkit against. Its layers,
// outermost first:
//
//   - metrics: client_golang vectors under llmkit's names and label sets
//     (llm_requests_total, llm_request_duration_seconds,
//     llm_active_requests, llm_tokens_total), children resolved with
//     WithLabelValues on each call;
//   - cache: a sync.Map keyed by a 128-bit hash (XXH3, as llmkit's keys) of
//     the fields that change the answer and of the tenant, deterministic
//     requests only, with a TTL;
//   - retry: up to 3 attempts of retryable errors, exponential backoff
//     with full jitter, Retry-After honoured, every wait cancellable;
//   - circuit breaker: sony/gobreaker, tripped by 5 consecutive retryable
//     failures;
//   - timeout: context.WithTimeout around each attempt.
//
// It has no fallback, traces, logs, profiling labels, request validation,
// coalescing of identical misses nor bound on the cache's size: it is the
// floor llmkit's cost is compared with, not a rival. It is safe for
// concurrent use.
type Reference struct {
	next    llm.Client
	cfg     ReferenceConfig
	breaker *gobreaker.CircuitBreaker[*llm.Response]
	cache   sync.Map // xxh3.Uint128 → *refEntry

	models, endpoints map[string]bool

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	active   prometheus.Gauge
	tokens   *prometheus.CounterVec
}

// The reference's fixed settings.
const (
	refTTL         = 10 * time.Minute
	refMaxAttempts = 3
	refMaxDelay    = 30 * time.Second
)

type refEntry struct {
	resp    *llm.Response
	expires time.Time
}

var _ llm.Client = (*Reference)(nil)

// NewReference builds a Reference around provider and registers its
// metrics in cfg.Registry.
func NewReference(provider llm.Client, cfg ReferenceConfig) (*Reference, error) {
	if provider == nil || cfg.Registry == nil {
		return nil, errors.New("bench: NewReference needs a provider and a Registry")
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = time.Minute
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = 500 * time.Millisecond
	}
	r := &Reference{
		next: provider,
		cfg:  cfg,
		breaker: gobreaker.NewCircuitBreaker[*llm.Response](gobreaker.Settings{
			Name:        "llm",
			Timeout:     30 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
			// Only the provider's own failures count against it: a bad
			// request or a caller's cancellation says nothing of its health.
			IsSuccessful: func(err error) bool { return err == nil || !llm.Retryable(err) },
		}),
		models:    set(cfg.Models),
		endpoints: set(cfg.Endpoints),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llm_requests_total",
			Help: "LLM calls by final outcome: status is ok, degraded or the error kind.",
		}, []string{"endpoint", "model", "status"}),
		// Classic buckets for LLM calls and a native histogram beside them,
		// as llmkit exports.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "llm_request_duration_seconds",
			Help:                            "Duration of LLM calls, retries and waits included.",
			Buckets:                         []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"endpoint", "model"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "llm_active_requests",
			Help: "LLM calls in flight.",
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llm_tokens_total",
			Help: "Tokens reported by the provider, by type (input, output, cached_input).",
		}, []string{"type"}),
	}
	for _, c := range []prometheus.Collector{r.requests, r.duration, r.active, r.tokens} {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func set(values []string) map[string]bool {
	m := make(map[string]bool, len(values))
	for _, v := range values {
		m[v] = true
	}
	return m
}

func label(v string, known map[string]bool) string {
	if known[v] {
		return v
	}
	return "other"
}

// Generate is the metrics layer, the outermost: every call counts, hits
// included.
func (r *Reference) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	start := time.Now()
	r.active.Inc()
	defer r.active.Dec()

	resp, err := r.cached(ctx, req)

	endpoint, model := label(req.Endpoint, r.endpoints), label(req.Model, r.models)
	status := "ok"
	if err != nil {
		status = llm.KindOf(err).String()
	}
	r.requests.WithLabelValues(endpoint, model, status).Inc()
	r.duration.WithLabelValues(endpoint, model).Observe(time.Since(start).Seconds())
	if err == nil && !resp.Cached {
		r.tokens.WithLabelValues("input").Add(float64(resp.Usage.InputTokens))
		r.tokens.WithLabelValues("output").Add(float64(resp.Usage.OutputTokens))
		if resp.Usage.CachedInputTokens > 0 {
			r.tokens.WithLabelValues("cached_input").Add(float64(resp.Usage.CachedInputTokens))
		}
	}
	return resp, err
}

// cached is the cache layer. A hit returns a copy the caller owns, marked
// Cached; a complete answer to a deterministic request is stored as a copy
// of its own.
func (r *Reference) cached(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	key, ok := cacheKey(req)
	if !ok {
		return r.retry(ctx, req)
	}
	if req.Cache&llm.CacheSkipRead == 0 {
		if v, found := r.cache.Load(key); found {
			e := v.(*refEntry)
			if time.Now().Before(e.expires) {
				hit := e.resp.Clone()
				hit.Cached = true
				return hit, nil
			}
			r.cache.CompareAndDelete(key, v)
		}
	}
	resp, err := r.retry(ctx, req)
	if err == nil && req.Cache&llm.CacheSkipStore == 0 && resp.FinishReason.Complete() {
		r.cache.Store(key, &refEntry{resp: resp.Clone(), expires: time.Now().Add(refTTL)})
	}
	return resp, err
}

// cacheKey hashes every field of req that changes the answer, each
// length-prefixed so that no two requests share an encoding, and the
// tenant. ok is false for a request that is not cached: streamed, not
// deterministic (temperature unset or above 0), or with Extra values that
// do not encode.
func cacheKey(req *llm.Request) (key xxh3.Uint128, ok bool) {
	if req.Stream != nil || req.Temperature == nil || *req.Temperature != 0 || req.Cache == llm.CacheBypass {
		return key, false
	}
	b := make([]byte, 0, 512)
	b = appendString(b, req.Tenant)
	b = appendString(b, req.Model)
	b = appendString(b, req.System)
	b = binary.AppendUvarint(b, uint64(len(req.Messages)))
	for _, m := range req.Messages {
		b = appendString(b, string(m.Role))
		b = appendString(b, m.Content)
	}
	b = binary.AppendVarint(b, int64(req.MaxTokens))
	b = appendFloat(b, req.Temperature)
	b = appendFloat(b, req.TopP)
	if req.Seed != nil {
		b = append(b, 1)
		b = binary.AppendVarint(b, *req.Seed)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(req.Stop)))
	for _, s := range req.Stop {
		b = appendString(b, s)
	}
	if len(req.Extra) > 0 {
		extra, err := json.Marshal(req.Extra) // sorts the keys
		if err != nil {
			return key, false
		}
		b = appendString(b, string(extra))
	}
	return xxh3.Hash128(b), true
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendFloat(b []byte, f *float64) []byte {
	if f == nil {
		return append(b, 0)
	}
	return binary.LittleEndian.AppendUint64(append(b, 1), math.Float64bits(*f))
}

// retry is the retry layer: retryable failures are tried again after a
// backoff, up to refMaxAttempts attempts in all.
func (r *Reference) retry(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := r.breaker.Execute(func() (*llm.Response, error) {
			return r.attempt(ctx, req)
		})
		if err == nil {
			return resp, nil
		}
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			return nil, &llm.Error{Kind: llm.KindCircuitOpen, Provider: "reference", Err: err}
		}
		if attempt == refMaxAttempts || !llm.Retryable(err) {
			return nil, err
		}
		if err := wait(ctx, r.backoff(attempt, llm.RetryAfterOf(err))); err != nil {
			return nil, err
		}
	}
}

// backoff returns the wait before attempt+1: full jitter over an
// exponential ceiling, or the provider's Retry-After when it is longer,
// capped either way.
func (r *Reference) backoff(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := min(r.cfg.BaseDelay<<(attempt-1), refMaxDelay)
	d := rand.N(ceiling) + 1
	if retryAfter > d {
		d = min(retryAfter, refMaxDelay)
	}
	return d
}

// wait sleeps for d or until ctx is done.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return llm.FromContext(ctx, "reference")
	}
}

// attempt is the timeout layer: each attempt gets its own deadline.
func (r *Reference) attempt(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
	defer cancel()
	resp, err := r.next.Generate(ctx, req)
	if err != nil && ctx.Err() != nil {
		// Whatever the provider returned, the deadline or the caller's
		// cancellation is what happened.
		return nil, llm.FromContext(ctx, "reference")
	}
	return resp, err
}
