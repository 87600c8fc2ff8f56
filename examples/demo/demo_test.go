package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The demo runs its whole workload (three phases, an outage in the middle)
// on fake time, prints its summary, and the stack keeps every call answered
// through the outage: degraded answers in the outage, none failed.
func TestDemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := run(context.Background(), &out, 2*time.Second, 16); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		s := out.String()
		for _, want := range []string{"healthy", "outage", "recovered", "Prometheus", "OpenTelemetry", "Health:"} {
			if !strings.Contains(s, want) {
				t.Fatalf("summary lacks %q:\n%s", want, s)
			}
		}
		row := func(phase string) []string {
			m := regexp.MustCompile(`(?m)^\s*` + phase + `\s+(.*)$`).FindStringSubmatch(s)
			if m == nil {
				t.Fatalf("no row for %s:\n%s", phase, s)
			}
			return strings.Fields(m[1])
		}
		num := func(f string) int {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("not a number %q in:\n%s", f, s)
			}
			return n
		}
		// columns: calls calls/s answered cached degraded failed attempts p50 p95 p99
		healthy, outage := row("healthy"), row("outage")
		if num(healthy[0]) == 0 || num(outage[0]) == 0 {
			t.Fatalf("a phase made no calls:\n%s", s)
		}
		if num(healthy[4]) != 0 || num(healthy[5]) != 0 {
			t.Fatalf("the healthy phase degraded or failed calls:\n%s", s)
		}
		if num(outage[4]) == 0 {
			t.Fatalf("the outage produced no degraded answers:\n%s", s)
		}
		if num(outage[5]) != 0 {
			t.Fatalf("calls failed during the outage although fallbacks were configured:\n%s", s)
		}
		if num(healthy[3]) == 0 {
			t.Fatalf("no cache hits for repeated deterministic questions:\n%s", s)
		}
		if !regexp.MustCompile(`llm_retries_total [1-9]`).MatchString(s) {
			t.Fatalf("no retries counted during the outage:\n%s", s)
		}
	})
}

func TestRunRejectsBadFlags(t *testing.T) {
	if err := run(context.Background(), &bytes.Buffer{}, 0, 1); err == nil {
		t.Fatal("phase 0 accepted")
	}
}
