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

// prom is the state of one Prometheus middleware: its label sets and the
// series it resolved in the (possibly shared) collector.
type prom struct {
	cfg promConfig
	c   *promCollector

	endpoints, models *labelSet
	pairs             []atomic.Pointer[pairSeries] // by endpoint index × models.size + model index
}

// Prometheus returns a middleware that records the llm_* metrics (see
// MetricNames and docs/metrics.md) in reg. Registration is idempotent: a
// collector already registered in reg with the same name and labels (by an
// earlier call, say) is reused, so two middlewares built on one registry
// share their series; asking the second for other histogram buckets (or
// another native-histogram factor) than the first is an error. Options
// are validated here; an invalid one is an error.
//
// Every call counts in llm_requests_total with its final outcome (status
// "ok" or an llm.Kind), observes its duration, and, for a stream, the time
// to the first chunk. Unless WithEvents(false), the middleware hears the
// llm events of the decorators inside it, which feed the per-attempt,
// retry, cache, breaker, fallback and rate-limit metrics: it subscribes
// once, when it wraps its client, or, over a chain that refuses (an
// opaque ClientFunc inside), registers on each call's context.
func Prometheus(reg prometheus.Registerer, opts ...PromOption) (llm.Middleware, error) {
	p, err := newProm(reg, opts...)
	if err != nil {
		return nil, err
	}
	return func(next llm.Client) llm.Client {
		// Subscribe once if the chain inside can deliver every event
		// without the call's context; otherwise each call registers the
		// collector's observer. The chain's own attemptFlag tells whether
		// it reports attempts.
		c := &promClient{p: p, next: next}
		c.static = p.cfg.events && llm.Subscribe(next, promEvents{p.c}) &&
			llm.Subscribe(next, attemptFlag{&c.attempts})
		return c
	}, nil
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
	pc, err := register(reg, newPromCollector(&cfg))
	if err != nil {
		return nil, err
	}
	if !pc.sameHistograms(&cfg) {
		return nil, fmt.Errorf("metrics: the %s_* collector already registered in this registry has other histogram buckets or native-histogram settings; give this middleware the same ones, or another namespace or registry", cfg.namespace)
	}
	p := &prom{cfg: cfg, c: pc}
	p.endpoints = newLabelSet(cfg.endpoints, cfg.maxEndpoints, "none")
	p.models = newLabelSet(cfg.models, cfg.maxModels, "default")
	p.pairs = make([]atomic.Pointer[pairSeries], p.endpoints.size*p.models.size)
	return p, nil
}

// register registers c, or returns the collector of this package already
// registered under the same descriptors.
func register(reg prometheus.Registerer, c *promCollector) (*promCollector, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if got, ok := are.ExistingCollector.(*promCollector); ok {
			return got, nil
		}
		return nil, fmt.Errorf("metrics: a collector of another type (%T) is registered under the same name: %w", are.ExistingCollector, err)
	}
	return nil, fmt.Errorf("metrics: registering: %w", err)
}

// pair returns the series of an (endpoint, model) pair.
func (p *prom) pair(endpoint, model string) *pairSeries {
	e, m := p.endpoints.lookup(endpoint), p.models.lookup(model)
	slot := &p.pairs[e*p.models.size+m]
	if ps := slot.Load(); ps != nil {
		return ps
	}
	slot.CompareAndSwap(nil, p.c.series(p.endpoints.name(e), p.models.name(m)))
	return slot.Load()
}

// promEvents is the observer of a Prometheus middleware: subscribed at
// construction, or registered on each call's context when the chain
// inside refuses a subscription. It is a comparable value naming the
// collector, so every middleware built on one registry has the same one,
// and an event reaches it once even when it is both subscribed to a
// client and on the context of a call to it (llm.Observers.Emit).
type promEvents struct{ c *promCollector }

var _ llm.Observer = promEvents{}

func (o promEvents) Observe(_ context.Context, ev llm.Event) { o.c.observe(ev) }

// attemptFlag is the observer, subscribed with promEvents, that tells one
// middleware whether the chain it wraps reports attempts (a resilience
// layer does), in which case the middleware leaves
// llm_provider_calls_total to those reports.
type attemptFlag struct{ saw *atomic.Bool }

func (f attemptFlag) Observe(_ context.Context, ev llm.Event) {
	if ev.Kind == llm.EventAttempt && !f.saw.Load() {
		f.saw.Store(true)
	}
}

// observe counts one event.
func (c *promCollector) observe(ev llm.Event) {
	switch ev.Kind {
	case llm.EventAttempt:
		if !c.sawAttempt.Load() {
			c.sawAttempt.Store(true)
		}
		c.eventShard()[statusIndex(ev.Err)].Add(1)
	case llm.EventRetry:
		c.retryN.Add(1)
	case llm.EventCacheHit:
		c.eventShard()[evCache].Add(1)
	case llm.EventCacheMiss:
		c.eventShard()[evCache+1].Add(1)
	case llm.EventCacheStale:
		c.eventShard()[evCache+2].Add(1)
	case llm.EventCacheCoalesced:
		c.eventShard()[evCache+3].Add(1)
	case llm.EventCacheError:
		c.eventShard()[evCache+4].Add(1)
	case llm.EventBreakerState:
		i := c.brkNames.lookup(ev.Source)
		slot := &c.brkSlots[i]
		g := slot.Load()
		if g == nil {
			slot.CompareAndSwap(nil, c.breakerGauge(c.brkNames.name(i)))
			g = slot.Load()
		}
		g.store(int64(ev.State))
	case llm.EventFallback:
		k, ok := llm.ParseKind(ev.Reason)
		if !ok {
			k = llm.KindUnknown
		}
		c.fallbackN[k].Add(1)
	case llm.EventRejected:
		i := len(rejectReasons) - 1
		for j, r := range rejectReasons[:i] {
			if ev.Reason == r {
				i = j
				break
			}
		}
		c.rejectN[i].Add(1)
	}
}

