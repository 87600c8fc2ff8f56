package metrics

import (
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmkit/llmkit/llm"
)

// The bounded label values of the router's and the shared limiters'
// families.
var (
	// routeOutcomes: "ok" or the kind of the attempt's error.
	routeOutcomes = append([]string{statusNames[statusOK]}, statusNames[statusKinds:]...)
	// limitResults: the decision, or the degraded mode that decided when
	// the limiter's store failed.
	limitResults = []string{"allowed", "rejected", "fail_open", "fail_closed", "local_share", Other}
	// limitTokenTypes: reserved when admitted, used when settled.
	limitTokenTypes = []string{"reserved", "used"}
)

// deploymentSeries holds the children of one deployment label value.
type deploymentSeries struct {
	outcomes []prometheus.Counter // by routeOutcomes index
	cooling  prometheus.Gauge     // nil for Other: one gauge cannot say which of several cools
}

// limiterSeries holds the children of one limiter label value.
type limiterSeries struct {
	results []prometheus.Counter // by limitResults index
	tokens  []prometheus.Counter // by limitTokenTypes index
}

// routing holds the router's and the shared limiters' families
// (EventRoute, EventCooldown, EventLimit, EventLimitSettle). A
// deployment's or limiter's children are resolved the first time it is
// seen, or at construction for the names of an allow-list, so that an
// event costs a label lookup, an atomic load and client_golang's update.
type routing struct {
	deployments, limiters *labelSet
	route                 *prometheus.CounterVec
	cooling               *prometheus.GaugeVec
	decisions, tokens     *prometheus.CounterVec
	deps                  []atomic.Pointer[deploymentSeries] // by deployment index
	lims                  []atomic.Pointer[limiterSeries]    // by limiter index
}

// register registers the families and resolves the allow-listed children.
func (rt *routing) register(r *registrar, cfg *config) {
	o := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: cfg.namespace, Name: name, Help: help}
	}
	counters := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(o(name, help)), labels)
	}
	rt.deployments = newLabelSet(cfg.deployments, maxDeployments, "default")
	rt.limiters = newLabelSet(cfg.limiters, maxLimiters, "default")
	rt.route = register(r, counters("router_requests_total", "Router attempts by deployment and outcome (ok or the error kind).", "deployment", "outcome"))
	rt.cooling = register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts(o("router_deployment_cooling",
		"1 while a router deployment cools down after failures, 0 otherwise.")), []string{"deployment"}))
	rt.decisions = register(r, counters("limiter_decisions_total", "Shared limiter decisions: allowed, rejected, or the degraded mode (fail_open, fail_closed, local_share) that decided when its store failed.", "limiter", "result"))
	rt.tokens = register(r, counters("limiter_tokens_total", "Tokens a shared limiter reserved for admitted calls and the tokens they used.", "limiter", "type"))
}

// resolve creates the allow-listed children, so that they exist at 0 from
// the start. "other" has no cooling gauge: one gauge for several
// deployments would say only which reported last, and one stuck at 0 would
// hide that every named deployment cools.
func (rt *routing) resolve() {
	rt.deps = make([]atomic.Pointer[deploymentSeries], rt.deployments.size)
	rt.lims = make([]atomic.Pointer[limiterSeries], rt.limiters.size)
	for i := range rt.deployments.size - 1 {
		if rt.deployments.fixed {
			rt.deployment(i)
		}
	}
	for i := range rt.limiters.size - 1 {
		if rt.limiters.fixed {
			rt.limiter(i)
		}
	}
}

// deployment returns the children of deployment index i, resolved the
// first time.
func (rt *routing) deployment(i int) *deploymentSeries {
	if s := rt.deps[i].Load(); s != nil {
		return s
	}
	name := rt.deployments.name(i)
	s := &deploymentSeries{outcomes: children(routeOutcomes, func(outcome ...string) prometheus.Counter {
		return rt.route.WithLabelValues(name, outcome[0])
	})}
	if name != Other {
		s.cooling = rt.cooling.WithLabelValues(name)
	}
	rt.deps[i].CompareAndSwap(nil, s)
	return rt.deps[i].Load()
}

// limiter returns the children of limiter index i, resolved the first
// time.
func (rt *routing) limiter(i int) *limiterSeries {
	if s := rt.lims[i].Load(); s != nil {
		return s
	}
	name := rt.limiters.name(i)
	with := func(vec *prometheus.CounterVec) func(...string) prometheus.Counter {
		return func(v ...string) prometheus.Counter { return vec.WithLabelValues(name, v[0]) }
	}
	s := &limiterSeries{results: children(limitResults, with(rt.decisions)), tokens: children(limitTokenTypes, with(rt.tokens))}
	rt.lims[i].CompareAndSwap(nil, s)
	return rt.lims[i].Load()
}

// observe counts one router or limiter event; it reports false for any
// other kind.
func (rt *routing) observe(ev llm.Event) bool {
	switch ev.Kind {
	case llm.EventRoute:
		i := 0 // "ok"
		if ev.Reason != routeOutcomes[0] {
			k, _ := llm.ParseKind(ev.Reason) // KindUnknown when it is none
			i = 1 + int(k)
		}
		rt.deployment(rt.deployments.lookup(ev.Source)).outcomes[i].Inc()
	case llm.EventCooldown:
		v := 0.0
		if ev.Delay > 0 {
			v = 1
		}
		if g := rt.deployment(rt.deployments.lookup(ev.Source)).cooling; g != nil {
			g.Set(v)
		}
	case llm.EventLimit:
		s := rt.limiter(rt.limiters.lookup(ev.Source))
		i := slices.Index(limitResults, ev.Reason)
		if i < 0 {
			i = len(limitResults) - 1 // Other
		}
		s.results[i].Inc()
		if ev.Tokens > 0 {
			s.tokens[0].Add(float64(ev.Tokens))
		}
	case llm.EventLimitSettle:
		if ev.Tokens > 0 {
			rt.limiter(rt.limiters.lookup(ev.Source)).tokens[1].Add(float64(ev.Tokens))
		}
	default:
		return false
	}
	return true
}
