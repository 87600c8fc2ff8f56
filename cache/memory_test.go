package cache

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
)

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBoundedMemory fills an 8 MiB store through the middleware with
// distinct answers, five to eight times what it holds, of 200 bytes and of
// 64 KiB, each a fresh allocation as a provider's would be, over 100 five-
// second windows of the bubble's clock (so that anything kept per window of
// time, as ristretto's expiry buckets are, shows). Every tenth of the way
// it checks that the live heap has grown by at most 1.1 x MaxCost over the
// baseline (taken before the store exists, so ristretto's fixed structures
// count too); at the end, that the entries the store holds are costed at
// 3/4 of MaxCost or more, so that the bound is not met by keeping nothing.
func TestBoundedMemory(t *testing.T) {
	const limit = 8 << 20
	for _, tc := range []struct{ size, n int }{{200, 200_000}, {64 << 10, 1_000}} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { checkBoundedMemory(t, limit, tc.size, tc.n) })
		})
	}
}

func checkBoundedMemory(t *testing.T, limit, size, n int) {
	base := liveHeap()
	st, err := NewRistretto(RistrettoConfig{MaxCost: int64(limit)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	filler := strings.Repeat("x", size-16)
	up := llm.ClientFunc(func(_ context.Context, req *llm.Request) (*llm.Response, error) {
		text := fmt.Sprintf("%16s", req.Messages[0].Content) + filler // a fresh allocation
		return &llm.Response{Text: text, FinishReason: llm.FinishStop}, nil
	})
	mw, err := Middleware(st, WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c := mw(up)
	ctx := context.Background()
	var peak int64
	for i := range n {
		if _, err := c.Generate(ctx, det(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if (i+1)%(n/100) == 0 {
			time.Sleep(5 * time.Second)
		}
		if (i+1)%(n/10) == 0 {
			st.Wait() // ristretto's buffer applied: only admitted entries are live
			peak = max(peak, int64(liveHeap())-int64(base))
			if float64(peak) > 1.1*float64(limit) {
				t.Fatalf("after %d answers of %d bytes the live heap grew by %.3f x MaxCost, over 1.1",
					i+1, size, float64(peak)/float64(limit))
			}
		}
	}
	kept := 0
	for i := range n {
		if _, ok, _ := st.Get(ctx, mustKey(t, det(strconv.Itoa(i)))); ok {
			kept++
		}
	}
	var b strings.Builder
	b.Grow(size + len(llm.FinishStop))
	held := float64(kept) * float64(itemOverhead+int64(b.Cap())) / float64(limit)
	t.Logf("%d answers of %d bytes into %d MiB: peak heap growth %.3f x MaxCost; %d kept, costed at %.2f x MaxCost",
		n, size, limit>>20, float64(peak)/float64(limit), kept, held)
	if held < 0.75 {
		t.Fatalf("the store keeps %d entries, costed at %.2f x MaxCost: want at least 0.75", kept, held)
	}
}
