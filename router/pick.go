package router

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// pick decides which deployment of group g a call tries next: among those
// with Weight > 0, not in tried, not cooling and under their RPM/TPM, the
// one the strategy prefers, ties drawn by weight. It returns -1 when none
// is available. earliest is the instant (Router.now) the first of the
// group's cooling or capped, untried deployments comes back, 0 when none
// will. It takes no lock and allocates nothing.
func (r *Router) pick(ctx context.Context, g int, tried uint64, stream bool, now time.Duration) (chosen int, earliest int64) {
	var idx [maxDeployments]uint8
	var w [maxDeployments]float64
	n, sum := 0, 0.0
	best := int64(math.MaxInt64)
	minute := int64(now/time.Minute) + 1
	for _, i := range r.groups[g] {
		d := &r.deps[i]
		if tried&(1<<i) != 0 || d.Weight == 0 {
			continue
		}
		if u := d.until.Load(); u != 0 {
			if int64(now) < u {
				earliest = earlier(earliest, u)
				continue
			}
			r.ended(ctx, d, u)
		}
		if d.capped(now) {
			earliest = earlier(earliest, minute*int64(time.Minute))
			continue
		}
		score := d.Weight
		switch r.cfg.Strategy {
		case UsageBased:
			score *= d.headroom(now) * d.quotaShare(now)
		case LeastInFlight, LowestLatency:
			key := d.inflight.Load()
			if r.cfg.Strategy == LowestLatency {
				key = r.latencyKey(d, stream, now, key)
			}
			if key > best {
				continue
			}
			if key < best {
				best, n, sum = key, 0, 0
			}
		}
		idx[n], w[n] = uint8(i), score
		n++
		sum += score
	}
	switch n {
	case 0:
		return -1, earliest
	case 1:
		return int(idx[0]), earliest
	}
	u := r.float64() * sum
	for k := range n - 1 {
		if u -= w[k]; u < 0 {
			return int(idx[k]), earliest
		}
	}
	return int(idx[n-1]), earliest
}

// latencyKey ranks d for LowestLatency: its p90 in ns when a recent one
// is known; -1 (first) when unknown and idle, so it gets measured;
// MaxInt64-1 (last) when unknown and already being measured.
func (r *Router) latencyKey(d *deployment, stream bool, now time.Duration, inflight int64) int64 {
	w := &d.lat[0]
	if stream {
		w = &d.lat[1]
	}
	if p, ok := w.estimate(now, r.cfg.LatencyTTL); ok {
		return int64(p)
	}
	if inflight == 0 {
		return -1
	}
	return math.MaxInt64 - 1
}

// float64 draws uniformly from [0, 1), from Config.Rand when set.
func (r *Router) float64() float64 {
	if r.cfg.Rand == nil {
		return rand.Float64()
	}
	r.randMu.Lock()
	x := r.cfg.Rand.Uint64()
	r.randMu.Unlock()
	return float64(x>>11) * 0x1p-53
}

// earlier returns the earlier of two monotonic instants, 0 meaning none.
func earlier(a, b int64) int64 {
	if a == 0 || b < a {
		return b
	}
	return a
}
