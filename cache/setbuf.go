package cache

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The Ristretto store's write buffer.
//
// ristretto's Set allocates an item and sends it on a channel to its one
// consumer goroutine; the send takes the channel's lock, which that
// consumer holds half the time, and wakes the consumer when it sleeps
// (microseconds of a futex call on the caller's thread on some machines).
// On a miss that was most of what the cache added to the caller's path.
// So a set makes the store's item, puts it in the store's index (where
// lookups find it from then on, see index.go) and appends it to a buffer
// slot the store made in advance (a mutex, no allocation); one goroutine
// of the store, the drainer, hands the buffered items to ristretto's Set in
// batches. A set never wakes the drainer: while sets keep coming it takes a
// batch, lets the next gather for setBatchDelay, and takes it; when a pass
// finds nothing it sleeps for setIdleDelay; a shard reaching half its bound
// wakes it early. The item is served from the index meanwhile, so the wait
// only delays ristretto's accounting of it.
//
// The buffer is bounded: a shard holds at most setShardCap sets and at
// most maxBytes of their cost (see NewRistretto); an answer bigger than
// that is never buffered. A set that does not fit drops nothing: its
// caller applies the shard's batch to ristretto itself (what every set
// cost before the buffer), then its own set. So memory stays bounded,
// nothing is lost but what ristretto itself drops, and a drainer that
// cannot keep up (one core, a loaded machine) hands its work back to the
// callers instead of piling it up.
//
// Within a shard sets are applied in the order they were buffered, and a
// key always maps to one shard, so two sets of one key are applied in the
// order they were made.

// setShards is the number of buffer shards, so that concurrent misses
// seldom share a lock.
const setShards = 8

// setShardCap is the most sets a shard holds before its caller applies
// them.
const setShardCap = 128

// setShardMinBytes is the least cost a shard may hold, whatever the
// store's MaxCost.
const setShardMinBytes = 64 << 10

// setBatchDelay is how long the drainer lets sets gather after a batch
// before it takes the next, while sets keep coming: a drainer that emptied
// the buffer at every set would go to sleep after each one and have to be
// woken for the next, on its caller's path. It bounds, with the timer's
// own lateness, how long a set waits in the buffer while the drainer is
// awake.
const setBatchDelay = 50 * time.Microsecond

// pendingSet is one buffered set: an item, already in the store's index,
// for ristretto.
type pendingSet struct {
	it *ristrettoItem
	// life is the item's whole life (TTL + grace), for ExpireInStore.
	life time.Duration
	cost int64
}

// setShard is one shard of the buffer.
type setShard struct {
	// mu guards buf, the sets waiting, in order, and bytes, their cost.
	mu    sync.Mutex
	buf   []pendingSet
	bytes int64
	// applying is held while a batch taken from buf is applied, so that
	// batches reach ristretto in the order they were taken, and so that
	// whoever takes it next (Wait) knows that every earlier batch is
	// applied. spare, guarded by it, is the empty slice swapped in for
	// buf.
	applying sync.Mutex
	spare    []pendingSet
	_        [128 - 8 - 24 - 8 - 8 - 24]byte // whole cache lines (TestSetShardFillsCacheLines)
}

// setBuffer holds pending sets and the goroutine that applies them.
type setBuffer struct {
	shards [setShards]setShard
	// maxBytes bounds the cost a shard holds.
	maxBytes int64
	// kick wakes the drainer: a shard is half full.
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	// started says the drainer runs (tests make buffers without one).
	started bool
	// closed turns later batches into no-ops once close began.
	closed atomic.Bool
	// apply hands a batch to the store.
	apply func(batch []pendingSet)

	// What happened, for tests and benchmarks: batches the drainer
	// applied, times it was woken from idle, and sets callers applied
	// because their shard was full.
	drained, wakes, callerSets atomic.Int64
}

// newSetBuffer returns a buffer whose shards hold at most maxBytes of cost
// each, applying batches with apply. Call start to run its drainer.
func newSetBuffer(maxBytes int64, apply func([]pendingSet)) *setBuffer {
	b := &setBuffer{
		maxBytes: maxBytes,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		apply:    apply,
	}
	for i := range b.shards {
		b.shards[i].buf = make([]pendingSet, 0, setShardCap)
		b.shards[i].spare = make([]pendingSet, 0, setShardCap)
	}
	return b
}

// start runs the drainer.
func (b *setBuffer) start() {
	b.started = true
	go b.drain()
}