// setQuota exports the counts q reports.
func (p *prom) setQuota(q *llm.Quota) {
	if q.RemainingRequests >= 0 {
		p.c.quotaG[0].store(q.RemainingRequests)
	}
	if q.RemainingTokens >= 0 {
		p.c.quotaG[1].store(q.RemainingTokens)
	}
}

type promClient struct {
	p    *prom
	next llm.Client
	// static says the collector's observer is subscribed to next: calls
	// register nothing on their context.
	static bool
	// attempts says next reports attempts (set through attemptFlag when
	// static; otherwise the collector's sawAttempt stands in for it).
	attempts atomic.Bool
}

// Subscribe forwards to the wrapped client: the middleware emits nothing.
func (c *promClient) Subscribe(o llm.Observer) bool { return llm.Subscribe(c.next, o) }

// Generate records the call.
func (c *promClient) Generate(ctx context.Context, req *llm.Request) (resp *llm.Response, err error) {
	p := c.p
	pc := p.c
	ps := p.pair(req.Endpoint, req.Model)
	cells := ps.shard()
	cells[cellStarted].Add(1)
	start := now()
	var st *streamTimer
	if req.Stream != nil {
		req, st = timeStream(req, start)
	}
	var sc trace.SpanContext
	if p.cfg.exemplars {
		// An unsampled span's trace links to nothing: no exemplar.
		if sc = trace.SpanContextFromContext(ctx); !sc.IsSampled() {
			sc = trace.SpanContext{}
		}
	}
	if p.cfg.events && !c.static {
		ctx = llm.WithObserver(ctx, promEvents{pc})
	}
	finished := false
	defer func() {
		if !finished { // a panic in next: count it as a failure and let it go on
			cells[pc.lay.reqCell(1+int(llm.KindUnknown))].Add(1)
		}
	}()
	resp, err = c.next.Generate(ctx, req)
	finished = true
	end := now()
	d := end - start

	status := statusIndex(err)
	cells[pc.lay.reqCell(status)].Add(1)
	b := -1
	if ps.nativeDur == nil {
		b = pc.observeDur(cells, d)
	} else {
		observeNative(ps.nativeDur, d, sc)
	}
	if sc.IsValid() {
		ps.exemplify(b, status, d, sc.TraceID(), end)
	}
	if st != nil && st.seen {
		if ps.nativeDur == nil {
			pc.observeTTFT(cells, st.ttft)
			if !ps.ttftOn.Load() {
				ps.ttftOn.Store(true)
			}
		} else {
			p.nativeTTFT(ps).Observe(st.ttft.Seconds())
		}
	}
	attempts := c.attempts.Load()
	if !c.static {
		attempts = pc.sawAttempt.Load()
	}
	if !attempts && (err != nil || !resp.Cached) {
		// No resilience layer reports attempts: this call was one.
		cells[pc.lay.callCell(status)].Add(1)
	}
	if err == nil {
		u := resp.Usage
		if u.InputTokens > 0 {
			cells[cellTokens].Add(uint64(u.InputTokens))
		}
		if u.OutputTokens > 0 {
			cells[cellTokens+1].Add(uint64(u.OutputTokens))
		}
		if u.CachedInputTokens > 0 {
			cells[cellTokens+2].Add(uint64(u.CachedInputTokens))
		}
	}
	if q := quotaOf(resp, err); q != nil {
		p.setQuota(q)
	}
	return resp, err
}

// exemplify keeps a traced call as the latest exemplar of its request
// counter and, unless b < 0 (the native mode keeps its own), of duration
// bucket b: one exemplar in both (the counter's value, 1, is put in at
// scrape). Of a call that is not a stream and registers no observer, this
// is the one path that allocates, once.
func (s *pairSeries) exemplify(b, status int, d time.Duration, id trace.TraceID, at time.Duration) {
	e := &exemplar{value: d.Seconds(), trace: id, mono: at}
	if b >= 0 {
		s.durEx[b].Store(e)
	}
	s.reqEx[status].Store(e)
}

// observeNative records a duration in a client_golang histogram of the
// native-histogram mode.
func observeNative(o prometheus.Observer, d time.Duration, sc trace.SpanContext) {
	if ex, ok := o.(prometheus.ExemplarObserver); ok && sc.IsValid() {
		ex.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"trace_id": sc.TraceID().String()})
		return
	}
	o.Observe(d.Seconds())
}

// nativeTTFT returns the TTFT child of a pair in the native-histogram mode,
// created on the first stream.
func (p *prom) nativeTTFT(ps *pairSeries) prometheus.Observer {
	if o := ps.nativeTTFT.Load(); o != nil {
		return *o
	}
	o := p.c.nativeTTFT.WithLabelValues(ps.endpoint, ps.model)
	ps.nativeTTFT.CompareAndSwap(nil, &o)
	return *ps.nativeTTFT.Load()
}
