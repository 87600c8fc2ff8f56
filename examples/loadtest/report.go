package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// dist is one metric's percentiles, in milliseconds, read from an
// HdrHistogram. There is no mean on purpose: tails are what users feel.
type dist struct {
	N    int64   `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
}

func distOf(h *hdrhistogram.Histogram) dist {
	if h.TotalCount() == 0 {
		return dist{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return dist{N: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P95: ms(h.ValueAtQuantile(95)), P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
}

// stats is every figure one phase measured.
type stats struct {
	Offered         float64                    `json:"offered"` // the phase's rate, or users in a closed loop
	ElapsedSec      float64                    `json:"elapsed_s"`
	Sent            int                        `json:"sent"`
	Answered        int                        `json:"answered"`
	Good            int                        `json:"good"`
	Outcomes        map[string]int             `json:"outcomes"`
	Statuses        map[string]int             `json:"http_statuses"`
	RequestsPerSec  float64                    `json:"requests_per_s"` // answered requests
	GoodputPerSec   float64                    `json:"goodput_per_s"`  // requests meeting every SLO
	TokensIn        int64                      `json:"tokens_in"`
	TokensOut       int64                      `json:"tokens_out"`
	OutputTokPerSec float64                    `json:"output_tokens_per_s"`
	Latency         map[string]dist            `json:"latency"`  // by metric name
	ByClass         map[string]map[string]dist `json:"by_class"` // class, then metric
	SLO             sloResult                  `json:"slo"`
	Timeline        []windowStats              `json:"timeline"`
}

// sloResult says whether the phase met the SLOs: at least Target of the
// requests sent met every one of them.
type sloResult struct {
	Set        bool     `json:"set"`
	Target     float64  `json:"target"`
	Attainment float64  `json:"attainment"`
	Met        bool     `json:"met"`
	Broken     []string `json:"broken,omitempty"` // metrics whose percentile at Target is over the limit
}

type windowStats struct {
	StartSec float64 `json:"start_s"`
	Sent     int     `json:"sent"`
	Answered int     `json:"answered"`
	Good     int     `json:"good"`
	E2E      dist    `json:"e2e"`
	TTFT     dist    `json:"ttft"`
}

func (c *collector) stats(offered float64, target float64) stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := max(c.last.Sub(c.start), time.Millisecond).Seconds()
	s := stats{Offered: offered, ElapsedSec: el, Sent: c.sent, Answered: c.answered, Good: c.good,
		Outcomes: maps.Clone(c.outcomes), Statuses: map[string]int{},
		RequestsPerSec: float64(c.answered) / el, GoodputPerSec: float64(c.good) / el,
		TokensIn: c.tokensIn, TokensOut: c.tokensOut, OutputTokPerSec: float64(c.tokensOut) / el,
		Latency: map[string]dist{}, ByClass: map[string]map[string]dist{}}
	for code, n := range c.statuses {
		s.Statuses[strconv.Itoa(code)] = n
	}
	for m, name := range metricNames {
		s.Latency[name] = distOf(c.hist[0][m])
	}
	for i, cl := range classes {
		s.ByClass[cl.Name] = map[string]dist{}
		for m, name := range metricNames {
			s.ByClass[cl.Name][name] = distOf(c.hist[1+i][m])
		}
	}
	s.SLO = sloResult{Set: c.slo.set(), Target: target, Attainment: 1, Met: true}
	if c.sent > 0 {
		s.SLO.Attainment = float64(c.good) / float64(c.sent)
	}
	if s.SLO.Set {
		s.SLO.Met = c.sent > 0 && s.SLO.Attainment >= target
		for m, name := range metricNames {
			if l := c.slo.limit(m); l > 0 && c.hist[0][m].ValueAtQuantile(target*100) > l.Microseconds() {
				s.SLO.Broken = append(s.SLO.Broken, name)
			}
		}
	}
	for i, w := range c.windows {
		s.Timeline = append(s.Timeline, windowStats{StartSec: (time.Duration(i) * c.width).Seconds(),
			Sent: w.sent, Answered: w.answered, Good: w.good, E2E: distOf(w.e2e), TTFT: distOf(w.ttft)})
	}
	return s
}

// report is the JSON a run writes: every figure and the config behind it.
type report struct {
	Tool     string        `json:"tool"`
	Started  time.Time     `json:"started"`
	Config   *config       `json:"config"`
	Classes  []promptClass `json:"classes"`
	Result   stats         `json:"result"` // the whole run; for a sweep, its last step
	Sweep    *sweepResult  `json:"sweep,omitempty"`
	LastErr  string        `json:"last_transport_error,omitempty"`
	Met      bool          `json:"met_slo"`
	ExitCode int           `json:"exit_code"`
}

// printSummary writes the human summary of s.
func printSummary(w io.Writer, s *stats) {
	fmt.Fprintf(w, "%d requests in %.1fs: %.1f answered/s, goodput %.1f/s, %.0f output tokens/s (%d in, %d out)\n",
		s.Sent, s.ElapsedSec, s.RequestsPerSec, s.GoodputPerSec, s.OutputTokPerSec, s.TokensIn, s.TokensOut)
	for _, k := range slices.Sorted(maps.Keys(s.Outcomes)) {
		fmt.Fprintf(w, "  %-16s %d\n", k, s.Outcomes[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.Statuses)) {
		fmt.Fprintf(w, "  status %s: %d\n", k, s.Statuses[k])
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ms\tn\tp50\tp90\tp95\tp99\tp99.9\tmax\t")
	for _, name := range metricNames {
		d := s.Latency[name]
		if d.N == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", name, d.N, d.P50, d.P90, d.P95, d.P99, d.P999, d.Max)
	}
	_ = tw.Flush()
	if s.SLO.Set {
		verdict := "met"
		if !s.SLO.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "SLO %s: %.2f%% of requests met every limit (target %.2f%%)", verdict, 100*s.SLO.Attainment, 100*s.SLO.Target)
		if len(s.SLO.Broken) > 0 {
			fmt.Fprintf(w, "; over the limit at that percentile: %v", s.SLO.Broken)
		}
		fmt.Fprintln(w)
	}
}
