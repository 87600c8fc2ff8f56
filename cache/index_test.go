package cache

import (
	"context"
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/llmkit/llmkit/llm"
)

// ikey returns a key numbered n whose index hash is h.
func ikey(n, h uint64) Key {
	var k Key
	binary.LittleEndian.PutUint64(k.Digest[:8], n)
	binary.LittleEndian.PutUint64(k.Digest[8:], h)
	return k
}

// spread returns a key numbered n with a well-mixed index hash.
func spread(n uint64) Key { return ikey(n, (n+1)*0x9e3779b97f4a7c15) }

func item(k Key) *ristrettoItem { return &ristrettoItem{key: k} }

// len returns how many items the index holds (its stripes' counts).
func (x *index) len() int {
	n := 0
	for i := range x.stripes {
		x.stripes[i].mu.Lock()
		n += x.stripes[i].n
		x.stripes[i].mu.Unlock()
	}
	return n
}

// lookup is get for a key by value.
func (x *index) lookup(k Key) *ristrettoItem { return x.get(&k) }

// checkIndex checks x's bookkeeping against its contents: every stripe's
// count, every bucket's spill count, no key twice.
func checkIndex(t *testing.T, x *index) {
	t.Helper()
	tb := x.t.Load()
	seen := map[Key]bool{}
	counts := make([]int, indexStripes)
	spills := make([]int32, len(tb.buckets))
	for i := range tb.buckets {
		tags := tb.buckets[i].tags.Load()
		for w := range tb.buckets[i].ways {
			it := tb.buckets[i].ways[w].Load()
			tag := tags >> (8 * w) & 0xff
			if (it == nil) != (tag == 0) || it != nil && tag != tagOf(&it.key) {
				t.Fatalf("bucket %d way %d: item %v with tag %d", i, w, it != nil, tag)
			}
			if it != nil {
				if seen[it.key] {
					t.Fatalf("key %v twice in the index", it.key)
				}
				if got := indexHash(&it.key) & tb.mask; got != uint64(i) {
					t.Fatalf("key in bucket %d belongs in %d", i, got)
				}
				seen[it.key] = true
				counts[i%indexStripes]++
			}
		}
	}
	for s := range x.stripes {
		for k := range x.stripes[s].over {
			if seen[k] {
				t.Fatalf("key %v twice in the index", k)
			}
			seen[k] = true
			counts[s]++
			spills[indexHash(&k)&tb.mask]++
		}
		if counts[s] != x.stripes[s].n {
			t.Fatalf("stripe %d holds %d items, counts %d", s, counts[s], x.stripes[s].n)
		}
	}
	for i := range spills {
		if got := tb.buckets[i].spill.Load(); got != spills[i] {
			t.Fatalf("bucket %d: %d spilled items, spill count %d", i, spills[i], got)
		}
	}
}

func TestIndexBucketIsACacheLine(t *testing.T) {
	if n := unsafe.Sizeof(indexBucket{}); n != 64 {
		t.Fatalf("indexBucket is %d bytes, want one 64-byte cache line", n)
	}
}

func TestIndexPutGetRemove(t *testing.T) {
	x := newIndex(1000)
	a1, a2, b := item(spread(1)), item(spread(1)), item(spread(2))
	x.put(a1)
	x.put(b)
	if x.lookup(a1.key) != a1 || x.lookup(b.key) != b || x.lookup(spread(3)) != nil {
		t.Fatal("get does not return what was put")
	}
	x.put(a2) // same key: replaces
	if x.lookup(a1.key) != a2 || x.len() != 2 {
		t.Fatalf("after a replacing put: get %p (want %p), len %d (want 2)", x.lookup(a1.key), a2, x.len())
	}
	x.remove(a1) // replaced already: nothing happens
	if x.lookup(a1.key) != a2 {
		t.Fatal("removing a replaced item removed its replacement")
	}
	x.remove(a2)
	x.remove(nil)
	if x.lookup(a1.key) != nil || x.len() != 1 {
		t.Fatalf("after remove: get %p, len %d; want nil, 1", x.lookup(a1.key), x.len())
	}
	checkIndex(t, x)
	x.clear()
	if x.lookup(b.key) != nil || x.len() != 0 {
		t.Fatal("clear left an item")
	}
	checkIndex(t, x)
}

