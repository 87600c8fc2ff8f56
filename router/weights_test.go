package router_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/router"
)

// chiSquare999 holds the chi-square critical values at p = 0.001 by degrees
// of freedom: a fair router exceeds them once in a thousand seeds, and the
// seed is fixed, so the test is deterministic.
var chiSquare999 = map[int]float64{1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52}

// weightTest routes n calls over deployments with the given weights and
// checks the counts against the weights' shares by chi-square; a weight of
// 0 must get no call at all.
func weightTest(t *testing.T, weights []float64, n int) {
	t.Helper()
	counts := make([]atomic.Int64, len(weights))
	var deps []router.Deployment
	var sum float64
	for i, w := range weights {
		deps = append(deps, router.Deployment{Name: fmt.Sprintf("d%d", i), Weight: w,
			Client: llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
				counts[i].Add(1)
				return &llm.Response{Text: "ok"}, nil
			})})
		sum += w
	}
	r := mustNew(t, router.Config{Deployments: deps, Rand: rand.NewPCG(42, 7)})
	req := llm.Prompt("hello")
	for range n {
		if _, err := r.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	chi, df := 0.0, -1
	for i, w := range weights {
		got := float64(counts[i].Load())
		if w == 0 {
			if got != 0 {
				t.Fatalf("deployment d%d of weight 0 got %v calls", i, got)
			}
			continue
		}
		want := float64(n) * w / sum
		chi += (got - want) * (got - want) / want
		df++
		t.Logf("d%d weight %v: %v calls, expected %.0f", i, w, got, want)
	}
	if chi > chiSquare999[df] {
		t.Fatalf("chi-square %.2f with %d degrees of freedom > %.2f: the weights do not hold", chi, df, chiSquare999[df])
	}
}

// Over 10^5 calls the traffic follows the weights (chi-square), and a
// deployment of weight 0 gets nothing.
func TestWeightsHold(t *testing.T) {
	weightTest(t, []float64{4, 2, 1, 0, 0.5, 2.5}, 100_000)
}

// Small fractional weights get their share: they are not truncated to 0.
func TestFractionalWeights(t *testing.T) {
	weightTest(t, []float64{0.3, 0.05, 0.65, 0.001}, 100_000)
}
