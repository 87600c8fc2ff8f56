package metrics

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmkit/llmkit/llm"
)

// promCollector is the prometheus.Collector behind every llm_* family. The
// per-call path touches plain atomics only; the values become metrics when
// the registry is scraped (Collect). One collector is registered per
// registry and namespace: a second middleware built on the same registry
// gets the registered one back from register and shares its series.
//
// The series of one (endpoint, model) pair live in a pairSeries; token,
// active-request and attempt counts, which have no pair label, are kept per
// pair too and summed at scrape time, so that a call writes one pair's
// memory and nothing shared with calls of other pairs.
type promCollector struct {
	requests, duration, active, tokens, ttft, providerCalls, retries,
	cache, breaker, fallbacks, rateLimited, quota *prometheus.Desc

	lay        cellLayout
	durBounds  []int64 // the duration buckets in nanoseconds, +Inf excluded
	ttftBounds []int64
	durUpper   []float64 // the same bounds as exported, in seconds
	ttftUpper  []float64
	created    time.Time

	// nativeFactor is the WithNativeHistograms factor the collector was
	// built with (0: classic buckets only).
	nativeFactor float64

	// The native-histogram mode keeps client_golang's histograms, which
	// implement the sparse buckets: a slower path, chosen at construction.
	nativeDur, nativeTTFT *prometheus.HistogramVec

	// brkNames bounds the breaker names; brkSlots caches their gauges.
	brkNames *labelSet
	brkSlots []atomic.Pointer[gaugeSeries]
	// sawAttempt turns true the first time the collector's observer hears
	// an EventAttempt: from then on the middlewares over opaque chains
	// (which have no flag of their own, see promClient.attempts) stop
	// counting each call as one provider call.
	sawAttempt atomic.Bool

	mu       sync.Mutex
	pairs    map[[2]string]*pairSeries // by exported label values
	pairList []*pairSeries             // in creation order, for Collect
	breakers map[string]*gaugeSeries
	brkList  []*gaugeSeries

	// Event-driven series (no pair label). Attempts and cache results,
	// reported on most calls, are sharded like a pair's cells; the rare
	// events have one counter each.
	events    []atomic.Uint64 // numShards × evStride: attempts by status, then cache results
	retryN    atomic.Uint64
	fallbackN []atomic.Uint64  // by Kind
	rejectN   [5]atomic.Uint64 // by rejectReasons index
	quotaG    [2]gaugeSeries   // by quotaKinds index
}

var _ prometheus.Collector = (*promCollector)(nil)

// gaugeSeries is a gauge that appears once it has been set.
type gaugeSeries struct {
	name string
	v    atomic.Int64
	set  atomic.Bool
}

// store sets the gauge. The flag is written once, so a quota stored on
// every call writes one shared word, not two.
func (g *gaugeSeries) store(v int64) {
	g.v.Store(v)
	if !g.set.Load() {
		g.set.Store(true)
	}
}

// exemplar is the latest traced observation of a bucket or counter. Its
// time is a monotonic reading, turned into wall time at scrape.
type exemplar struct {
	value float64
	trace trace.TraceID
	mono  time.Duration
}

// cellLayout places a pair's per-call counters in one []atomic.Uint64 per
// shard. The cells every successful call writes (started, tokens, duration
// sum, status ok) share the first cache line; the duration buckets follow.
type cellLayout struct {
	durBuckets  int // first duration bucket; len(durBounds)+1 cells, the last +Inf
	ttftBuckets int // first TTFT bucket; len(ttftBounds)+1 cells
	status      int // requests[s] at status+2(s-1), attempts[s] one after, for s >= 1
	n           int // cells used
	stride      int // cells from one shard to the next
}

// The fixed cells.
const (
	cellStarted = iota // calls started; in flight = started - finished (the sum of the request counters)
	cellTokens         // three cells: input, output, cached_input
	_
	_
	cellDurSum  // microseconds
	cellTTFTSum // microseconds
	cellOK      // llm_requests_total{status="ok"}
	cellOKCall  // llm_provider_calls_total{status="ok"} counted for a stack that reports no attempts
	cellFixed
)

