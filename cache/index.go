package cache

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// The Ristretto store's index: where a lookup finds an entry.
//
// ristretto's own Get takes its shard's read lock (two atomic writes to a
// line every core reading that shard shares) and pushes the key to its
// access buffer; on this project's 2-vCPU benchmark machines that was ~50
// ns of a ~200 ns hit, and more when another core was writing ristretto's
// maps. So the store keeps its own index of the items it holds, read
// without a lock or a write, and lets ristretto do what it is good at:
// costing, admitting and evicting. A lookup reads the index, and tells
// ristretto's admission policy of a random sample of lookups (see
// Ristretto.getEntry).
//
// The index holds only items ristretto holds, or is about to be handed:
//   - an item enters the index when it is set, before it is buffered for
//     ristretto (so it is served at once, while the buffer's drainer takes
//     its time);
//   - it leaves when ristretto lets it go (OnExit: rejected by the
//     admission policy, evicted, replaced, expired with ExpireInStore),
//     when ristretto drops the set, and when the store closes.
//
// So the index never keeps an answer alive that the store's memory bound
// does not count, except the ones waiting in the set buffer, which that
// buffer bounds.
//
// The index is a table of buckets of indexWays item pointers, read with
// atomic loads. A bucket that fills spills its further items into a map
// of its stripe's; spill counts them by bucket, so that a lookup takes the
// stripe's lock only in a bucket that has spilled. Writers (sets,
// ristretto's callbacks) take the stripe's lock. The table starts small
// and doubles when it holds twice as many items as buckets, so that its
// memory follows what the store holds (a 64 MiB store of 32 KiB answers
// needs 32 KiB of index, of 200-byte answers a few MiB): a doubling locks
// every stripe and moves every item, once per doubling in the store's
// life. A lookup that raced with one reads the table it loaded, which was
// complete when it was replaced.

// indexWays is how many items a bucket holds in place: at two items per
// bucket (the most before the table doubles), a bucket has 5 or more and
// spills about 5% of the time, and at one, 0.4%.
const indexWays = 4

// indexStripes is the number of writer locks (and spill maps). Tables
// have a multiple of it buckets, so that a bucket stays in its stripe when
// the table doubles.
const indexStripes = 64

// indexBucket is one bucket: 32 bytes, two to a cache line.
type indexBucket struct {
	ways [indexWays]atomic.Pointer[ristrettoItem]
}

type indexTable struct {
	buckets []indexBucket
	spill   []atomic.Int32 // items of the bucket in its stripe's map
	mask    uint64
}

type indexStripe struct {
	mu   sync.Mutex
	over map[Key]*ristrettoItem // made when a bucket of the stripe first spills
	n    int                    // items in the stripe's buckets and map
	_    [64 - 8 - 8 - 8]byte
}

type index struct {
	t       atomic.Pointer[indexTable]
	max     int // most buckets
	stripes [indexStripes]indexStripe
}

// Index sizes, in buckets.
const (
	minIndexBuckets = 256
	maxIndexBuckets = 1 << 22
)

func newTable(n int) *indexTable {
	return &indexTable{buckets: make([]indexBucket, n), spill: make([]atomic.Int32, n), mask: uint64(n - 1)}
}

// newIndex returns an empty index of minIndexBuckets buckets, which
// doubles up to one bucket for every two of maxItems.
func newIndex(maxItems int64) *index {
	x := &index{max: minIndexBuckets}
	for x.max < maxIndexBuckets && int64(x.max)*2 < maxItems {
		x.max *= 2
	}
	x.t.Store(newTable(minIndexBuckets))
	return x
}

// indexHash is the digest half the index places keys by: not the one
// ristretto keys its items by (see ristrettoKey).
func indexHash(k *Key) uint64 { return binary.LittleEndian.Uint64(k.Digest[8:]) }

func (x *index) stripe(k *Key) *indexStripe {
	return &x.stripes[indexHash(k)%indexStripes]
}

