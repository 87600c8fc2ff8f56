package cache

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/llmkit/llmkit/llm"
)

// The Ristretto store's write buffer.
//
// ristretto's Set allocates an item and sends it on a channel to its one
// consumer goroutine; the send takes the channel's lock, which that
// consumer holds half the time, and wakes the consumer when it sleeps. And
// the store's own item (the entry with its copy of the answer) is one more
// allocation. On a miss that was most of what the cache added to the
// caller's path. So a set only copies the answer into a slot of a buffer
// the store made in advance (a mutex and a copy, no allocation), and one
// goroutine of the store moves the buffered sets into ristretto in batches:
// it makes the items, stamps their deadlines with one clock reading per
// batch, puts them in the store's index (where lookups find them from then
// on) and calls ristretto's Set. While sets keep coming it takes a
// batch, lets the next gather for setBatchDelay or until a shard is half
// full, and takes it; when a pass finds nothing it keeps looking every
// setPoll for a while (setLingerPolls), so that sparse sets do not each
// have to wake it, and then sleeps on a channel (it never ticks while
// idle) until the next set wakes it.
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

// pendingSet is one buffered set: either an item made by Set, or the
// stored form of an answer copied in by setOwned, from which the drainer
// makes the item.
type pendingSet struct {
	key Key
	// it is the item to store, or nil: make one from resp.
	it *ristrettoItem
	// resp is the stored form of the answer when it is nil.
	resp llm.Response
	// fresh and life are the entry's TTL and TTL + grace, from when the
	// item is made.
	fresh, life time.Duration
	cost        int64
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
	// idle is set by the drainer before it sleeps; the first set to find
	// it set clears it and wakes the drainer through kick.
	idle atomic.Bool
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	// started says the drainer runs (tests make buffers without one).
	started bool
	// closed turns later batches into no-ops once close began.
	closed atomic.Bool
	// apply hands a batch to the store, with the time its deadlines start.
	apply func(batch []pendingSet, now time.Time)

	// What happened, for tests and benchmarks: batches the drainer
	// applied, times it was woken from idle, and sets callers applied
	// because their shard was full.
	drained, wakes, callerSets atomic.Int64
}

// newSetBuffer returns a buffer whose shards hold at most maxBytes of cost
// each, applying batches with apply. Call start to run its drainer.
func newSetBuffer(maxBytes int64, apply func([]pendingSet, time.Time)) *setBuffer {
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
func (b *setBuffer) slot(key *Key, cost int64) (*setShard, *pendingSet) {
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

// release unlocks s after its slot was filled, and wakes the drainer if it
// sleeps, or if s just reached half its bound (the drainer lets the next
// batch gather, but not until the shard overflows).
func (b *setBuffer) release(s *setShard, cost int64) {
	half := len(s.buf) == setShardCap/2 || s.bytes > b.maxBytes/2 && s.bytes-cost <= b.maxBytes/2
	s.mu.Unlock()
	if half || b.idle.Load() && b.idle.CompareAndSwap(true, false) {
		select {
		case b.kick <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// add buffers p, or, when its shard is full, applies the shard's batch and
// then p.
func (b *setBuffer) add(p *pendingSet) {
	s, slot := b.slot(&p.key, p.cost)
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
		b.apply(unsafe.Slice(p, 1), time.Now())
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
		b.apply(batch, time.Now())
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

// setPoll is how often the drainer looks for sets while it lingers, and
// setLingerPolls how many times it looks before it sleeps until woken:
// while sets keep coming, however sparse (down to about one a second), no
// set has to wake it (waking a goroutine costs the waker a futex call,
// ~2 µs of its CPU on a VM), and a set reaches ristretto within setPoll.
// Lingering costs a timer wake-up per setPoll on the drainer's side.
const (
	setPoll        = time.Millisecond
	setLingerPolls = 1000
)

// drain is the buffer's goroutine: it applies batches while sets keep
// coming, polls for setLingerPolls × setPoll once they stop, and then
// sleeps until a set wakes it, until close.
func (b *setBuffer) drain() {
	defer close(b.done)
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	wait := func(d time.Duration) (stopped bool) {
		pause.Reset(d)
		select {
		case <-pause.C:
		case <-b.kick: // a shard is half full
			pause.Stop()
		case <-b.stop:
			return true
		}
		return false
	}
	polls := setLingerPolls // a new store sleeps at once
	for {
		if b.flushAll() {
			b.drained.Add(1)
			polls = 0
			if wait(setBatchDelay) {
				return
			}
			continue
		}
		if polls < setLingerPolls {
			polls++
			if wait(setPoll) {
				return
			}
			continue
		}
		b.idle.Store(true)
		// A set buffered before idle was visible found it clear and did not
		// wake us: look once more before sleeping.
		if b.flushAll() {
			b.drained.Add(1)
			b.idle.Store(false)
			continue
		}
		select {
		case <-b.kick:
			b.idle.Store(false)
			b.wakes.Add(1)
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