func newCellLayout(durBounds, ttftBounds int) cellLayout {
	l := cellLayout{durBuckets: cellFixed}
	l.ttftBuckets = l.durBuckets + durBounds + 1
	l.status = l.ttftBuckets + ttftBounds + 1
	l.n = l.status + 2*(numStatus-1)
	// Round up to a cache line and leave one more line free, so that two
	// shards never share a line whatever the slice's alignment.
	l.stride = (l.n+7)&^7 + 8
	return l
}

// reqCell returns the llm_requests_total cell of status s.
func (l *cellLayout) reqCell(s int) int {
	if s == 0 {
		return cellOK
	}
	return l.status + 2*(s-1)
}

// callCell returns the llm_provider_calls_total cell of status s, for the
// calls counted as attempts when nothing inside reports them.
func (l *cellLayout) callCell(s int) int {
	if s == 0 {
		return cellOKCall
	}
	return l.status + 2*(s-1) + 1
}

// numShards (1 << shardBits) is how many copies of its counters a pair
// keeps, so that calls running at the same time on different cores seldom
// write the same cache line; Collect adds the copies up. A machine gets
// four shards per core, at most eight (4 KiB a pair). See shardIndex for
// how a call picks one.
var shardBits = func() int {
	b := 0
	if runtime.NumCPU() > 1 {
		for 1<<b < 4*runtime.NumCPU() && b < 3 {
			b++
		}
	}
	return b
}()

var numShards = 1 << shardBits

// The event cells of one shard: llm_provider_calls_total by status (from
// EventAttempt), then llm_cache_requests_total by cacheResults index.
var (
	evCache  = numStatus
	evStride = (numStatus+len(cacheResults)+7)&^7 + 8
)

// eventShard returns the event cells of the calling goroutine's shard.
func (c *promCollector) eventShard() []atomic.Uint64 {
	base := shardIndex() * evStride
	return c.events[base : base+evStride : base+evStride]
}

// shardIndex picks the shard of the calling goroutine from the address of
// its stack. A goroutine that makes call after call (a worker, a stream
// consumer, a benchmark loop) keeps its shard, so the cache lines it
// writes stay in its core's cache rather than moving to another core and
// back; goroutines whose stacks sit next to each other get different
// shards. Where every request has a goroutine of its own, the choice is
// as good as random: spread, but with no locality, which takes per-CPU
// storage the runtime does not offer. A stack that grows and moves may
// change shards; the counts stay exact either way.
func shardIndex() int {
	if numShards == 1 {
		return 0
	}
	var local byte
	a := uintptr(unsafe.Pointer(&local)) >> 13 // stacks are 8 KiB or larger
	return int((a ^ a>>3 ^ a>>6 ^ a>>9) & uintptr(numShards-1))
}

// eventSum returns event cell i added over the shards.
func (c *promCollector) eventSum(i int) uint64 {
	var v uint64
	for base := 0; base < len(c.events); base += evStride {
		v += c.events[base+i].Load()
	}
	return v
}

// pairSeries holds the series of one (endpoint, model) pair.
type pairSeries struct {
	endpoint, model string
	created         time.Time
	lay             *cellLayout
	cells           []atomic.Uint64 // numShards × lay.stride

	durEx  []atomic.Pointer[exemplar] // by bucket
	reqEx  []atomic.Pointer[exemplar] // by status
	ttftOn atomic.Bool                // a stream has been timed: export the TTFT histogram

	// Native-histogram mode only.
	nativeDur  prometheus.Observer
	nativeTTFT atomic.Pointer[prometheus.Observer]
}

// shard returns the cells of the calling goroutine's shard.
func (s *pairSeries) shard() []atomic.Uint64 {
	base := shardIndex() * s.lay.stride
	return s.cells[base : base+s.lay.n : base+s.lay.n]
}

// sum returns cell i added over the shards.
func (s *pairSeries) sum(i int) uint64 {
	var v uint64
	for base := 0; base < len(s.cells); base += s.lay.stride {
		v += s.cells[base+i].Load()
	}
	return v
}

// bucket returns the index of the bucket d falls in: the first bound d
// does not exceed, or len(bounds) for +Inf. The search is linear: the
// bounds are few and most calls land in the first buckets.
func bucket(bounds []int64, d time.Duration) int {
	i := 0
	for i < len(bounds) && int64(d) > bounds[i] {
		i++
	}
	return i
}

