package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmkit/llmkit/llm"
)

// The metric names without their namespace, in MetricNames order.
var promNames = []string{
	"requests_total",
	"request_duration_seconds",
	"active_requests",
	"tokens_total",
	"time_to_first_token_seconds",
	"provider_calls_total",
	"retries_total",
	"cache_requests_total",
	"circuit_breaker_state",
	"fallbacks_total",
	"rate_limited_total",
	"quota_remaining",
}

// MetricNames returns the name of every metric family Prometheus can export
// under namespace ("" means the default, "llm"). Histogram families are
// listed by family name; their series add _bucket, _sum and _count.
func MetricNames(namespace string) []string {
	if namespace == "" {
		namespace = "llm"
	}
	out := make([]string, len(promNames))
	for i, n := range promNames {
		out[i] = namespace + "_" + n
	}
	return out
}

// The bounded label values of the event-driven metrics.
var (
	cacheResults    = []string{"hit", "miss", "stale", "coalesced", "error"}
	rejectReasons   = []string{"rate_limit", "bulkhead", "adaptive_limit", "budget", Other}
	tokenTypes      = []string{"input", "output", "cached_input"}
	quotaKinds      = []string{"requests", "tokens"}
	exemplarEnabled = true
)

// counterChild is a resolved counter and, when it supports them, its
// exemplar interface.
type counterChild struct {
	c  prometheus.Counter
	ex prometheus.ExemplarAdder
}

func newCounterChild(c prometheus.Counter) *counterChild {
	ex, _ := c.(prometheus.ExemplarAdder)
	return &counterChild{c: c, ex: ex}
}

// pairMetrics holds the children of one (endpoint, model) pair, resolved
// once, the first time the pair is seen.
type pairMetrics struct {
	endpoint, model string
	dur             prometheus.Observer
	durEx           prometheus.ExemplarObserver
	ttft            atomic.Pointer[prometheus.Observer] // created on the first stream
	status          []atomic.Pointer[counterChild]      // by statusIndex, created on first use
}

// prom is the state of one Prometheus middleware: collectors, label sets
// and the resolved children. It is also the llm.Observer the calls
// register.
type prom struct {
	cfg promConfig

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	active        prometheus.Gauge
	tokens        [3]prometheus.Counter
	ttft          *prometheus.HistogramVec
	providerCalls *prometheus.CounterVec
	retries       prometheus.Counter
	cache         [5]prometheus.Counter
	breaker       *prometheus.GaugeVec
	fallbacks     *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	quota         *prometheus.GaugeVec

	endpoints, models, breakers *labelSet
	pairs                       []atomic.Pointer[pairMetrics]

	attemptChildren  []atomic.Pointer[counterChild] // by statusIndex
	fallbackChildren []atomic.Pointer[counterChild] // by Kind
	rejectChildren   []atomic.Pointer[counterChild] // by rejectReasons index
	breakerChildren  []atomic.Pointer[prometheus.Gauge]
	quotaChildren    [2]atomic.Pointer[prometheus.Gauge]

	// sawAttempt turns true the first time an EventAttempt arrives: from
	// then on a resilience layer is counting attempts and the middleware
	// stops counting each call as one.
	sawAttempt atomic.Bool
}

var _ llm.Observer = (*prom)(nil)

// Prometheus returns a middleware that records the llm_* metrics (see
// MetricNames and docs/metrics.md) in reg. Registration is idempotent: a
// collector already registered in reg with the same name and labels (by an
// earlier call, say) is reused, so two middlewares built on one registry
// share their series. Options are validated here; an invalid one is an
// error.
//
// Every call counts in llm_requests_total with its final outcome (status
// "ok" or an llm.Kind), observes its duration, and, for a stream, the time
// to the first chunk. Unless WithEvents(false), the call subscribes to the
// llm events of the decorators inside it, which feed the per-attempt,
// retry, cache, breaker, fallback and rate-limit metrics.
func Prometheus(reg prometheus.Registerer, opts ...PromOption) (llm.Middleware, error) {
	p, err := newProm(reg, opts...)
	if err != nil {
		return nil, err
	}
	return func(next llm.Client) llm.Client { return &promClient{p: p, next: next} }, nil
}

