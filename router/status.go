package router

import (
	"time"
)

// Status is what the router knows of one deployment now, for an operator's
// page or a test.
type Status struct {
	Name, Group string
	Tags        []string
	Weight      float64
	InFlight    int
	// CoolingFor is how long it still cools; 0 when it does not.
	CoolingFor time.Duration
	// P90 and StreamP90 are its windowed p90 latency of whole calls and
	// of the time to first chunk of streams; 0 while unknown. They are
	// measured under LowestLatency only.
	P90, StreamP90 time.Duration
}

// Status returns the status of every deployment, in Config order.
func (r *Router) Status() []Status {
	now := r.now()
	out := make([]Status, len(r.deps))
	for i := range r.deps {
		d := &r.deps[i]
		s := Status{Name: d.Name, Group: d.Group, Tags: append([]string(nil), d.Tags...), Weight: d.Weight, InFlight: int(d.inflight.Load())}
		if u := time.Duration(d.until.Load()); u > now {
			s.CoolingFor = u - now
		}
		s.P90, _ = d.lat[0].estimate(now, r.cfg.LatencyTTL)
		s.StreamP90, _ = d.lat[1].estimate(now, r.cfg.LatencyTTL)
		out[i] = s
	}
	return out
}