// micros returns d in whole microseconds, rounded, never negative. Sums
// are kept in microseconds rather than nanoseconds: a uint64 of
// nanoseconds overflows after 584 years of summed call time, which a busy
// pair (1,000 calls in flight) reaches in 7 months; microseconds last
// 1,000 times longer and lose nothing a latency sum can show.
func micros(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return (uint64(d) + 500) / 1000
}

// observe records a call's duration in the shard's cells and returns the
// bucket it fell in.
func (c *promCollector) observeDur(cells []atomic.Uint64, d time.Duration) int {
	i := bucket(c.durBounds, d)
	cells[c.lay.durBuckets+i].Add(1)
	cells[cellDurSum].Add(micros(d))
	return i
}

func (c *promCollector) observeTTFT(cells []atomic.Uint64, d time.Duration) {
	cells[c.lay.ttftBuckets+bucket(c.ttftBounds, d)].Add(1)
	cells[cellTTFTSum].Add(micros(d))
}

// boundNanos converts a bucket bound in seconds to the largest nanosecond
// count n with time.Duration(n).Seconds() <= b, so that the integer
// comparison in bucket puts every duration in the bucket the float
// comparison of a client_golang histogram would.
func boundNanos(b float64) int64 {
	if b*1e9 >= math.MaxInt64 {
		return math.MaxInt64
	}
	if b*1e9 <= math.MinInt64 {
		return math.MinInt64
	}
	n := int64(math.Floor(b * 1e9))
	for time.Duration(n+1).Seconds() <= b {
		n++
	}
	for time.Duration(n).Seconds() > b {
		n--
	}
	return n
}

// upperBounds returns the buckets as exported (a trailing +Inf is implicit,
// as client_golang drops it too) and in nanoseconds.
func upperBounds(b []float64) ([]float64, []int64) {
	if n := len(b); n > 0 && math.IsInf(b[n-1], 1) {
		b = b[:n-1]
	}
	ns := make([]int64, len(b))
	for i, v := range b {
		ns[i] = boundNanos(v)
	}
	return append([]float64(nil), b...), ns
}

func newPromCollector(cfg *promConfig) *promCollector {
	ns := cfg.namespace
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
	}
	c := &promCollector{
		requests:      desc("requests_total", "LLM calls by final outcome: status is ok or the error kind.", "endpoint", "model", "status"),
		duration:      desc("request_duration_seconds", "Duration of LLM calls, retries and waits included.", "endpoint", "model"),
		active:        desc("active_requests", "LLM calls in flight."),
		tokens:        desc("tokens_total", "Tokens reported by the provider, by type (input, output, cached_input).", "type"),
		ttft:          desc("time_to_first_token_seconds", "Time from the start of a streamed call to its first chunk.", "endpoint", "model"),
		providerCalls: desc("provider_calls_total", "Provider attempts (retries and hedges included) by outcome.", "status"),
		retries:       desc("retries_total", "Retries scheduled."),
		cache:         desc("cache_requests_total", "Cache lookups by result (hit, miss, stale, coalesced, error).", "result"),
		breaker:       desc("circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", "name"),
		fallbacks:     desc("fallbacks_total", "Answers produced by a fallback, by the kind of error that triggered it.", "reason"),
		rateLimited:   desc("rate_limited_total", "Calls refused by a client-side limiter, by reason (rate_limit, bulkhead, adaptive_limit, budget).", "reason"),
		quota:         desc("quota_remaining", "Remaining provider quota from its rate-limit headers, by kind (requests, tokens).", "kind"),
		created:       time.Now(),
		pairs:         make(map[[2]string]*pairSeries),
		breakers:      make(map[string]*gaugeSeries),
		events:        make([]atomic.Uint64, numShards*evStride),
		fallbackN:     make([]atomic.Uint64, len(llm.Kinds())),
	}
	c.brkNames = newLabelSet(nil, maxBreakers, "default")
	c.brkSlots = make([]atomic.Pointer[gaugeSeries], c.brkNames.size)
	c.durUpper, c.durBounds = upperBounds(cfg.durBuckets)
	c.ttftUpper, c.ttftBounds = upperBounds(cfg.ttftBuckets)
	c.lay = newCellLayout(len(c.durBounds), len(c.ttftBounds))
	for i, k := range quotaKinds {
		c.quotaG[i].name = k
	}
	c.nativeFactor = cfg.nativeFactor
	if cfg.nativeFactor > 0 {
		hist := func(name, help string, buckets []float64) *prometheus.HistogramVec {
			return prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Namespace: ns, Name: name, Help: help, Buckets: buckets,
				NativeHistogramBucketFactor:     cfg.nativeFactor,
				NativeHistogramMaxBucketNumber:  160,
				NativeHistogramMinResetDuration: time.Hour,
			}, []string{"endpoint", "model"})
		}
		c.nativeDur = hist("request_duration_seconds", "Duration of LLM calls, retries and waits included.", cfg.durBuckets)
		c.nativeTTFT = hist("time_to_first_token_seconds", "Time from the start of a streamed call to its first chunk.", cfg.ttftBuckets)
	}
	return c
}