func newProm(reg prometheus.Registerer, opts ...PromOption) (*prom, error) {
	if reg == nil {
		return nil, errors.New("metrics: Prometheus needs a Registerer")
	}
	cfg := promConfig{
		labelsConfig: labelsConfig{maxModels: DefaultMaxModels},
		namespace:    "llm",
		maxEndpoints: DefaultMaxEndpoints,
		durBuckets:   DefaultDurationBuckets,
		ttftBuckets:  DefaultTTFTBuckets,
		exemplars:    exemplarEnabled,
		events:       true,
	}
	for _, o := range opts {
		if o != nil {
			o.applyProm(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &prom{cfg: cfg}
	ns := cfg.namespace
	var err error
	reg1 := func(c prometheus.Collector) prometheus.Collector {
		if err != nil {
			return c
		}
		var got prometheus.Collector
		got, err = register(reg, c)
		return got
	}
	hist := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		o := prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets}
		if cfg.nativeFactor > 0 {
			o.NativeHistogramBucketFactor = cfg.nativeFactor
			o.NativeHistogramMaxBucketNumber = 160
			o.NativeHistogramMinResetDuration = time.Hour
		}
		v, _ := reg1(prometheus.NewHistogramVec(o, labels)).(*prometheus.HistogramVec)
		return v
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		v, _ := reg1(prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)).(*prometheus.CounterVec)
		return v
	}
	gaugeVec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v, _ := reg1(prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, labels)).(*prometheus.GaugeVec)
		return v
	}

	p.requests = counterVec("requests_total", "LLM calls by final outcome: status is ok or the error kind.", "endpoint", "model", "status")
	p.duration = hist("request_duration_seconds", "Duration of LLM calls, retries and waits included.", cfg.durBuckets, "endpoint", "model")
	p.active, _ = reg1(prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "active_requests", Help: "LLM calls in flight."})).(prometheus.Gauge)
	tokens := counterVec("tokens_total", "Tokens reported by the provider, by type (input, output, cached_input).", "type")
	p.ttft = hist("time_to_first_token_seconds", "Time from the start of a streamed call to its first chunk.", cfg.ttftBuckets, "endpoint", "model")
	p.providerCalls = counterVec("provider_calls_total", "Provider attempts (retries and hedges included) by outcome.", "status")
	retries, _ := reg1(prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "retries_total", Help: "Retries scheduled."})).(prometheus.Counter)
	cache := counterVec("cache_requests_total", "Cache lookups by result (hit, miss, stale, coalesced, error).", "result")
	p.breaker = gaugeVec("circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", "name")
	p.fallbacks = counterVec("fallbacks_total", "Answers produced by a fallback, by the kind of error that triggered it.", "reason")
	p.rateLimited = counterVec("rate_limited_total", "Calls refused by a client-side limiter, by reason (rate_limit, bulkhead, adaptive_limit, budget).", "reason")
	p.quota = gaugeVec("quota_remaining", "Remaining provider quota from its rate-limit headers, by kind (requests, tokens).", "kind")
	if err != nil {
		return nil, err
	}
	p.retries = retries
	for i, t := range tokenTypes {
		p.tokens[i] = tokens.WithLabelValues(t)
	}
	for i, r := range cacheResults {
		p.cache[i] = cache.WithLabelValues(r)
	}

	p.endpoints = newLabelSet(cfg.endpoints, cfg.maxEndpoints, "none")
	p.models = newLabelSet(cfg.models, cfg.maxModels, "default")
	p.breakers = newLabelSet(nil, maxBreakers, "default")
	p.pairs = make([]atomic.Pointer[pairMetrics], p.endpoints.size*p.models.size)
	p.attemptChildren = make([]atomic.Pointer[counterChild], numStatus)
	p.fallbackChildren = make([]atomic.Pointer[counterChild], len(llm.Kinds()))
	p.rejectChildren = make([]atomic.Pointer[counterChild], len(rejectReasons))
	p.breakerChildren = make([]atomic.Pointer[prometheus.Gauge], p.breakers.size)
	return p, nil
}

// register registers c, or returns the collector already registered under
// the same descriptors.
func register(reg prometheus.Registerer, c prometheus.Collector) (prometheus.Collector, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if fmt.Sprintf("%T", are.ExistingCollector) != fmt.Sprintf("%T", c) {
			return nil, fmt.Errorf("metrics: a collector of another type is registered under the same name: %w", err)
		}
		return are.ExistingCollector, nil
	}
	return nil, fmt.Errorf("metrics: registering: %w", err)
}

// pair returns the resolved children of an (endpoint, model) pair.
func (p *prom) pair(endpoint, model string) *pairMetrics {
	e, m := p.endpoints.lookup(endpoint), p.models.lookup(model)
	slot := &p.pairs[e*p.models.size+m]
	if pm := slot.Load(); pm != nil {
		return pm
	}
	pm := &pairMetrics{endpoint: p.endpoints.name(e), model: p.models.name(m)}
	pm.dur = p.duration.WithLabelValues(pm.endpoint, pm.model)
	pm.durEx, _ = pm.dur.(prometheus.ExemplarObserver)
	pm.status = make([]atomic.Pointer[counterChild], numStatus)
	if slot.CompareAndSwap(nil, pm) {
		return pm
	}
	return slot.Load()
}

// requestCounter returns the llm_requests_total child of a pair and status.
func (p *prom) requestCounter(pm *pairMetrics, status int) *counterChild {
	slot := &pm.status[status]
	if c := slot.Load(); c != nil {
		return c
	}
	c := newCounterChild(p.requests.WithLabelValues(pm.endpoint, pm.model, statusNames[status]))
	slot.CompareAndSwap(nil, c)
	return slot.Load()
}

// ttftObserver returns the TTFT child of a pair.
func (p *prom) ttftObserver(pm *pairMetrics) prometheus.Observer {
	if o := pm.ttft.Load(); o != nil {
		return *o
	}
	o := p.ttft.WithLabelValues(pm.endpoint, pm.model)
	pm.ttft.CompareAndSwap(nil, &o)
	return *pm.ttft.Load()
}

