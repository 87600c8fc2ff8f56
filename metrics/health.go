package metrics

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Health serves readiness from the state of each circuit breaker and the
// last quota the provider reported: not ready while a breaker is open
// (degraded with WithOpenBreakerDegraded) or a quota count is 0 before its
// reset; degraded while a breaker is half-open or a quota is below
// WithLowQuota of its limit. Health is an llm.Observer of breaker states,
// given to resilience at construction as stack.New does; its Middleware
// reads quotas. It is safe for concurrent use.
type Health struct {
	cfg      *config
	mu       sync.Mutex
	breakers map[string]llm.BreakerState // the first 16 names
	quota    *llm.Quota                  // nil until one is reported
	quotaAt  time.Time
}

var (
	_ llm.Observer = (*Health)(nil)
	_ http.Handler = (*Health)(nil)
)

// NewHealth returns a Health that reports ready until told otherwise.
func NewHealth(opts ...Option) (*Health, error) {
	cfg, err := newConfig(forHealth, opts)
	if err != nil {
		return nil, err
	}
	return &Health{cfg: cfg, breakers: make(map[string]llm.BreakerState)}, nil
}

// Observe records breaker state changes.
func (h *Health) Observe(_ context.Context, ev llm.Event) {
	if ev.Kind != llm.EventBreakerState {
		return
	}
	name := cmp.Or(ev.Source, "default")
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.breakers[name]; ok || len(h.breakers) < maxBreakers {
		h.breakers[name] = ev.State
	}
}

// Middleware returns a middleware that records the quota each response or
// error reports. It registers nothing on the call's context.
func (h *Health) Middleware() llm.Middleware {
	return func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			resp, err := next.Generate(ctx, req)
			if q := quotaOf(resp, err); q != nil && q.Known() {
				q := *q
				h.mu.Lock()
				h.quota, h.quotaAt = &q, time.Now()
				h.mu.Unlock()
			}
			return resp, llm.RedactError(err)
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
		switch {
		case s == llm.BreakerClosed:
			continue
		case s == llm.BreakerOpen && !h.cfg.openDegrades:
			ready = false
		default:
			degraded = true
		}
		reasons = append(reasons, fmt.Sprintf("circuit breaker %q %s", name, strings.ReplaceAll(s.String(), "_", "-")))
	}
	check := func(kind string, remaining, limit int64, reset time.Duration) {
		switch {
		case remaining == 0 && time.Since(h.quotaAt) < cmp.Or(max(reset, 0), h.cfg.quotaTTL):
			reasons = append(reasons, kind+" quota exhausted")
			ready = false
		case remaining > 0 && limit > 0 && float64(remaining) < h.cfg.lowQuota*float64(limit):
			reasons = append(reasons, fmt.Sprintf("%s quota low (%d of %d left)", kind, remaining, limit))
			degraded = true
		}
	}
	if q := h.quota; q != nil {
		check("request", q.RemainingRequests, q.LimitRequests, q.ResetRequests)
		check("token", q.RemainingTokens, q.LimitTokens, q.ResetTokens)
	}
	slices.Sort(reasons)
	return ready, degraded && ready, reasons
}

// ServeHTTP answers a readiness probe: 200 {"status":"ready"}, 200
// {"status":"degraded","reasons":[...]} or 503
// {"status":"unavailable","reasons":[...]}.
func (h *Health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	ready, degraded, reasons := h.Status()
	status, code := "ready", http.StatusOK
	if !ready {
		status, code = "unavailable", http.StatusServiceUnavailable
	} else if degraded {
		status = "degraded"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons,omitempty"`
	}{status, reasons})
}