// sameHistograms reports whether cfg asks for the histograms c exports:
// the same buckets and the same native-histogram factor. A second
// middleware on one registry shares c, so it must not ask for others.
func (c *promCollector) sameHistograms(cfg *promConfig) bool {
	dur, _ := upperBounds(cfg.durBuckets)
	ttft, _ := upperBounds(cfg.ttftBuckets)
	return slices.Equal(dur, c.durUpper) && slices.Equal(ttft, c.ttftUpper) && cfg.nativeFactor == c.nativeFactor
}

// series returns the pair with these exported label values, creating it.
// Two raw values that export alike (two secrets both redacted) share one.
func (c *promCollector) series(endpoint, model string) *pairSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := [2]string{endpoint, model}
	if s := c.pairs[key]; s != nil {
		return s
	}
	s := &pairSeries{
		endpoint: endpoint,
		model:    model,
		created:  time.Now(),
		lay:      &c.lay,
		cells:    make([]atomic.Uint64, numShards*c.lay.stride),
		durEx:    make([]atomic.Pointer[exemplar], len(c.durBounds)+1),
		reqEx:    make([]atomic.Pointer[exemplar], numStatus),
	}
	if c.nativeDur != nil {
		s.nativeDur = c.nativeDur.WithLabelValues(endpoint, model)
	}
	c.pairs[key] = s
	c.pairList = append(c.pairList, s)
	return s
}

// breakerGauge returns the llm_circuit_breaker_state series of name.
func (c *promCollector) breakerGauge(name string) *gaugeSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.breakers[name]; g != nil {
		return g
	}
	g := &gaugeSeries{name: name}
	c.breakers[name] = g
	c.brkList = append(c.brkList, g)
	return g
}

// Describe sends the descriptors of every family.
func (c *promCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.duration, c.active, c.tokens, c.ttft,
		c.providerCalls, c.retries, c.cache, c.breaker, c.fallbacks, c.rateLimited, c.quota} {
		ch <- d
	}
}

