package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmkit/llmkit/llm"
)

// The family names without their namespace, in MetricNames order.
var promNames = strings.Fields(`requests_total request_duration_seconds active_requests tokens_total
	time_to_first_token_seconds provider_calls_total retries_total cache_requests_total cache_bypass_total
	circuit_breaker_state fallbacks_total rate_limited_total quota_remaining quota_updated_timestamp_seconds
	router_requests_total router_deployment_cooling limiter_decisions_total limiter_tokens_total`)

// MetricNames returns the name of every family a Prometheus exports under
// namespace ("" means "llm"). Histograms are listed by family name; their
// series add _bucket, _sum and _count.
func MetricNames(namespace string) []string {
	out := make([]string, len(promNames))
	for i, n := range promNames {
		out[i] = prometheus.BuildFQName(cmp.Or(namespace, "llm"), "", n)
	}
	return out
}

// The bounded label values of the families without a pair label.
var (
	tokenTypes    = []string{"input", "output", "cached_input"}
	cacheResults  = []string{"hit", "miss", "stale", "coalesced", "bypass", "error"}
	cacheKinds    = []llm.EventKind{llm.EventCacheHit, llm.EventCacheMiss, llm.EventCacheStale, llm.EventCacheCoalesced, 0, llm.EventCacheError}
	rejectReasons = []string{"rate_limit", "bulkhead", "adaptive_limit", "budget", Other}
	// bypassReasons: why the cache did not look a request up (see
	// llm.EventCacheMiss); the cache package's older "bypass" is Other.
	bypassReasons = []string{"nondeterministic", "opted_out", "skip_read", "no_key", Other}
)

// cacheBypass is the cacheResults index of "bypass".
var cacheBypass = slices.Index(cacheResults, "bypass")

// cacheResult returns the cacheResults index of a cache lookup event, or
// -1. The cache reports a lookup it skipped as a miss with a Reason.
func cacheResult(ev llm.Event) int {
	if ev.Kind == llm.EventCacheMiss && ev.Reason != "" {
		return cacheBypass
	}
	return slices.Index(cacheKinds, ev.Kind)
}

// bypassReason returns the bypassReasons index of a bypass's Reason.
func bypassReason(reason string) int {
	if i := slices.Index(bypassReasons, reason); i >= 0 {
		return i
	}
	return len(bypassReasons) - 1 // Other
}

// Prometheus records the llm_* metrics in client_golang vectors. Its
// Middleware counts each call: outcome, duration, time to first token,
// tokens, quota. Observe counts what the decorators it is given to report
// (attempts, retries, cache results, breakers, fallbacks, rejections):
// give it to the cache and to resilience at their construction, as
// stack.New does. The middleware does not put it on the calls' contexts,
// so each event counts once. It is safe for concurrent use.
type Prometheus struct {
	cfg                         *config
	endpoints, models, breakers *labelSet
	pairs                       []atomic.Pointer[pair] // see slot

	requests       *prometheus.CounterVec
	duration, ttft *histogramVec
	active         prometheus.Gauge
	breaker        *prometheus.GaugeVec
	quota          *quotaVec
	retries        prometheus.Counter
	tokens         []prometheus.Counter // by tokenTypes index
	calls          []prometheus.Counter // by status index
	cache          []prometheus.Counter // by cacheResults index
	bypass         []prometheus.Counter // by bypassReasons index
	fallbacks      []prometheus.Counter // by llm.Kind
	rejected       []prometheus.Counter // by rejectReasons index
	rt             routing              // the router's and shared limiters' families

	// sawAttempt is set by the first EventAttempt: from then on attempts
	// are reported, and a call no longer counts as one by itself.
	sawAttempt atomic.Bool
}

var _ llm.Observer = (*Prometheus)(nil)

// pair holds the children of one (endpoint, model) label pair.
type pair struct {
	requests       []prometheus.Counter // by status index
	duration, ttft prometheus.Observer
}

