package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/llmkit/llmkit/llm"
)

func printPhases(w io.Writer, results []*phaseStats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tcalls\tcalls/s\tanswered\tcached\tdegraded\tfailed\tretried\tp50\tp95\tp99\t")
	all := &phaseStats{name: "all", errors: map[llm.Kind]int{}}
	for _, r := range append(results, all) {
		if r != all {
			all.add(r)
			all.elapsed += r.elapsed
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%d\t%d\t%d\t%d\t%v\t%v\t%v\t\n",
			r.name, r.calls, float64(r.calls)/r.elapsed.Seconds(), pct(r.ok, r.calls),
			r.cached, r.degraded, r.calls-r.ok, r.retried,
			round(r.percentile(0.50)), round(r.percentile(0.95)), round(r.percentile(0.99)))
	}
	_ = tw.Flush()
	for _, r := range results {
		if len(r.errors) == 0 {
			continue
		}
		var parts []string
		for k, n := range r.errors {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "errors in %s: %s\n", r.name, strings.Join(parts, " "))
	}
	fmt.Fprintln(w, "answered includes cached and degraded answers: a degraded answer is a stale cache")
	fmt.Fprintln(w, "entry or the static fallback message, served instead of an error while the model fails;")
	fmt.Fprintln(w, "retried counts answers that took more than one provider attempt.")
}

func pct(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

// round keeps three significant digits or so: cache hits take microseconds,
// provider calls tens of milliseconds.
func round(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(10 * time.Millisecond)
}

// printObservability shows what an operator would see: a few Prometheus
// series, the traces and log lines recorded, and the readiness status.
func printObservability(w io.Writer, st *demoStack) error {
	families, err := st.registry.Gather()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "Prometheus (selected series; full exposition on /metrics in a service):")
	show := map[string]bool{
		"llm_requests_total": true, "llm_provider_calls_total": true, "llm_retries_total": true,
		"llm_cache_requests_total": true, "llm_fallbacks_total": true, "llm_rate_limited_total": true,
		"llm_circuit_breaker_state": true, "llm_tokens_total": true, "llm_quota_remaining": true,
	}
	for _, mf := range families {
		if !show[mf.GetName()] {
			continue
		}
		for _, m := range aggregate(mf) {
			fmt.Fprintf(w, "  %s\n", m)
		}
	}
	spans := st.spans.Ended()
	var spanErrors int
	for _, s := range spans {
		if s.Status().Code == 1 { // codes.Error
			spanErrors++
		}
	}
	fmt.Fprintf(w, "\nOpenTelemetry: %d spans recorded (%d with an error status); e.g. %q\n", len(spans), spanErrors, firstSpanName(spans))
	lines := strings.Count(st.logs.String(), "\n")
	fmt.Fprintf(w, "Logs: %d lines at warn or above (one per degraded or failed call)\n", lines)
	if lines > 0 {
		first, _, _ := strings.Cut(st.logs.String(), "\n")
		fmt.Fprintf(w, "  e.g. %s\n", first)
	}
	if st.capturer != nil {
		// Captures are saved in the background when their window closes:
		// Close waits for them (and is safe to call again at the end).
		_ = st.capturer.Close()
	}
	st.captures.mu.Lock()
	switch n := len(st.captures.names); {
	case st.capturer == nil:
	case n > 0:
		fmt.Fprintf(w, "Slow-call captures: %d runtime trace snapshot(s), %d KiB, e.g. %s\n", n, st.captures.bytes>>10, st.captures.names[0])
	default:
		fmt.Fprintf(w, "Slow-call captures: none (no call took %v)\n", st.slow)
	}
	st.captures.mu.Unlock()
	ready, degraded, reasons := st.built.Health.Status()
	name, state := st.breaker.last()
	fmt.Fprintf(w, "Health: ready=%v degraded=%v %v; breaker %q is %s\n", ready, degraded, reasons, name, state)
	return nil
}

type spanNamer interface{ Name() string }

func firstSpanName[S spanNamer](spans []S) string {
	if len(spans) == 0 {
		return ""
	}
	return spans[0].Name()
}

// aggregate sums a family's series by the labels worth reading here, so
// the output stays short: requests by status, cache lookups by result.
func aggregate(mf *dto.MetricFamily) []string {
	keep := map[string]bool{"status": true, "result": true, "reason": true, "type": true, "kind": true, "name": true}
	sums := map[string]float64{}
	for _, m := range mf.GetMetric() {
		var labels []string
		for _, lp := range m.GetLabel() {
			if keep[lp.GetName()] {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
		}
		key := mf.GetName()
		if len(labels) > 0 {
			key += "{" + strings.Join(labels, ",") + "}"
		}
		switch {
		case m.GetCounter() != nil:
			sums[key] += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sums[key] += m.GetGauge().GetValue()
		}
	}
	out := make([]string, 0, len(sums))
	for k, v := range sums {
		out = append(out, fmt.Sprintf("%s %g", k, v))
	}
	sort.Strings(out)
	return out
}
