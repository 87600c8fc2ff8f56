package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Three probes, three questions:
//
//   - /healthz (liveness): is the process alive? Always 200 while it
//     serves; a restart is the cure only for a wedged process.
//   - /readyz (readiness): can THIS replica answer? 200 until it starts
//     shutting down, then 503. A provider outage or an exhausted quota does
//     not make it unready: it still answers, with fallbacks, and every
//     replica shares the provider, so taking one out would take them all.
//   - /statusz: what is wrong, for people and dashboards: the provider's
//     breaker and quota (stack.Health), Redis, the keys. Always 200; its
//     "provider" field says ready, degraded or unavailable. Alerts come
//     from /metrics, not from here.

// readyz answers the readiness probe.
func (s *server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"draining"}` + "\n"))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
}

// drain makes /readyz answer 503 from now on: the service is shutting down.
func (s *server) drain() { s.draining.Store(true) }

// statusJSON is the body of GET /statusz.
type statusJSON struct {
	Ready    bool          `json:"ready"` // what /readyz says
	Provider providerJSON  `json:"provider"`
	Redis    *redisJSON    `json:"redis,omitempty"` // absent without Redis
	Cache    cacheJSON     `json:"cache"`
	APIKeys  int           `json:"api_keys"` // how many; 0: /generate is open
	Limits   int           `json:"limited_tenants"`
	Uptime   time.Duration `json:"uptime_ns"`
}

type providerJSON struct {
	Name    string   `json:"name"`
	Model   string   `json:"model"`
	Status  string   `json:"status"` // ready, degraded or unavailable
	Reasons []string `json:"reasons,omitempty"`
}

type redisJSON struct {
	Addr    string `json:"addr"`
	Ping    string `json:"ping"`    // "ok" or the error
	Breaker string `json:"breaker"` // the store's breaker: closed, open or half_open
}

type cacheJSON struct {
	Nondeterministic bool `json:"nondeterministic"`
}

// statusz answers GET /statusz.
func (s *server) statusz(w http.ResponseWriter, r *http.Request) {
	ready, degraded, reasons := s.stack.Health.Status()
	st := statusJSON{
		Ready:    !s.draining.Load(),
		Provider: providerJSON{Name: s.provider, Model: s.model, Status: "ready", Reasons: reasons},
		Cache:    cacheJSON{Nondeterministic: s.cfg.CacheNondeterministic},
		Uptime:   time.Since(s.started),
	}
	switch {
	case !ready:
		st.Provider.Status = "unavailable"
	case degraded:
		st.Provider.Status = "degraded"
	}
	if s.cfg.Keys != nil {
		st.APIKeys, st.Limits = len(s.cfg.Keys.keys), len(s.cfg.Keys.limits)
	}
	if s.redis != nil {
		st.Redis = &redisJSON{Addr: s.redis.Options().Addr, Ping: "ok",
			Breaker: llm.BreakerState(s.redisBreaker.Load()).String()}
		ctx, cancel := context.WithTimeout(r.Context(), 200*time.Millisecond)
		if err := s.redis.Ping(ctx).Err(); err != nil {
			st.Redis.Ping = llm.Redact(err.Error())
		}
		cancel()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}

// breakerWatch records the last state a breaker reported (the Redis
// store's), for /statusz.
type breakerWatch struct{ state *atomic.Int32 }

func (b breakerWatch) Observe(_ context.Context, ev llm.Event) {
	if ev.Kind == llm.EventBreakerState {
		b.state.Store(int32(ev.State))
	}
}
