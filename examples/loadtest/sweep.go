package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// sweepResult is a sweep's steps, up to the first that missed the SLOs.
type sweepResult struct {
	Over    string  `json:"over"` // "rate" (open loop) or "users" (closed loop)
	Steps   []stats `json:"steps"`
	Crossed bool    `json:"crossed"`
	// CrossedAt is the first step's load that missed the SLOs, and
	// LastMet the one before it (0 when even the first missed them).
	CrossedAt float64 `json:"crossed_at,omitempty"`
	LastMet   float64 `json:"last_met,omitempty"`
	Reason    string  `json:"reason,omitempty"`
}

// sweep runs one phase per step of cfg.SweepRates or cfg.SweepUsers, each
// for cfg.StepDuration, and stops after the first step that misses the
// SLOs or when the run's -duration or -requests are spent.
func sweep(ctx context.Context, w io.Writer, t *target, cfg *config, seed uint64) *sweepResult {
	res := &sweepResult{Over: "rate"}
	steps := cfg.SweepRates
	if len(cfg.SweepUsers) > 0 {
		res.Over = "users"
		steps = nil
		for _, u := range cfg.SweepUsers {
			steps = append(steps, float64(u))
		}
	}
	deadline := time.Now().Add(cfg.Duration)
	left := cfg.Requests
	for i, load := range steps {
		d := min(cfg.StepDuration, time.Until(deadline))
		if d <= 0 || left <= 0 || ctx.Err() != nil {
			res.Reason = "the run's -duration or -requests ran out"
			break
		}
		p := phase{duration: d, requests: left, poisson: cfg.Arrivals == "poisson"}
		if res.Over == "users" {
			p.users = int(load)
		} else {
			p.rate = load
		}
		col := runPhase(ctx, t, p, seed+uint64(i)<<32)
		st := col.stats(load, cfg.SLOTarget)
		res.Steps = append(res.Steps, st)
		left -= st.Sent
		fmt.Fprintf(w, "step %d, %s %g: %.1f answered/s, goodput %.1f/s, p99 ttft %.1fms, p99 e2e %.1fms, SLO attainment %.2f%%\n",
			i+1, res.Over, load, st.RequestsPerSec, st.GoodputPerSec, st.Latency["ttft"].P99, st.Latency["e2e"].P99, 100*st.SLO.Attainment)
		if !st.SLO.Met {
			res.Crossed, res.CrossedAt = true, load
			if i > 0 {
				res.LastMet = steps[i-1]
			}
			res.Reason = fmt.Sprintf("SLO missed at %s %g: %.2f%% of requests met it (target %.2f%%), over the limit: %v",
				res.Over, load, 100*st.SLO.Attainment, 100*st.SLO.Target, st.SLO.Broken)
			break
		}
	}
	if res.Reason == "" {
		res.Reason = "every step met the SLOs"
	}
	return res
}
