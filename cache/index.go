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
// The index holds only items ristretto holds, or has been handed and not
// yet admitted:
//   - an item enters the index when the store's goroutine hands it to
//     ristretto, just before ristretto's Set (see Ristretto.apply);
//   - it leaves when ristretto lets it go (OnExit: rejected by the
//     admission policy, evicted, replaced, expired with ExpireInStore),
//     when ristretto drops the set, and when the store closes.
//
// So the index never keeps an answer alive that ristretto does not: those
// waiting for its admission policy sit in its own bounded set buffer too.

// The index is a table of 64-byte buckets (one cache line each) of
// indexWays item pointers and a tag byte per way, read with atomic loads:
// a lookup reads its bucket's line, dereferences only the items whose tag
// matches its key's (one in 255 of the others, by chance), and so costs
// one cache line on a miss however full the bucket. A bucket that fills
// spills its further items into a map of its stripe's; its spill count
// (in the same line) says so, and a lookup takes the stripe's lock only
// in a bucket that has spilled. Writers (the store's goroutine, ristretto's
// callbacks) take the stripe's lock; they publish an item before its tag
// and clear a tag before its item, so a reader that sees a tag sees its
// item. The table starts small and doubles when it holds three items per
// bucket, so that its memory follows what the store holds (a 64 MiB store
// of 32 KiB answers needs 64 KiB of index, of 250-byte answers 8 MiB): a
// doubling locks every stripe and moves every item, once per
// doubling in the store's life. A lookup that raced with one reads the
// table it loaded, which was complete when it was replaced.

// indexWays is how many items a bucket holds in place: at three items per
// bucket (the most before the table doubles) a bucket has 7 or more and
// spills about 3% of the time, and at 1.5 (just after), 0.1%.
const indexWays = 6

// indexLoad is the most items per bucket before the table doubles.
const indexLoad = 3

// indexStripes is the number of writer locks (and spill maps). Tables
// have a multiple of it buckets, so that a bucket stays in its stripe when
// the table doubles.
const indexStripes = 64

// indexBucket is one bucket: one cache line.
type indexBucket struct {
	ways [indexWays]atomic.Pointer[ristrettoItem]
	// tags holds a tag byte per way (byte w for way w), 0 when the way
	// is empty.
	tags atomic.Uint64
	// spill counts the bucket's items in its stripe's map.
	spill atomic.Int32
	_     [4]byte
}

type indexTable struct {
	buckets []indexBucket
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
	minIndexBuckets = 128
	maxIndexBuckets = 1 << 21
)

func newTable(n int) *indexTable {
	return &indexTable{buckets: make([]indexBucket, n), mask: uint64(n - 1)}
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

// tagOf returns k's tag: a byte of its index hash the bucket number does
// not use (the table has at most 2^21 buckets), never 0.
func tagOf(k *Key) uint64 { return uint64(k.Digest[15])%255 + 1 }

// get returns the item for k, or nil.
func (x *index) get(k *Key) *ristrettoItem {
	t := x.t.Load()
	b := &t.buckets[indexHash(k)&t.mask]
	// Each byte of m is 0 where the way's tag is k's.
	m := b.tags.Load() ^ tagOf(k)*0x0101010101010101
	for w := range indexWays {
		if m>>(8*w)&0xff == 0 {
			if it := b.ways[w].Load(); it != nil && it.key == *k {
				return it
			}
		}
	}
	if b.spill.Load() == 0 {
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
	grow := added && st.n > indexLoad*len(t.buckets)/indexStripes && len(t.buckets) < x.max
	st.mu.Unlock()
	if grow {
		x.grow(t)
	}
}

// place puts it in t: in place of the item of its key, or in a free way
// of its bucket, or in the stripe's map. It reports whether it added an
// item (rather than replacing one). st, its stripe, is locked.
func (x *index) place(t *indexTable, st *indexStripe, it *ristrettoItem) (added bool) {
	b := &t.buckets[indexHash(&it.key)&t.mask]
	tag := tagOf(&it.key)
	tags := b.tags.Load()
	free := -1
	for w := range indexWays {
		switch tags >> (8 * w) & 0xff {
		case 0:
			if free < 0 {
				free = w
			}
		case tag:
			if p := b.ways[w].Load(); p.key == it.key {
				b.ways[w].Store(it) // same key, same tag
				return false
			}
		}
	}
	if b.spill.Load() > 0 {
		if _, ok := st.over[it.key]; ok {
			st.over[it.key] = it
			return false
		}
	}
	if free >= 0 {
		b.ways[free].Store(it) // the item before its tag
		b.tags.Store(tags&^(0xff<<(8*free)) | tag<<(8*free))
		return true
	}
	if st.over == nil {
		st.over = make(map[Key]*ristrettoItem)
	}
	st.over[it.key] = it
	b.spill.Add(1)
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
	b := &t.buckets[indexHash(&it.key)&t.mask]
	for w := range b.ways {
		if b.ways[w].Load() == it {
			b.tags.Store(b.tags.Load() &^ (0xff << (8 * w))) // the tag before its item
			b.ways[w].Store(nil)
			st.n--
			return
		}
	}
	if b.spill.Load() > 0 && st.over[it.key] == it {
		delete(st.over, it.key)
		b.spill.Add(-1)
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
