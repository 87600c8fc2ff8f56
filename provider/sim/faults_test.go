package sim_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
)

func TestFaultKinds(t *testing.T) {
	for _, tc := range []struct {
		kind       llm.Kind
		sentinel   error
		status     int
		retryAfter time.Duration
	}{
		{llm.KindRateLimited, llm.ErrRateLimited, 429, time.Second},
		{llm.KindTimeout, llm.ErrTimeout, 408, 0},
		{llm.KindUnavailable, llm.ErrUnavailable, 503, 0},
		{llm.KindOverloaded, llm.ErrOverloaded, 529, 0},
		{llm.KindBadRequest, llm.ErrBadRequest, 400, 0},
		{llm.KindAuth, llm.ErrAuth, 401, 0},
		{llm.KindContextLength, llm.ErrContextLength, 400, 0},
		{llm.KindContentFilter, llm.ErrContentFilter, 400, 0},
		{llm.KindStreamCut, llm.ErrStreamCut, 0, 0},
		{llm.KindUnknown, llm.ErrUnknown, 0, 0},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newModel(t, sim.Config{TTFT: 30 * time.Millisecond, Jitter: -1, Errors: map[llm.Kind]float64{tc.kind: 1}})
				resp, took, err := timed(t.Context(), m, llm.Prompt("fail"))
				var e *llm.Error
				if resp != nil || !errors.As(err, &e) {
					t.Fatalf("Generate = %v, %v; want an *llm.Error", resp, err)
				}
				if e.Kind != tc.kind || !errors.Is(err, tc.sentinel) || e.Status != tc.status || e.RetryAfter != tc.retryAfter || e.Provider != sim.Provider || e.Message == "" {
					t.Fatalf("error %#v, want kind %v status %d retry-after %v from %q", e, tc.kind, tc.status, tc.retryAfter, sim.Provider)
				}
				if took != 30*time.Millisecond {
					t.Fatalf("failed after %v, want after TTFT, 30ms", took)
				}
			})
		})
	}
}

func TestRetryAfter(t *testing.T) {
	for cfg, want := range map[time.Duration]time.Duration{0: sim.DefaultRetryAfter, 3 * time.Second: 3 * time.Second, -1: 0} {
		m := newModel(t, sim.Config{TTFT: -1, PerToken: -1, RetryAfter: cfg, Errors: map[llm.Kind]float64{llm.KindRateLimited: 1}})
		_, err := m.Generate(context.Background(), llm.Prompt("x"))
		if got := llm.RetryAfterOf(err); got != want {
			t.Errorf("RetryAfter %v: error says %v, want %v", cfg, got, want)
		}
	}
}

// within5σ reports whether count successes in n trials fit probability p.
func within5σ(count, n int, p float64) bool {
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	return math.Abs(float64(count)-mean) <= 5*sd
}

func TestErrorRates(t *testing.T) {
	rates := map[llm.Kind]float64{llm.KindUnavailable: 0.3, llm.KindRateLimited: 0.05, llm.KindOverloaded: 0.15}
	for _, seed := range []int64{0, 1, 99} {
		m := newModel(t, sim.Config{Seed: seed, TTFT: -1, PerToken: -1, Errors: rates})
		const n = 10_000
		counts := map[llm.Kind]int{}
		ok := 0
		for i := range n {
			resp, err := m.Generate(context.Background(), llm.Prompt(fmt.Sprint(i%7)))
			if err != nil {
				counts[llm.KindOf(err)]++
			} else if resp != nil {
				ok++
			}
		}
		for k, p := range rates {
			if !within5σ(counts[k], n, p) {
				t.Errorf("seed %d: %d of %d calls failed with %v, want about %.0f", seed, counts[k], n, k, p*n)
			}
		}
		if !within5σ(ok, n, 0.5) || ok+counts[llm.KindUnavailable]+counts[llm.KindRateLimited]+counts[llm.KindOverloaded] != n {
			t.Errorf("seed %d: %d successes, failures %v", seed, ok, counts)
		}
	}
}

func TestSetErrors(t *testing.T) {
	m := newModel(t, instant)
	call := func() error {
		_, err := m.Generate(context.Background(), llm.Prompt("status?"))
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	if err := m.SetErrors(map[llm.Kind]float64{llm.KindUnavailable: 1}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := call(); !errors.Is(err, llm.ErrUnavailable) {
			t.Fatalf("during the outage: %v, want unavailable", err)
		}
	}
	if err := m.SetErrors(map[llm.Kind]float64{llm.KindUnavailable: 0.7, llm.KindAuth: 0.7}); err == nil {
		t.Fatal("SetErrors accepted probabilities summing to 1.4")
	}
	if err := call(); !errors.Is(err, llm.ErrUnavailable) {
		t.Fatalf("a rejected SetErrors changed the failures: %v", err)
	}
	if err := m.SetErrors(nil); err != nil {
		t.Fatal(err)
	}
	if err := call(); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

// outcome is what one call did, to compare runs.
type outcome struct {
	kind  llm.Kind
	text  string
	took  time.Duration
	cut   int
	fails bool
}

func run(t *testing.T, seed int64) []outcome {
	var out []outcome
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, sim.Config{Seed: seed, Jitter: 0.5, Errors: map[llm.Kind]float64{
			llm.KindUnavailable: 0.2, llm.KindStreamCut: 0.2,
		}})
		for i := range 200 {
			req := llm.Prompt(fmt.Sprint("repeatable ", i%5))
			chunks := 0
			if i%2 == 0 {
				req.Stream = func(llm.Chunk) error { chunks++; return nil }
			}
			resp, took, err := timed(t.Context(), m, req)
			o := outcome{kind: llm.KindOf(err), took: took, cut: chunks, fails: err != nil}
			if resp != nil {
				o.text = resp.Text
			}
			out = append(out, o)
		}
	})
	return out
}

func TestReproducibleRun(t *testing.T) {
	a, b, c := run(t, 5), run(t, 5), run(t, 6)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("call %d: %+v, then %+v in a run with the same seed", i, a[i], b[i])
		}
	}
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same == len(a) {
		t.Fatal("a different seed gave the same run")
	}
}
