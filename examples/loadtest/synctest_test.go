package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// roundTrip is an http.RoundTripper from a function: inside a synctest
// bubble it answers on the fake clock, so timings are exact.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func answer(body string) *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
}

// streamAfter answers with SSE: the first chunk after ttft, then one chunk
// per gap, then "done".
func streamAfter(r *http.Request, ttft time.Duration, gaps ...time.Duration) *http.Response {
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		for _, d := range append([]time.Duration{ttft}, gaps...) {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
			if _, err := io.WriteString(pw, "data: {\"text\":\"w \"}\n\n"); err != nil {
				return
			}
		}
		fmt.Fprintf(pw, "event: done\ndata: {\"cached\":false,\"degraded\":false,\"usage\":{\"input\":9,\"output\":%d}}\n\n", len(gaps)+1)
	}()
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr}
}

func syncTarget(t *testing.T, cfg *config, rt roundTrip) *target {
	tg := newTarget(cfg, cfg.Concurrency)
	tg.client.Transport = rt
	return tg
}

func near(got, want float64) bool { return math.Abs(got-want) <= want*0.002+0.002 }

// A stream's time to first chunk, inter-token gaps, time per output token
// and end-to-end latency are measured exactly, and judged against the SLO.
func TestStreamTimings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, "http://127.0.0.1:1")
		cfg.StreamShare, cfg.Concurrency = 1, 1
		cfg.SLO = slo{TTFT: 250 * time.Millisecond, ITL: 25 * time.Millisecond}
		tg := syncTarget(t, cfg, func(r *http.Request) (*http.Response, error) {
			return streamAfter(r, 200*time.Millisecond, 20*time.Millisecond, 30*time.Millisecond), nil
		})
		st := runPhase(t.Context(), tg, phase{users: 1, duration: time.Minute, requests: 4}, 1).stats(1, 0.99)
		l := st.Latency
		if st.Answered != 4 || l["ttft"].N != 4 || l["itl"].N != 8 || l["tpot"].N != 4 || l["e2e"].N != 4 {
			t.Fatalf("answered %d, counts %+v", st.Answered, l)
		}
		if !near(l["ttft"].P50, 200) || !near(l["ttft"].Max, 200) || !near(l["itl"].P50, 20) || !near(l["itl"].Max, 30) ||
			!near(l["tpot"].P50, 25) || !near(l["e2e"].P99, 250) {
			t.Fatalf("latencies %+v", l)
		}
		if st.TokensIn != 36 || st.TokensOut != 12 {
			t.Fatalf("tokens %d/%d, want 36/12", st.TokensIn, st.TokensOut)
		}
		// TTFT 200ms meets 250ms, but the 30ms gap breaks itl=25ms.
		if st.Good != 0 || st.SLO.Met || len(st.SLO.Broken) != 1 || st.SLO.Broken[0] != "itl" {
			t.Fatalf("good %d, slo %+v", st.Good, st.SLO)
		}
	})
}

// A stream that ends with neither "done" nor "error" is a stream_cut; an
// "error" event carries its kind.
func TestStreamFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, "http://127.0.0.1:1")
		cfg.StreamShare = 1
		n := 0
		tg := syncTarget(t, cfg, func(r *http.Request) (*http.Response, error) {
			n++
			if n%2 == 0 {
				return answer("data: {\"text\":\"a\"}\n\nevent: error\ndata: {\"error\":{\"kind\":\"unavailable\"}}\n\n"), nil
			}
			return answer("data: {\"text\":\"a\"}\n\n"), nil
		})
		st := runPhase(t.Context(), tg, phase{users: 1, duration: time.Minute, requests: 6}, 1).stats(1, 0.99)
		if st.Outcomes[outStreamCut] != 3 || st.Outcomes["unavailable"] != 3 || st.Answered != 0 || st.Statuses["200"] != 6 {
			t.Fatalf("outcomes %v statuses %v", st.Outcomes, st.Statuses)
		}
	})
}

