package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/llmkit/llmkit/cache"
	cacheredis "github.com/llmkit/llmkit/cache/redis"
	"github.com/llmkit/llmkit/examples/internal/fromenv"
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/metrics"
	"github.com/llmkit/llmkit/provider/sim"
	"github.com/llmkit/llmkit/stack"
)

// maxBody bounds a /generate request body: llm.DefaultLimits' text plus
// room for the JSON around it.
var maxBody = llm.DefaultLimits.MaxContentBytes + 64<<10

// endpoints are the values of the "endpoint" field kept as metric labels;
// callers may send others, which are counted as "other".
var endpoints = []string{"chat", "summarize", "search", "classify"}

// serverConfig is what newServer builds from: the environment's settings
// and, for tests, a provider of their own.
type serverConfig struct {
	config
	// Provider overrides the environment's choice (tests use it); without
	// it, Getenv's (see fromenv.Provider), or the simulated model.
	Provider     llm.Client
	Getenv       func(string) string
	ProviderName string
	Model        string
	Logger       *slog.Logger
}

// server is the service's HTTP handler.
type server struct {
	cfg          config
	mux          *http.ServeMux
	stack        *stack.Stack
	store        *cache.Ristretto
	redis        *goredis.Client
	l2           *cacheredis.Store // nil without Redis
	redisBreaker atomic.Int32      // the l2 store's breaker state (llm.BreakerState)
	draining     atomic.Bool       // shutting down: /readyz answers 503
	started      time.Time
	provider     string
	model        string
}