// Keys that share a bucket beyond its ways spill into the stripe's map and
// are found, replaced and removed there.
func TestIndexSpill(t *testing.T) {
	x := newIndex(1000)
	const n = 3 * indexWays
	its := make([]*ristrettoItem, n)
	for i := range its {
		its[i] = item(ikey(uint64(i), 42)) // one bucket
		x.put(its[i])
	}
	tb := x.t.Load()
	if got := tb.buckets[42&tb.mask].spill.Load(); got != n-indexWays {
		t.Fatalf("spill count %d, want %d", got, n-indexWays)
	}
	for i, it := range its {
		if x.lookup(it.key) != it {
			t.Fatalf("item %d not found", i)
		}
	}
	// Replace one in the map and one in a way; remove others.
	r := item(its[n-1].key)
	x.put(r)
	if x.lookup(r.key) != r || x.len() != n {
		t.Fatal("replacing a spilled item")
	}
	x.remove(its[n-1]) // replaced: no effect
	x.remove(its[0])   // in a way: frees it
	x.remove(its[n-2]) // in the map
	if x.lookup(its[0].key) != nil || x.lookup(its[n-2].key) != nil || x.lookup(r.key) != r || x.len() != n-2 {
		t.Fatal("removals in a spilled bucket")
	}
	checkIndex(t, x)
	x.put(item(ikey(1000, 42))) // takes the freed way
	checkIndex(t, x)
	if got := x.t.Load().buckets[42&tb.mask].spill.Load(); got != n-indexWays-1 {
		t.Fatalf("spill count %d, want %d", got, n-indexWays-1)
	}
}

// The table doubles as items arrive, up to its bound, and keeps every
// item through each doubling.
func TestIndexGrows(t *testing.T) {
	const n = 20_000
	x := newIndex(n)
	if got := len(x.t.Load().buckets); got != minIndexBuckets {
		t.Fatalf("a new index has %d buckets, want %d", got, minIndexBuckets)
	}
	its := make([]*ristrettoItem, n)
	for i := range its {
		its[i] = item(spread(uint64(i)))
		x.put(its[i])
	}
	got := len(x.t.Load().buckets)
	if got > x.max || got < n/indexLoad {
		t.Fatalf("after %d items the table has %d buckets, want %d to %d", n, got, n/indexLoad, x.max)
	}
	for i, it := range its {
		if x.lookup(it.key) != it {
			t.Fatalf("item %d lost in a doubling", i)
		}
	}
	checkIndex(t, x)
	for _, it := range its {
		x.remove(it)
	}
	if x.len() != 0 {
		t.Fatalf("%d items left after removing all", x.len())
	}
	checkIndex(t, x)
	// A bound of a few items keeps the smallest table.
	small := newIndex(10)
	for i := range 5000 {
		small.put(item(spread(uint64(i))))
	}
	if got := len(small.t.Load().buckets); got != minIndexBuckets {
		t.Fatalf("an index bounded at 10 items grew to %d buckets", got)
	}
	checkIndex(t, small)
}