// An open loop keeps its rate whatever the answers; arrivals that find
// every slot busy are dropped and counted, not delayed.
func TestOpenLoopRateAndDrops(t *testing.T) {
	for _, tc := range []struct {
		name           string
		slots          int
		poisson        bool
		minSent, maxSt int
		dropped        bool
	}{
		{"constant, room to spare", 100, false, 100, 101, false},
		{"poisson, room to spare", 100, true, 80, 120, false},
		{"constant, two slots", 2, false, 100, 101, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig(t, "http://127.0.0.1:1")
				cfg.StreamShare, cfg.Concurrency = 0, tc.slots
				tg := syncTarget(t, cfg, func(r *http.Request) (*http.Response, error) {
					time.Sleep(50 * time.Millisecond)
					return answer(`{"usage":{"input":1,"output":1}}`), nil
				})
				st := runPhase(t.Context(), tg, phase{rate: 100, poisson: tc.poisson, duration: time.Second, requests: 1 << 20}, 7).stats(100, 0.99)
				if st.Sent < tc.minSent || st.Sent > tc.maxSt {
					t.Fatalf("sent %d in 1s at 100/s, want %d..%d", st.Sent, tc.minSent, tc.maxSt)
				}
				d := st.Outcomes[outDropped]
				if (d > 0) != tc.dropped || d+st.Answered != st.Sent {
					t.Fatalf("outcomes %v of %d sent", st.Outcomes, st.Sent)
				}
				if tc.dropped && st.Answered > 2*20+2 {
					t.Fatalf("%d answered through 2 slots of 50ms in 1s", st.Answered)
				}
				if e := st.Latency["e2e"]; !near(e.P99, 50) || !near(e.P50, 50) {
					t.Fatalf("e2e %+v, want 50ms: nothing waited", e)
				}
			})
		})
	}
}

// Closed-loop users wait -wait between calls, like Locust's between().
func TestClosedLoopWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, "http://127.0.0.1:1")
		cfg.StreamShare, cfg.Wait = 0, waitRange{time.Second, time.Second}
		tg := syncTarget(t, cfg, func(r *http.Request) (*http.Response, error) { return answer(`{}`), nil })
		st := runPhase(t.Context(), tg, phase{users: 3, duration: 9500 * time.Millisecond, requests: 1 << 20}, 1).stats(3, 0.99)
		if st.Sent != 30 {
			t.Fatalf("3 users pausing 1s for 9.5s sent %d, want 30", st.Sent)
		}
	})
}

// A server of 4 slots of 100 ms (40 requests/s) meets e2e=300ms until the
// offered rate passes its capacity: the sweep stops there, reports it, and
// the run passes because earlier steps met the SLO.
func TestSweepStopsWhereSLOBreaks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, "http://127.0.0.1:1")
		cfg.Profile, cfg.StreamShare, cfg.Concurrency = "sweep", 0, 1000
		cfg.SweepRates, cfg.StepDuration, cfg.Duration, cfg.Requests = []float64{10, 20, 30, 80, 160}, 2*time.Second, time.Minute, 1<<20
		cfg.SLO, cfg.Arrivals = slo{E2E: 300 * time.Millisecond}, "constant"
		slots := make(chan struct{}, 4)
		rt := roundTrip(func(r *http.Request) (*http.Response, error) {
			select {
			case slots <- struct{}{}:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
			defer func() { <-slots }()
			time.Sleep(100 * time.Millisecond)
			return answer(`{}`), nil
		})
		var out bytes.Buffer
		code, err := runWith(context.Background(), &out, cfg, rt)
		if code != exitMet {
			t.Fatalf("exit %d: %v\n%s", code, err, out.String())
		}
		sw := readReport(t, cfg.Out).Sweep
		if sw == nil || !sw.Crossed || sw.CrossedAt != 80 || sw.LastMet != 30 || len(sw.Steps) != 4 {
			t.Fatalf("sweep %+v\n%s", sw, out.String())
		}
		if g := sw.Steps[2].GoodputPerSec; g < 25 || g > 31 {
			t.Fatalf("goodput at 30/s: %.1f: %+v", g, sw.Steps[2])
		}
		if !strings.Contains(out.String(), "SLO missed at rate 80") {
			t.Fatalf("summary:\n%s", out.String())
		}
	})
}