// Collect turns the counters into metrics. Each value is read atomically,
// but a scrape is not a snapshot of one instant: a call that ends during
// Collect may count in one series and not yet in another. A histogram's
// count is the sum of its buckets, so those two always agree.
func (c *promCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	pairs := append([]*pairSeries(nil), c.pairList...)
	brks := append([]*gaugeSeries(nil), c.brkList...)
	c.mu.Unlock()
	wallNow, monoNow := time.Now(), now()
	exTime := func(mono time.Duration) time.Time { return wallNow.Add(mono - monoNow) }

	counter := func(d *prometheus.Desc, v uint64, created time.Time, labels ...string) prometheus.Metric {
		return prometheus.MustNewConstMetricWithCreatedTimestamp(d, prometheus.CounterValue, float64(v), created, labels...)
	}
	toEx := func(e *exemplar) prometheus.Exemplar {
		return prometheus.Exemplar{Value: e.value, Labels: prometheus.Labels{"trace_id": e.trace.String()}, Timestamp: exTime(e.mono)}
	}
	countEx := func(e *exemplar) prometheus.Exemplar { // a counter's exemplar counts one call
		x := toEx(e)
		x.Value = 1
		return x
	}

	var active int64
	var tokens [3]uint64
	calls := make([]uint64, numStatus)
	for s := range calls {
		calls[s] = c.eventSum(s)
	}
	reqs := make([]uint64, numStatus)
	for _, p := range pairs {
		// The request counters first: a call counts as started before it
		// counts as finished, so in flight never reads below 0.
		var finished uint64
		for s := range reqs {
			reqs[s] = p.sum(c.lay.reqCell(s))
			finished += reqs[s]
		}
		active += int64(p.sum(cellStarted) - finished)
		for t := range tokens {
			tokens[t] += p.sum(cellTokens + t)
		}
		for s, n := range reqs {
			calls[s] += p.sum(c.lay.callCell(s))
			if n == 0 {
				continue // a status appears once it has been counted
			}
			m := counter(c.requests, n, p.created, p.endpoint, p.model, statusNames[s])
			if e := p.reqEx[s].Load(); e != nil {
				m = withExemplars(m, []prometheus.Exemplar{countEx(e)})
			}
			ch <- m
		}
		if c.nativeDur == nil {
			ch <- c.histogram(c.duration, p, c.lay.durBuckets, cellDurSum, c.durUpper, p.durEx, toEx)
			if p.ttftOn.Load() {
				ch <- c.histogram(c.ttft, p, c.lay.ttftBuckets, cellTTFTSum, c.ttftUpper, nil, toEx)
			}
		}
	}
	if c.nativeDur != nil {
		c.nativeDur.Collect(ch)
		c.nativeTTFT.Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(active))
	for t, name := range tokenTypes {
		ch <- counter(c.tokens, tokens[t], c.created, name)
	}
	for s, n := range calls {
		if n > 0 {
			ch <- counter(c.providerCalls, n, c.created, statusNames[s])
		}
	}
	ch <- counter(c.retries, c.retryN.Load(), c.created)
	for i, name := range cacheResults {
		ch <- counter(c.cache, c.eventSum(evCache+i), c.created, name)
	}
	for k := range c.fallbackN {
		if n := c.fallbackN[k].Load(); n > 0 {
			ch <- counter(c.fallbacks, n, c.created, llm.Kind(k).String())
		}
	}
	for i, name := range rejectReasons {
		if n := c.rejectN[i].Load(); n > 0 {
			ch <- counter(c.rateLimited, n, c.created, name)
		}
	}
	for _, g := range brks {
		if g.set.Load() {
			ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, float64(g.v.Load()), g.name)
		}
	}
	for i := range c.quotaG {
		if g := &c.quotaG[i]; g.set.Load() {
			ch <- prometheus.MustNewConstMetric(c.quota, prometheus.GaugeValue, float64(g.v.Load()), g.name)
		}
	}
}

// histogram builds the classic histogram of pair p whose buckets start at
// cell first, with the exemplars in exs (by bucket).
func (c *promCollector) histogram(d *prometheus.Desc, p *pairSeries, first, sumCell int, upper []float64,
	exs []atomic.Pointer[exemplar], toEx func(*exemplar) prometheus.Exemplar) prometheus.Metric {
	buckets := make(map[float64]uint64, len(upper))
	var count uint64
	for i, ub := range upper {
		count += p.sum(first + i)
		buckets[ub] = count
	}
	count += p.sum(first + len(upper))
	m := prometheus.MustNewConstHistogramWithCreatedTimestamp(d, count, float64(p.sum(sumCell))/1e6, buckets, p.created, p.endpoint, p.model)
	var pex []prometheus.Exemplar
	for i := range exs {
		if e := exs[i].Load(); e != nil {
			pex = append(pex, toEx(e)) // in bucket order, +Inf last, as NewMetricWithExemplars places them
		}
	}
	return withExemplars(m, pex)
}

// withExemplars attaches exs to m. An exemplar client_golang refuses
// (it checks label lengths; a trace id always fits) leaves m bare rather
// than failing the scrape.
func withExemplars(m prometheus.Metric, exs []prometheus.Exemplar) prometheus.Metric {
	if len(exs) == 0 {
		return m
	}
	if mx, err := prometheus.NewMetricWithExemplars(m, exs...); err == nil {
		return mx
	}
	return m
}
