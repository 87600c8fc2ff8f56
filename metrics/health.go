package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/llmkit/llmkit/llm"
)

type healthConfig struct {
	lowQuota     float64
	quotaTTL     time.Duration
	openDegrades bool
}

// WithLowQuota sets the fraction of a quota limit under which Health
// reports degraded. Default 0.05 (5 % left). It needs the provider to
// report the limit as well as the remaining count.
func WithLowQuota(fraction float64) HealthOption {
	return healthOptionFunc(func(c *healthConfig) { c.lowQuota = fraction })
}

// WithQuotaTTL sets how long an exhausted quota keeps the service not ready
// when the provider did not say when it resets. Default one minute: without
// an expiry a service taken out of rotation would never see the response
// that says the quota is back.
func WithQuotaTTL(d time.Duration) HealthOption {
	return healthOptionFunc(func(c *healthConfig) { c.quotaTTL = d })
}

// WithOpenBreakerDegraded makes an open circuit breaker report degraded
// (200) instead of not ready (503). Use it when a fallback answers while
// the breaker is open, or when every replica shares the provider so that
// taking them all out of rotation helps nobody.
func WithOpenBreakerDegraded() HealthOption {
	return healthOptionFunc(func(c *healthConfig) { c.openDegrades = true })
}

// Health tracks what a readiness endpoint needs: the state of every circuit
// breaker (from llm.EventBreakerState) and the last quota the provider
// reported (from Response.Quota or an *llm.Error's Quota).
//
// It reports:
//   - not ready when a breaker is open (unless WithOpenBreakerDegraded) or
//     a quota count is 0 before its reset;
//   - degraded when a breaker is half-open, or a quota is below
//     WithLowQuota of its limit;
//   - ready otherwise.
//
// Health is an llm.Observer; Middleware registers it on every call and
// reads quotas. It is safe for concurrent use.
type Health struct {
	cfg      healthConfig
	mu       sync.Mutex
	breakers map[string]llm.BreakerState
	quota    llm.Quota
	quotaAt  time.Time
	hasQuota bool
}

var (
	_ llm.Observer = (*Health)(nil)
	_ http.Handler = (*Health)(nil)
)

// NewHealth returns a Health that reports ready until told otherwise.
func NewHealth(opts ...HealthOption) (*Health, error) {
	cfg := healthConfig{lowQuota: 0.05, quotaTTL: time.Minute}
	for _, o := range opts {
		if o != nil {
			o.applyHealth(&cfg)
		}
	}
	if cfg.lowQuota < 0 || cfg.lowQuota >= 1 {
		return nil, fmt.Errorf("metrics: WithLowQuota(%v): want a fraction in [0, 1)", cfg.lowQuota)
	}
	if cfg.quotaTTL <= 0 {
		return nil, fmt.Errorf("metrics: WithQuotaTTL(%v): want > 0", cfg.quotaTTL)
	}
	return &Health{cfg: cfg, breakers: make(map[string]llm.BreakerState)}, nil
}

// Observe records breaker state changes.
func (h *Health) Observe(_ context.Context, ev llm.Event) {
	if ev.Kind != llm.EventBreakerState {
		return
	}
	name := ev.Source
	if name == "" {
		name = "default"
	}
	h.mu.Lock()
	if _, ok := h.breakers[name]; ok || len(h.breakers) < maxBreakers {
		h.breakers[name] = ev.State
	}
	h.mu.Unlock()
}

// ObserveQuota records a quota the provider reported.
func (h *Health) ObserveQuota(q *llm.Quota) {
	if q == nil || !q.Known() {
		return
	}
	h.mu.Lock()
	h.quota, h.quotaAt, h.hasQuota = *q, time.Now(), true
	h.mu.Unlock()
}

// Middleware returns a middleware that makes h an observer of the
// decorators inside it and records the quota each response or error
// reports. h subscribes once, when the middleware wraps its client (see
// llm.Subscriber); when the chain inside refuses (it ends in a ClientFunc,
// say), h is registered on each call's context instead, at one allocation
// per call.
func (h *Health) Middleware() llm.Middleware {
	return func(next llm.Client) llm.Client {
		subscribed := llm.Subscribe(next, h)
		return llm.Decorate(next, func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			if !subscribed {
				ctx = llm.WithObserver(ctx, h)
			}
			resp, err := next.Generate(ctx, req)
			h.ObserveQuota(quotaOf(resp, err))
			return resp, err
		})
	}
}

// Status reports readiness: ready is false when the service should be taken
// out of rotation; degraded is true when it answers but not at its best;
// reasons says why, sorted.
func (h *Health) Status() (ready, degraded bool, reasons []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ready = true
	for name, s := range h.breakers {
		switch s {
		case llm.BreakerOpen:
			reasons = append(reasons, "circuit breaker "+strconv.Quote(name)+" open")
			if h.cfg.openDegrades {
				degraded = true
			} else {
				ready = false
			}
		case llm.BreakerHalfOpen:
			reasons = append(reasons, "circuit breaker "+strconv.Quote(name)+" half-open")
			degraded = true
		}
	}
	if h.hasQuota {
		age := time.Since(h.quotaAt)
		check := func(kind string, remaining, limit int64, reset time.Duration) {
			ttl := reset
			if ttl <= 0 {
				ttl = h.cfg.quotaTTL
			}
			switch {
			case remaining == 0 && age < ttl:
				reasons = append(reasons, kind+" quota exhausted")
				ready = false
			case remaining > 0 && limit > 0 && float64(remaining) < h.cfg.lowQuota*float64(limit):
				reasons = append(reasons, kind+" quota low ("+strconv.FormatInt(remaining, 10)+" of "+strconv.FormatInt(limit, 10)+" left)")
				degraded = true
			}
		}
		q := h.quota
		check("request", q.RemainingRequests, q.LimitRequests, q.ResetRequests)
		check("token", q.RemainingTokens, q.LimitTokens, q.ResetTokens)
	}
	if !ready {
		degraded = false
	}
	slices.Sort(reasons)
	return ready, degraded, reasons
}

// healthBody is the JSON ServeHTTP writes.
type healthBody struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons,omitempty"`
}

// ServeHTTP answers a readiness probe: 200 {"status":"ready"}, 200
// {"status":"degraded","reasons":[...]} or 503
// {"status":"unavailable","reasons":[...]}.
func (h *Health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	ready, degraded, reasons := h.Status()
	body := healthBody{Status: "ready", Reasons: reasons}
	code := http.StatusOK
	switch {
	case !ready:
		body.Status, code = "unavailable", http.StatusServiceUnavailable
	case degraded:
		body.Status = "degraded"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