// NewPrometheus registers the llm_* families in reg and resolves their
// children: with allow-lists (WithModels, WithEndpoints) every series
// exists, at 0, from the start; otherwise a pair's appear with its first
// call. Families already in reg (from an earlier NewPrometheus) are
// reused; other histogram settings, or a clash with another collector,
// are an error that leaves nothing registered.
func NewPrometheus(reg prometheus.Registerer, opts ...Option) (*Prometheus, error) {
	if reg == nil {
		return nil, errors.New("metrics: NewPrometheus needs a Registerer")
	}
	cfg, err := newConfig(forPrometheus, opts)
	if err != nil {
		return nil, err
	}
	p := &Prometheus{
		cfg:       cfg,
		endpoints: newLabelSet(cfg.endpoints, cfg.maxEndpoints, "none"),
		models:    newLabelSet(cfg.models, cfg.maxModels, "default"),
		breakers:  newLabelSet(nil, maxBreakers, "default"),
	}
	o := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: cfg.namespace, Name: name, Help: help}
	}
	counters := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(o(name, help)), labels)
	}
	r := &registrar{reg: reg}
	p.requests = register(r, counters("requests_total", "LLM calls by final outcome: status is ok, degraded or the error kind.", "endpoint", "model", "status"))
	p.duration = register(r, newHistogramVec(cfg, "request_duration_seconds", "Duration of LLM calls, retries and waits included.", cfg.durBuckets))
	p.active = register(r, prometheus.NewGauge(prometheus.GaugeOpts(o("active_requests", "LLM calls in flight."))))
	tokens := register(r, counters("tokens_total", "Tokens reported by the provider, by type (input, output, cached_input).", "type"))
	p.ttft = register(r, newHistogramVec(cfg, "time_to_first_token_seconds", "Time from the start of a streamed call to its first chunk.", cfg.ttftBuckets))
	calls := register(r, counters("provider_calls_total", "Provider attempts (retries and hedges included) by outcome.", "status"))
	p.retries = register(r, prometheus.NewCounter(prometheus.CounterOpts(o("retries_total", "Retries scheduled."))))
	cache := register(r, counters("cache_requests_total", "Requests through the cache by result (hit, miss, stale, coalesced, bypass, error).", "result"))
	bypass := register(r, counters("cache_bypass_total", "Requests the cache did not look up, by reason (nondeterministic, opted_out, skip_read, no_key, other).", "reason"))
	p.breaker = register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts(o("circuit_breaker_state",
		"Circuit breaker state: 0 closed, 1 half-open, 2 open.")), []string{"name"}))
	fallbacks := register(r, counters("fallbacks_total", "Answers produced by a fallback, by the kind of error that triggered it.", "reason"))
	rejected := register(r, counters("rate_limited_total", "Calls refused by a client-side limiter, by reason (rate_limit, bulkhead, adaptive_limit, budget).", "reason"))
	updated := register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts(o("quota_updated_timestamp_seconds",
		"Unix time of the last report of llm_quota_remaining, by kind; gone with it.")), []string{"kind"}))
	p.quota = register(r, &quotaVec{GaugeVec: prometheus.NewGaugeVec(prometheus.GaugeOpts(o("quota_remaining",
		"Remaining provider quota from its rate-limit headers, by kind (requests, tokens); gone at its reset.")), []string{"kind"}), updated: updated})
	p.rt.register(r, cfg)
	if r.err == nil && (!slices.Equal(p.duration.buckets, cfg.durBuckets) || !slices.Equal(p.ttft.buckets, cfg.ttftBuckets) || p.duration.factor != cfg.nativeFactor) {
		r.err = fmt.Errorf("metrics: the %s_* histograms in this registry have other buckets or native-histogram settings", cfg.namespace)
	}
	if r.err != nil {
		r.undo()
		return nil, r.err
	}

	p.tokens = children(tokenTypes, tokens.WithLabelValues)
	p.calls = children(statusNames, calls.WithLabelValues)
	calls.DeleteLabelValues(statusNames[statusDegraded]) // an attempt is never degraded
	p.cache = children(cacheResults, cache.WithLabelValues)
	p.bypass = children(bypassReasons, bypass.WithLabelValues)
	p.rt.resolve()
	p.rejected = children(rejectReasons, rejected.WithLabelValues)
	p.fallbacks = children(statusNames[statusKinds:], fallbacks.WithLabelValues)
	p.pairs = make([]atomic.Pointer[pair], p.endpoints.size*p.models.size)
	for i := range p.pairs {
		if p.endpoints.fixed && p.models.fixed {
			p.slot(i)
		}
	}
	return p, nil
}

// children resolves one child per label value.
func children[M any](values []string, with func(...string) M) []M {
	out := make([]M, len(values))
	for i, v := range values {
		out[i] = with(v)
	}
	return out
}

// registrar registers collectors, and can take back what it registered.
type registrar struct {
	reg  prometheus.Registerer
	done []prometheus.Collector
	err  error
}

// register registers c, or returns the collector of c's type already
// registered with the same descriptors.
func register[C prometheus.Collector](r *registrar, c C) C {
	if r.err != nil {
		return c
	}
	err := r.reg.Register(c)
	if err == nil {
		r.done = append(r.done, c)
		return c
	}
	if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
		if got, ok := are.ExistingCollector.(C); ok {
			return got
		}
		err = fmt.Errorf("a %T has the same name: %w", are.ExistingCollector, err)
	}
	r.err = fmt.Errorf("metrics: registering: %w", err)
	return c
}

func (r *registrar) undo() {
	for _, c := range r.done {
		r.reg.Unregister(c)
	}
}

// histogramVec is a HistogramVec that remembers its settings, so that a
// NewPrometheus that finds it registered can tell whether they are its own.
type histogramVec struct {
	*prometheus.HistogramVec
	buckets []float64
	factor  float64
}

