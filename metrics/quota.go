package metrics

import (
	"cmp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmkit/llmkit/llm"
)

// quotaKinds are the kind label values of llm_quota_remaining.
var quotaKinds = [2]string{"requests", "tokens"}

// quotaVec is llm_quota_remaining: a GaugeVec whose series appear when a
// provider reports them (an unknown quota never reads as 0) and go when
// the quota resets. Beside each, llm_quota_updated_timestamp_seconds
// holds the time of its last report, so that a rule can tell a fresh 0
// from an old one. The expiry state lives with the registered vector, so
// every Prometheus on a registry shares it.
type quotaVec struct {
	*prometheus.GaugeVec
	updated *prometheus.GaugeVec
	mu      sync.Mutex
	kinds   [2]quotaSeries
}

type quotaSeries struct {
	gauge, updated prometheus.Gauge
	timer          *time.Timer   // nil while the series is absent
	until          time.Duration // the reset of the last report, from now()
	fires          time.Duration // when timer fires, from now()
}

// report exports the counts q reports; ttl is their life when q gives no
// reset.
func (v *quotaVec) report(q *llm.Quota, ttl time.Duration) {
	v.set(0, q.RemainingRequests, q.ResetRequests, ttl)
	v.set(1, q.RemainingTokens, q.ResetTokens, ttl)
}

func (v *quotaVec) set(i int, remaining int64, reset, ttl time.Duration) {
	if remaining < 0 { // not reported
		return
	}
	ttl = cmp.Or(max(reset, 0), ttl)
	v.mu.Lock()
	defer v.mu.Unlock()
	s := &v.kinds[i]
	s.until = now() + ttl
	switch {
	case s.timer == nil:
		s.gauge, s.updated = v.WithLabelValues(quotaKinds[i]), v.updated.WithLabelValues(quotaKinds[i])
		s.timer = time.AfterFunc(ttl, func() { v.expire(i) })
		s.fires = s.until
	case s.until < s.fires:
		s.timer.Reset(ttl)
		s.fires = s.until
	}
	s.gauge.Set(float64(remaining))
	s.updated.SetToCurrentTime()
}

// expire deletes series i once its reset has passed, or waits on.
func (v *quotaVec) expire(i int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := &v.kinds[i]
	if s.timer == nil {
		return
	}
	if left := s.until - now(); left > 0 {
		s.timer.Reset(left)
		s.fires = s.until
		return
	}
	v.DeleteLabelValues(quotaKinds[i])
	v.updated.DeleteLabelValues(quotaKinds[i])
	s.timer, s.gauge, s.updated = nil, nil, nil
}