// slot returns, with its shard locked, a slot of the shard of key to fill
// with a set of this cost, or nil when the set does not fit: the shard
// holds setShardCap sets or its cost would pass maxBytes (a set costing
// more than maxBytes never fits). The caller fills the slot and calls
// release.
func (b *setBuffer) slot(key Key, cost int64) (*setShard, *pendingSet) {
	s := &b.shards[key.Digest[9]%setShards]
	s.mu.Lock()
	if len(s.buf) == setShardCap || s.bytes+cost > b.maxBytes {
		s.mu.Unlock()
		return s, nil
	}
	s.bytes += cost
	s.buf = s.buf[:len(s.buf)+1]
	return s, &s.buf[len(s.buf)-1]
}

// release unlocks s after its slot was filled, and wakes the drainer if s
// just reached half its bound (the drainer lets the next batch gather, but
// not until the shard overflows). It does not wake an idle drainer for a
// set: the set's item is already in the store's index, served, and the
// drainer takes it within setIdleDelay; waking a goroutine costs its waker
// microseconds on some machines (a futex call), more than a miss's whole
// budget.
func (b *setBuffer) release(s *setShard, cost int64) {
	half := len(s.buf) == setShardCap/2 || s.bytes > b.maxBytes/2 && s.bytes-cost <= b.maxBytes/2
	s.mu.Unlock()
	if half {
		b.wake()
	}
}

// wake wakes the drainer, unless a wake-up is already pending.
func (b *setBuffer) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// add buffers p, or, when its shard is full, applies the shard's batch and
// then p.
func (b *setBuffer) add(p *pendingSet) {
	s, slot := b.slot(p.it.key, p.cost)
	if slot == nil {
		b.overflow(s, p)
		return
	}
	*slot = *p
	b.release(s, p.cost)
}

// overflow applies s's batch and then p, for a set that found s full: the
// drainer is behind.
func (b *setBuffer) overflow(s *setShard, p *pendingSet) {
	s.applying.Lock()
	n := b.flushLocked(s)
	b.callerSets.Add(int64(n) + 1)
	if !b.closed.Load() {
		b.apply(unsafe.Slice(p, 1))
	}
	s.applying.Unlock()
}

// flush applies every set buffered in s. It reports whether there were
// any.
func (b *setBuffer) flush(s *setShard) bool {
	s.applying.Lock()
	n := b.flushLocked(s)
	s.applying.Unlock()
	return n > 0
}

// flushLocked takes s's batch and applies it; s.applying is held.
func (b *setBuffer) flushLocked(s *setShard) int {
	s.mu.Lock()
	batch := s.buf
	s.buf, s.bytes = s.spare, 0
	s.mu.Unlock()
	if len(batch) > 0 && !b.closed.Load() {
		b.apply(batch)
	}
	clear(batch) // let the answers go
	s.spare = batch[:0]
	return len(batch)
}

// flushAll applies every set buffered when it is called (and some made
// while it runs). It reports whether it applied any.
func (b *setBuffer) flushAll() bool {
	did := false
	for i := range b.shards {
		if b.flush(&b.shards[i]) {
			did = true
		}
	}
	return did
}

// setIdleDelay is how long an idle drainer sleeps before it looks at the
// buffer again: it bounds how long a set waits to reach ristretto (and so
// be counted against MaxCost) when sets are too sparse to fill a shard to
// half, and how often an idle store's goroutine wakes.
const setIdleDelay = time.Second

// drain is the buffer's goroutine. While sets keep coming it applies a
// batch, lets the next gather for setBatchDelay, and applies it; when a
// pass finds no set it sleeps for setIdleDelay, or until kicked. Every
// pass also does tend's work.
func (b *setBuffer) drain() {
	defer close(b.done)
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	for {
		busy := b.flushAll()
		wait := setIdleDelay
		if busy {
			b.drained.Add(1)
			wait = setBatchDelay
		}
		pause.Reset(wait)
		select {
		case <-pause.C:
		case <-b.kick:
			pause.Stop()
			if !busy {
				b.wakes.Add(1)
			}
		case <-b.stop:
			return
		}
	}
}

// close stops the drainer, waits for any batch being applied, and drops
// what is still buffered; later sets are never applied.
func (b *setBuffer) close() {
	if b.closed.Swap(true) {
		return
	}
	close(b.stop)
	if b.started {
		<-b.done
	}
	for i := range b.shards {
		s := &b.shards[i]
		s.applying.Lock() // a caller applying a full shard has finished
		s.mu.Lock()
		clear(s.buf) // let the answers go
		s.buf, s.bytes = s.buf[:0], 0
		s.mu.Unlock()
		s.applying.Unlock()
	}
}