func newHistogramVec(cfg *config, name, help string, buckets []float64) *histogramVec {
	return &histogramVec{
		HistogramVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: cfg.namespace, Name: name, Help: help, Buckets: buckets,
			NativeHistogramBucketFactor:     cfg.nativeFactor,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"endpoint", "model"}),
		buckets: buckets,
		factor:  cfg.nativeFactor,
	}
}

// slot returns the children of pair i (endpoint index × models.size +
// model index), resolved the first time.
func (p *Prometheus) slot(i int) *pair {
	if s := p.pairs[i].Load(); s != nil {
		return s
	}
	ep, mo := p.endpoints.name(i/p.models.size), p.models.name(i%p.models.size)
	s := &pair{duration: p.duration.WithLabelValues(ep, mo), ttft: p.ttft.WithLabelValues(ep, mo)}
	s.requests = children(statusNames, func(status ...string) prometheus.Counter {
		return p.requests.WithLabelValues(ep, mo, status[0])
	})
	p.pairs[i].CompareAndSwap(nil, s)
	return p.pairs[i].Load()
}

// Observe counts one event of a decorator p was given to.
func (p *Prometheus) Observe(_ context.Context, ev llm.Event) {
	switch ev.Kind {
	case llm.EventAttempt:
		if !p.sawAttempt.Load() {
			p.sawAttempt.Store(true)
		}
		p.calls[statusOf(nil, ev.Err)].Inc()
	case llm.EventRetry:
		p.retries.Inc()
	case llm.EventBreakerState:
		p.breaker.WithLabelValues(p.breakers.name(p.breakers.lookup(ev.Source))).Set(float64(ev.State))
	case llm.EventFallback:
		k, _ := llm.ParseKind(ev.Reason) // KindUnknown when it is none
		p.fallbacks[k].Inc()
	case llm.EventRejected:
		i := slices.Index(rejectReasons, ev.Reason)
		if i < 0 {
			i = len(rejectReasons) - 1 // Other
		}
		p.rejected[i].Inc()
	default:
		if i := cacheResult(ev); i >= 0 {
			p.cache[i].Inc()
			if i == cacheBypass {
				p.bypass[bypassReason(ev.Reason)].Inc()
			}
		} else {
			p.rt.observe(ev)
		}
	}
}

// Middleware returns the middleware that counts each call. It emits
// nothing and registers nothing on the call's context.
func (p *Prometheus) Middleware() llm.Middleware {
	return func(next llm.Client) llm.Client { return &promClient{p: p, next: next} }
}

type promClient struct {
	p    *Prometheus
	next llm.Client
}

// Generate records the call. A panic in next counts as a failure of kind
// unknown and goes on to the caller.
func (c *promClient) Generate(ctx context.Context, req *llm.Request) (resp *llm.Response, err error) {
	p := c.p
	s := p.slot(p.endpoints.lookup(req.Endpoint)*p.models.size + p.models.lookup(req.Model))
	p.active.Inc()
	start := now()
	var st *streamTimer
	if req.Stream != nil {
		req, st = timeStream(req, start)
	}
	finished := false
	defer func() {
		p.active.Dec()
		if !finished {
			s.requests[statusKinds+int(llm.KindUnknown)].Inc()
		}
	}()
	resp, err = c.next.Generate(ctx, req)
	finished = true
	d := (now() - start).Seconds()

	status := statusOf(resp, err)
	var ex prometheus.Labels
	if p.cfg.exemplars {
		ex = exemplar(ctx)
	}
	if a, ok := s.requests[status].(prometheus.ExemplarAdder); ok && ex != nil {
		a.AddWithExemplar(1, ex)
	} else {
		s.requests[status].Inc()
	}
	if o, ok := s.duration.(prometheus.ExemplarObserver); ok && ex != nil {
		o.ObserveWithExemplar(d, ex)
	} else {
		s.duration.Observe(d)
	}
	if st != nil && st.seen {
		s.ttft.Observe(st.ttft.Seconds())
	}
	if !p.sawAttempt.Load() && (err != nil || !resp.Cached) {
		p.calls[statusOf(nil, err)].Inc() // nothing inside reports attempts: this call was one
	}
	if err == nil {
		for i, n := range [...]int{resp.Usage.InputTokens, resp.Usage.OutputTokens, resp.Usage.CachedInputTokens} {
			if n > 0 {
				p.tokens[i].Add(float64(n))
			}
		}
	}
	if q := quotaOf(resp, err); q != nil {
		p.quota.report(q, p.cfg.quotaTTL)
	}
	return resp, llm.RedactError(err)
}

// exemplar returns the exemplar labels of a call whose context carries a
// sampled span: an unsampled trace links to nothing.
func exemplar(ctx context.Context) prometheus.Labels {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.IsSampled() {
		return prometheus.Labels{"trace_id": sc.TraceID().String()}
	}
	return nil
}
