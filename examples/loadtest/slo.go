package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// slo is what a request must meet to count toward goodput, parsed from
// -slo "ttft=500ms,itl=50ms,e2e=5s". A zero limit is not checked.
//
//   - ttft: time to the first streamed chunk (streamed requests only);
//   - itl: every gap between two chunks of a stream;
//   - tpot: the request's time per output token after the first;
//   - e2e: the request's whole latency.
//
// Only answered requests (ok, cached, degraded) can be good.
type slo struct {
	TTFT time.Duration `json:"ttft_ns,omitempty"`
	ITL  time.Duration `json:"itl_ns,omitempty"`
	TPOT time.Duration `json:"tpot_ns,omitempty"`
	E2E  time.Duration `json:"e2e_ns,omitempty"`
}

func (s slo) set() bool { return s != slo{} }

// limit returns the SLO on metric m (see metricNames), or 0.
func (s slo) limit(m int) time.Duration {
	switch m {
	case mTTFT:
		return s.TTFT
	case mITL:
		return s.ITL
	case mTPOT:
		return s.TPOT
	case mE2E:
		return s.E2E
	}
	return 0
}

func (s slo) String() string {
	var parts []string
	for m, name := range metricNames {
		if l := s.limit(m); l > 0 {
			parts = append(parts, name+"="+l.String())
		}
	}
	return strings.Join(parts, ",")
}

// Set parses "name=duration,..." (flag.Value).
func (s *slo) Set(v string) error {
	*s = slo{}
	if strings.TrimSpace(v) == "" {
		return nil
	}
	for part := range strings.SplitSeq(v, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		d, err := time.ParseDuration(strings.TrimSpace(val))
		m := slices.Index(metricNames[:], strings.TrimSpace(name))
		switch {
		case !ok || m < 0:
			return fmt.Errorf("%q: want name=duration with name one of %s", part, strings.Join(metricNames[:], ", "))
		case err != nil || d <= 0:
			return fmt.Errorf("%q: %s needs a positive duration such as 500ms", part, name)
		}
		switch m {
		case mTTFT:
			s.TTFT = d
		case mITL:
			s.ITL = d
		case mTPOT:
			s.TPOT = d
		case mE2E:
			s.E2E = d
		}
	}
	return nil
}

// meets reports whether an answered request met every limit.
func (s slo) meets(r *sample) bool {
	if s.E2E > 0 && r.e2e > s.E2E {
		return false
	}
	if !r.streamed || r.chunks == 0 {
		return true
	}
	if s.TTFT > 0 && r.ttft > s.TTFT {
		return false
	}
	if s.ITL > 0 && r.maxGap > s.ITL {
		return false
	}
	return s.TPOT == 0 || r.tpot() <= s.TPOT
}