// child returns the counter in slots[i] of vec, creating it with the label
// value name on first use.
func child(slots []atomic.Pointer[counterChild], i int, vec *prometheus.CounterVec, name string) *counterChild {
	slot := &slots[i]
	if c := slot.Load(); c != nil {
		return c
	}
	slot.CompareAndSwap(nil, newCounterChild(vec.WithLabelValues(name)))
	return slot.Load()
}

func gaugeChild(slot *atomic.Pointer[prometheus.Gauge], vec *prometheus.GaugeVec, name string) prometheus.Gauge {
	if g := slot.Load(); g != nil {
		return *g
	}
	g := vec.WithLabelValues(name)
	slot.CompareAndSwap(nil, &g)
	return *slot.Load()
}

// Observe counts the events of the decorators inside the middleware.
func (p *prom) Observe(_ context.Context, ev llm.Event) {
	switch ev.Kind {
	case llm.EventAttempt:
		if !p.sawAttempt.Load() {
			p.sawAttempt.Store(true)
		}
		s := statusIndex(ev.Err)
		child(p.attemptChildren, s, p.providerCalls, statusNames[s]).c.Inc()
	case llm.EventRetry:
		p.retries.Inc()
	case llm.EventCacheHit:
		p.cache[0].Inc()
	case llm.EventCacheMiss:
		p.cache[1].Inc()
	case llm.EventCacheStale:
		p.cache[2].Inc()
	case llm.EventCacheCoalesced:
		p.cache[3].Inc()
	case llm.EventCacheError:
		p.cache[4].Inc()
	case llm.EventBreakerState:
		i := p.breakers.lookup(ev.Source)
		gaugeChild(&p.breakerChildren[i], p.breaker, p.breakers.name(i)).Set(float64(ev.State))
	case llm.EventFallback:
		k, ok := llm.ParseKind(ev.Reason)
		if !ok {
			k = llm.KindUnknown
		}
		child(p.fallbackChildren, int(k), p.fallbacks, k.String()).c.Inc()
	case llm.EventRejected:
		i := len(rejectReasons) - 1
		for j, r := range rejectReasons[:i] {
			if ev.Reason == r {
				i = j
				break
			}
		}
		child(p.rejectChildren, i, p.rateLimited, rejectReasons[i]).c.Inc()
	}
}

// setQuota exports the counts q reports.
func (p *prom) setQuota(q *llm.Quota) {
	if q.RemainingRequests >= 0 {
		gaugeChild(&p.quotaChildren[0], p.quota, quotaKinds[0]).Set(float64(q.RemainingRequests))
	}
	if q.RemainingTokens >= 0 {
		gaugeChild(&p.quotaChildren[1], p.quota, quotaKinds[1]).Set(float64(q.RemainingTokens))
	}
}

type promClient struct {
	p    *prom
	next llm.Client
}

// Generate records the call.
func (c *promClient) Generate(ctx context.Context, req *llm.Request) (resp *llm.Response, err error) {
	p := c.p
	pm := p.pair(req.Endpoint, req.Model)
	p.active.Inc()
	start := now()
	var st *streamTimer
	if req.Stream != nil {
		req, st = timeStream(req, start)
	}
	if p.cfg.events {
		ctx = llm.WithObserver(ctx, p)
	}
	finished := false
	defer func() {
		p.active.Dec()
		if !finished { // a panic in next: count it as a failure and let it go on
			p.requestCounter(pm, 1+int(llm.KindUnknown)).c.Inc()
		}
	}()
	resp, err = c.next.Generate(ctx, req)
	finished = true
	d := (now() - start).Seconds()

	status := statusIndex(err)
	rc := p.requestCounter(pm, status)
	var sc trace.SpanContext
	if p.cfg.exemplars {
		sc = trace.SpanContextFromContext(ctx)
	}
	if sc.IsValid() && pm.durEx != nil && rc.ex != nil {
		ex := prometheus.Labels{"trace_id": sc.TraceID().String()}
		pm.durEx.ObserveWithExemplar(d, ex)
		rc.ex.AddWithExemplar(1, ex)
	} else {
		pm.dur.Observe(d)
		rc.c.Inc()
	}
	if st != nil && st.seen {
		p.ttftObserver(pm).Observe(st.ttft.Seconds())
	}
	if !p.sawAttempt.Load() && (err != nil || !resp.Cached) {
		// No resilience layer reports attempts: this call was one.
		child(p.attemptChildren, status, p.providerCalls, statusNames[status]).c.Inc()
	}
	if err == nil {
		u := resp.Usage
		if u.InputTokens > 0 {
			p.tokens[0].Add(float64(u.InputTokens))
		}
		if u.OutputTokens > 0 {
			p.tokens[1].Add(float64(u.OutputTokens))
		}
		if u.CachedInputTokens > 0 {
			p.tokens[2].Add(float64(u.CachedInputTokens))
		}
	}
	if q := quotaOf(resp, err); q != nil {
		p.setQuota(q)
	}
	return resp, err
}