func newServer(cfg serverConfig) (*server, error) {
	s := &server{cfg: cfg.config, provider: cfg.ProviderName, model: cfg.Model, started: time.Now()}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	provider := cfg.Provider
	if provider == nil && cfg.Getenv != nil {
		real, name, model, ok, err := fromenv.Provider(cfg.Getenv)
		if err != nil {
			return nil, err
		}
		if ok {
			provider, s.provider, s.model = real, name, model
		}
	}
	if provider == nil {
		provider, s.provider, s.model = sim.MustNew(sim.Config{}), "sim", sim.DefaultModel
	}
	var err error
	if s.store, err = cache.NewRistretto(cache.RistrettoConfig{MaxCost: 128 << 20}); err != nil {
		return nil, err
	}
	var store cache.Store = s.store
	if cfg.Redis != nil {
		// Shared across replicas: ristretto in front of Redis. Redis being
		// slow or down never fails a call (the store has its own breaker).
		opts := *cfg.Redis
		opts.ContextTimeoutEnabled = true
		opts.DialTimeout = cmp.Or(opts.DialTimeout, 200*time.Millisecond)
		opts.MaxRetries = cmp.Or(opts.MaxRetries, 1)
		s.redis = goredis.NewClient(&opts)
		if s.l2, err = cacheredis.New(s.redis, cacheredis.Config{AsyncWrites: 256, Prefix: cfg.RedisPrefix + "cache:",
			Observer: breakerWatch{&s.redisBreaker}}); err != nil {
			s.Close()
			return nil, err
		}
		if store, err = cache.NewTiered(s.store, s.l2); err != nil {
			s.Close()
			return nil, err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The Prometheus is built here, not by the stack, so that the per-key
	// limiter reports its decisions to it too.
	metricOpts := []metrics.Option{metrics.WithModels(s.model), metrics.WithEndpoints(endpoints...), metrics.WithLimiters(keyLimiterName)}
	if cfg.LatencyBuckets != nil {
		metricOpts = append(metricOpts, metrics.WithDurationBuckets(cfg.LatencyBuckets...))
	}
	prom, err := metrics.NewPrometheus(reg, metricOpts...)
	if err != nil {
		s.Close()
		return nil, err
	}
	var mws []llm.Middleware
	if cfg.Keys != nil {
		var rdb goredis.Cmdable
		if s.redis != nil {
			rdb = s.redis
		}
		limits, err := perKeyLimits(cfg.Keys.limits, rdb, cfg.RedisPrefix+"limit:", prom)
		if err != nil {
			s.Close()
			return nil, err
		}
		mws = append(mws, limits)
	}

	policies := cfg.Policies
	var cacheOpts []cache.Option
	if cfg.CacheNondeterministic {
		cacheOpts = append(cacheOpts, cache.WithNondeterministic())
	}
	if s.stack, err = stack.New(provider, stack.Config{
		ProviderName: s.provider,
		Models:       []string{s.model}, Endpoints: endpoints,
		Prometheus: prom, Logger: cfg.Logger, Store: store, Resilience: &policies,
		Middlewares: mws, CacheOptions: cacheOpts,
	}); err != nil {
		s.Close()
		return nil, err
	}

	generate := s.generate
	if cfg.Keys != nil {
		generate = cfg.Keys.requireKey(generate)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /generate", generate)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /statusz", s.statusz)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return s, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close releases the cache stores and the Redis client.
func (s *server) Close() {
	if s.stack != nil {
		s.stack.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.l2 != nil {
		s.l2.Close() // lets background writes finish
	}
	if s.redis != nil {
		_ = s.redis.Close()
	}
}

// generateRequest is the body of POST /generate.
type generateRequest struct {
	Prompt      string   `json:"prompt"`
	System      string   `json:"system,omitempty"`
	Model       string   `json:"model,omitempty"`
	MaxTokens   int      `json:"max_tokens,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	Endpoint    string   `json:"endpoint,omitempty"`
	Tenant      string   `json:"tenant,omitempty"`
	Stream      bool     `json:"stream,omitempty"`
}

type usageJSON struct {
	Input       int `json:"input"`
	Output      int `json:"output"`
	CachedInput int `json:"cached_input,omitempty"`
}

type generateResponse struct {
	Text           string    `json:"text,omitempty"`
	Model          string    `json:"model,omitempty"`
	FinishReason   string    `json:"finish_reason,omitempty"`
	Cached         bool      `json:"cached"`
	Degraded       bool      `json:"degraded"`
	DegradedReason string    `json:"degraded_reason,omitempty"`
	Usage          usageJSON `json:"usage"`
}

type errorJSON struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func (s *server) generate(w http.ResponseWriter, r *http.Request) {
	var in generateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, int64(maxBody)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, llm.BadRequest("request body over "+strconv.Itoa(maxBody)+" bytes"))
			return
		}
		writeError(w, http.StatusBadRequest, llm.BadRequest("invalid JSON body"))
		return
	}
	req := &llm.Request{
		Model: in.Model, System: in.System, Messages: []llm.Message{llm.User(in.Prompt)},
		MaxTokens: in.MaxTokens, Temperature: in.Temperature,
		Endpoint: in.Endpoint, Tenant: in.Tenant,
	}
	if tenant, ok := tenantOf(r.Context()); ok {
		req.Tenant = tenant // the key's tenant, whatever the body says
	}
	if req.Model == "" {
		req.Model = s.model
	}
	if in.Stream {
		s.stream(w, r, req)
		return
	}
	resp, err := s.stack.Generate(r.Context(), req)
	if err != nil {
		writeError(w, statusFor(err), err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(toJSON(resp))
}

// stream answers with Server-Sent Events: one "data" event per chunk
// ({"text": ...}), then an "done" event with the response's metadata, or
// an "error" event when the call fails after the stream began.
func (s *server) stream(w http.ResponseWriter, r *http.Request, req *llm.Request) {
	flusher, _ := w.(http.Flusher)
	started := false
	req.Stream = func(c llm.Chunk) error {
		if !started {
			started = true
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
		}
		if err := writeEvent(w, "", map[string]string{"text": c.Text}); err != nil {
			return err // the client went away: stop the call
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	resp, err := s.stack.Generate(r.Context(), req)
	switch {
	case err != nil && !started:
		writeError(w, statusFor(err), err)
	case err != nil:
		_ = writeEvent(w, "error", errorBody(err))
	default:
		if !started {
			w.Header().Set("Content-Type", "text/event-stream")
		}
		_ = writeEvent(w, "done", toJSON(resp))
	}
}

func writeEvent(w http.ResponseWriter, event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if event != "" {
		if _, err := fmt.Fprintf(w, "event: %s\n", event); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(w, "data: %s\n\n", b)
	return err
}

func toJSON(resp *llm.Response) generateResponse {
	out := generateResponse{
		Text: resp.Text, Model: resp.Model, FinishReason: string(resp.FinishReason),
		Cached: resp.Cached, Degraded: resp.Degraded,
		Usage: usageJSON{resp.Usage.InputTokens, resp.Usage.OutputTokens, resp.Usage.CachedInputTokens},
	}
	if resp.Degraded {
		out.DegradedReason = resp.DegradedReason.String()
	}
	return out
}

// statusFor maps a failure to the status this service answers with: the
// caller's own mistakes are 4xx, the provider's trouble is 502/503/504, and
// rate limits pass through as 429.
func statusFor(err error) int {
	switch llm.KindOf(err) {
	case llm.KindBadRequest, llm.KindContextLength:
		return http.StatusBadRequest
	case llm.KindContentFilter:
		return http.StatusUnprocessableEntity
	case llm.KindRateLimited:
		return http.StatusTooManyRequests
	case llm.KindCircuitOpen, llm.KindOverloaded:
		return http.StatusServiceUnavailable
	case llm.KindTimeout:
		return http.StatusGatewayTimeout
	case llm.KindCanceled:
		return 499 // the client closed the request; nobody reads this
	case llm.KindAuth, llm.KindUnavailable, llm.KindStreamCut:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

func errorBody(err error) map[string]errorJSON {
	// Error text is already redacted by llmkit; it is redacted again here
	// because this is where it leaves the process.
	return map[string]errorJSON{"error": {Kind: llm.KindOf(err).String(), Message: llm.Redact(err.Error())}}
}

func writeError(w http.ResponseWriter, status int, err error) {
	if ra := llm.RetryAfterOf(err); ra > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody(err))
}
