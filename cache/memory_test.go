package cache

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"
	"unsafe"

	"github.com/llmkit/llmkit/llm"
)

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBoundedMemory puts 100,000 distinct 32 KiB answers (3.2 GB, 50 times
// the limit) into a 64 MiB store and checks, every 10,000 inserts and at the
// end, that the live heap stays within 1.1 x the limit plus the baseline.
// Under -short it puts 8,000 (250 MiB, still 4 times the limit).
func TestBoundedMemory(t *testing.T) {
	const (
		limit   = 64 << 20
		size    = 32 << 10
		checkAt = 10_000
	)
	n := 100_000
	if testing.Short() {
		n = 8_000
	}
	base := liveHeap()
	st, err := NewRistretto(RistrettoConfig{MaxCost: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	bound := base + limit*11/10
	var peak uint64
	check := func(i int) {
		st.Wait() // the set buffer drained: only admitted entries are live
		if h := liveHeap(); h > peak {
			peak = h
		}
		if peak > bound {
			t.Fatalf("after %d inserts the live heap is %d MiB, over 1.1 x %d MiB + %d MiB baseline",
				i, peak>>20, limit>>20, base>>20)
		}
	}
	for i := range n {
		text := make([]byte, size)
		binary.LittleEndian.PutUint64(text, uint64(i))
		var k Key
		binary.LittleEndian.PutUint64(k.Digest[:], uint64(i)*0x9e3779b97f4a7c15+1)
		binary.LittleEndian.PutUint64(k.Digest[8:], uint64(i)*0xbf58476d1ce4e5b9+3) // digests spread, as XXH3's do
		e := Entry{Response: &llm.Response{Text: unsafe.String(&text[0], len(text)), FinishReason: llm.FinishStop}}
		if err := st.Set(ctx, k, e, 0x7fffffffffffffff); err != nil {
			t.Fatal(err)
		}
		if (i+1)%checkAt == 0 {
			check(i + 1)
		}
	}
	check(n)
	t.Logf("%d x 32 KiB into 64 MiB: peak live heap %d MiB over a %d MiB baseline", n, (peak-base)>>20, base>>20)
}