// get returns the item for k, or nil.
func (x *index) get(k *Key) *ristrettoItem {
	t := x.t.Load()
	i := indexHash(k) & t.mask
	b := &t.buckets[i]
	for w := range b.ways {
		if it := b.ways[w].Load(); it != nil && it.key == *k {
			return it
		}
	}
	if t.spill[i].Load() == 0 {
		return nil
	}
	st := x.stripe(k)
	st.mu.Lock()
	it := st.over[*k]
	st.mu.Unlock()
	return it
}

// put makes it the item for its key, replacing any other.
func (x *index) put(it *ristrettoItem) {
	st := x.stripe(&it.key)
	st.mu.Lock()
	t := x.t.Load() // stable while a stripe is locked
	added := x.place(t, st, it)
	if added {
		st.n++
	}
	grow := added && st.n > 2*len(t.buckets)/indexStripes && len(t.buckets) < x.max
	st.mu.Unlock()
	if grow {
		x.grow(t)
	}
}

// place puts it in t: in place of the item of its key, or in a free way
// of its bucket, or in the stripe's map. It reports whether it added an
// item (rather than replacing one). st, its stripe, is locked.
func (x *index) place(t *indexTable, st *indexStripe, it *ristrettoItem) (added bool) {
	i := indexHash(&it.key) & t.mask
	b := &t.buckets[i]
	free := -1
	for w := range b.ways {
		switch p := b.ways[w].Load(); {
		case p == nil:
			if free < 0 {
				free = w
			}
		case p.key == it.key:
			b.ways[w].Store(it)
			return false
		}
	}
	if t.spill[i].Load() > 0 {
		if _, ok := st.over[it.key]; ok {
			st.over[it.key] = it
			return false
		}
	}
	if free >= 0 {
		b.ways[free].Store(it)
		return true
	}
	if st.over == nil {
		st.over = make(map[Key]*ristrettoItem)
	}
	st.over[it.key] = it
	t.spill[i].Add(1)
	return true
}

// grow doubles the table, unless another writer did since it was t.
func (x *index) grow(t *indexTable) {
	for i := range x.stripes {
		x.stripes[i].mu.Lock()
	}
	if x.t.Load() == t {
		nt := newTable(2 * len(t.buckets))
		for s := range x.stripes {
			st := &x.stripes[s]
			over := st.over
			st.over = nil
			for i := s; i < len(t.buckets); i += indexStripes {
				for w := range t.buckets[i].ways {
					if it := t.buckets[i].ways[w].Load(); it != nil {
						x.place(nt, st, it)
					}
				}
			}
			for _, it := range over {
				x.place(nt, st, it)
			}
		}
		x.t.Store(nt)
	}
	for i := range x.stripes {
		x.stripes[i].mu.Unlock()
	}
}

// remove takes it out of the index if it is there: another item for its
// key, put since, stays.
func (x *index) remove(it *ristrettoItem) {
	if it == nil {
		return
	}
	st := x.stripe(&it.key)
	st.mu.Lock()
	defer st.mu.Unlock()
	t := x.t.Load()
	i := indexHash(&it.key) & t.mask
	b := &t.buckets[i]
	for w := range b.ways {
		if b.ways[w].Load() == it {
			b.ways[w].Store(nil)
			st.n--
			return
		}
	}
	if t.spill[i].Load() > 0 && st.over[it.key] == it {
		delete(st.over, it.key)
		t.spill[i].Add(-1)
		st.n--
	}
}

// clear empties the index, keeping its size.
func (x *index) clear() {
	for i := range x.stripes {
		x.stripes[i].mu.Lock()
	}
	x.t.Store(newTable(len(x.t.Load().buckets)))
	for i := range x.stripes {
		x.stripes[i].over, x.stripes[i].n = nil, 0
		x.stripes[i].mu.Unlock()
	}
}

// len returns how many items the index holds.
func (x *index) len() int {
	n := 0
	for i := range x.stripes {
		x.stripes[i].mu.Lock()
		n += x.stripes[i].n
		x.stripes[i].mu.Unlock()
	}
	return n
}
