package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// Comparing durations with the nanosecond bounds puts each one in the
// bucket a float comparison of its seconds (client_golang's rule) would,
// right up to the bounds.
func TestBoundNanosMatchesFloatComparison(t *testing.T) {
	bounds := []float64{0, 1e-9, 1.5e-9, 0.05, 0.1, 0.25, 0.3, 1.0 / 3, 0.7, 1, 2.5, 7.1, 120, 1e6 + 0.1, 9.2e9, math.Inf(1), -0.1}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		bounds = append(bounds, rng.Float64()*float64(rng.IntN(1000)))
	}
	for _, b := range bounds {
		n := boundNanos(b)
		for _, d := range []int64{n - 2, n - 1, n, n + 1, n + 2} {
			if d < 0 || n == math.MaxInt64 && d > n-2 {
				continue
			}
			if got, want := d <= n, time.Duration(d).Seconds() <= b; got != want {
				t.Errorf("bound %v (%d ns), duration %d ns: integer says %v, float says %v", b, n, d, got, want)
			}
		}
	}
	if boundNanos(math.Inf(1)) != math.MaxInt64 || boundNanos(math.Inf(-1)) != math.MinInt64 {
		t.Error("infinite bounds must clamp")
	}
}

func TestBucketIndex(t *testing.T) {
	_, ns := upperBounds([]float64{0.1, 1, math.Inf(1)})
	if len(ns) != 2 {
		t.Fatalf("a trailing +Inf must be dropped, got %v", ns)
	}
	for d, want := range map[time.Duration]int{0: 0, 100 * time.Millisecond: 0, 100*time.Millisecond + 1: 1, time.Second: 1, time.Second + 1: 2, time.Hour: 2} {
		if got := bucket(ns, d); got != want {
			t.Errorf("bucket(%v) = %d, want %d", d, got, want)
		}
	}
}

// The cells of a pair do not overlap, and shards never share a cache line.
func TestCellLayout(t *testing.T) {
	l := newCellLayout(10, 9)
	used := map[int]string{}
	mark := func(i int, what string) {
		if prev, ok := used[i]; ok {
			t.Errorf("cell %d is %s and %s", i, prev, what)
		}
		if i < 0 || i >= l.n {
			t.Errorf("cell %d (%s) outside [0, %d)", i, what, l.n)
		}
		used[i] = what
	}
	for i := range cellFixed {
		if i != cellOK && i != cellOKCall {
			mark(i, "fixed")
		}
	}
	for i := range 11 {
		mark(l.durBuckets+i, "duration bucket")
	}
	for i := range 10 {
		mark(l.ttftBuckets+i, "ttft bucket")
	}
	for s := range numStatus {
		mark(l.reqCell(s), "request")
		mark(l.callCell(s), "call")
	}
	if len(used) != l.n {
		t.Errorf("%d cells used, layout says %d", len(used), l.n)
	}
	if l.stride-l.n < 8 {
		t.Errorf("stride %d leaves less than a cache line after %d cells", l.stride, l.n)
	}
}