// Writers own disjoint keys (so each key's history is sequential) but
// share buckets, stripes and the doublings; readers look up everything.
// Every writer's view of its own keys stays exact, and the bookkeeping
// adds up at the end.
func TestIndexConcurrent(t *testing.T) {
	x := newIndex(1 << 16)
	const (
		writers = 4
		each    = 4000
	)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Go(func() {
			for i := uint64(r); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if it := x.lookup(spread(i % (writers * each))); it != nil && it.key != spread(i%(writers*each)) {
					t.Error("get returned another key's item")
					return
				}
			}
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range uint64(each) {
				k := spread(uint64(w)*each + i)
				a, b := item(k), item(k)
				x.put(a)
				if x.lookup(k) != a {
					t.Errorf("key %d: put item not found", i)
					return
				}
				x.put(b)
				x.remove(a)
				if x.lookup(k) != b {
					t.Errorf("key %d: replacement lost", i)
					return
				}
				if i%2 == 0 {
					x.remove(b)
					if x.lookup(k) != nil {
						t.Errorf("key %d: removed item found", i)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if got, want := x.len(), writers*each/2; got != want {
		t.Fatalf("index holds %d items, want %d", got, want)
	}
	checkIndex(t, x)
}

// An answer set into a Ristretto is served once the store's goroutine
// takes it; what ristretto rejects or evicts leaves the index, so that the
// index never holds what the store's memory bound does not count.
func TestRistrettoIndexFollowsRistretto(t *testing.T) {
	ctx := context.Background()
	entry := Entry{Response: &llm.Response{Text: "a"}}

	roomy := newRistrettoT(t, RistrettoConfig{})
	roomy.Set(ctx, spread(1), entry, time.Hour)
	roomy.Wait()
	if _, ok, _ := roomy.Get(ctx, spread(1)); !ok || roomy.index.len() != 1 {
		t.Fatal("a set was not served after Wait")
	}

	// Every answer costs more than the store holds: ristretto rejects all.
	tiny := newRistrettoT(t, RistrettoConfig{MaxCost: 1, MaxItemBytes: 1 << 20})
	for i := range uint64(1000) {
		tiny.Set(ctx, spread(i), entry, time.Hour)
	}
	tiny.Wait()
	if n := tiny.index.len(); n != 0 {
		t.Fatalf("%d answers ristretto rejected are still in the index", n)
	}

	// Room for a few hundred: ristretto evicts most.
	small := newRistrettoT(t, RistrettoConfig{MaxCost: 64 << 10, IgnoreInternalCost: true})
	const n = 5000
	for i := range uint64(n) {
		small.Set(ctx, spread(i), entry, time.Hour)
	}
	small.Wait()
	held := 0
	for i := range uint64(n) {
		k := spread(i)
		it := small.index.lookup(k)
		v, inRistretto := small.c.Get(ristrettoKey(&k))
		if it != nil && (!inRistretto || v != it) {
			t.Fatalf("key %d is in the index but not (as that item) in ristretto", i)
		}
		if it != nil {
			held++
		}
	}
	if held == 0 || held == n || held != small.index.len() {
		t.Fatalf("index holds %d of %d (len %d): want some, not all", held, n, small.index.len())
	}
	checkIndex(t, small.index)

	small.Close()
	if _, ok, _ := small.Get(ctx, spread(0)); ok || small.index.len() != 0 {
		t.Fatal("a closed store still serves")
	}
}

// ristretto's admission policy hears of the lookups the index serves (a
// sample of them): keys looked up often survive a stream of keys set once,
// which would push out keys it knew nothing of. Checked without the race
// detector (make test-allocs): under it sync.Pool drops items at random,
// and ristretto's access buffers are pooled, so ristretto hears of no
// lookups at all, whoever makes them.
func TestRistrettoAdmissionHearsLookups(t *testing.T) {
	if raceEnabled {
		t.Skip("ristretto's pooled access buffers lose everything under -race")
	}
	ctx := context.Background()
	entry := Entry{Response: &llm.Response{Text: "a"}}
	st := newRistrettoT(t, RistrettoConfig{MaxCost: 200 * itemOverhead, IgnoreInternalCost: true})
	const hot = 50
	for i := range uint64(hot) {
		st.Set(ctx, spread(i), entry, time.Hour)
	}
	st.Wait()
	for range 1000 {
		for i := range uint64(hot) {
			if _, ok, _ := st.Get(ctx, spread(i)); !ok {
				t.Fatalf("hot key %d missing before the cold stream", i)
			}
		}
		// ristretto's policy goroutine takes lookups in batches from a
		// channel of three, dropping batches when it is full: let it
		// run, as it would between real requests.
		runtime.Gosched()
	}
	st.Wait()
	for i := range uint64(5000) {
		k := spread(1_000_000 + i)
		st.Get(ctx, k) // the miss, as the middleware looks up first
		st.Set(ctx, k, entry, time.Hour)
	}
	st.Wait()
	kept := 0
	for i := range uint64(hot) {
		if st.index.lookup(spread(i)) != nil {
			kept++
		}
	}
	t.Logf("%d of %d hot keys kept through 5,000 cold ones", kept, hot)
	// Without the sampled lookups none survive; with them, all but for
	// batches ristretto dropped.
	if kept < hot/2 {
		t.Fatalf("only %d of %d hot keys survived a stream of cold ones", kept, hot)
	}
}
