package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/llmkit/llmkit/llm"
)

// RistrettoConfig configures an in-process store. Zero fields take the
// defaults.
type RistrettoConfig struct {
	// MaxCost bounds the bytes the store holds (answers' text and
	// metadata, plus ristretto's own per-item overhead unless
	// IgnoreInternalCost). Default 64 MiB. Answers waiting in the store's
	// write buffer, at most MaxCost/8 (or 512 KiB), come on top while they
	// wait.
	MaxCost int64
	// MaxItemBytes is the largest answer stored; bigger ones are skipped.
	// Default MaxCost/16, so that one answer never evicts most others.
	MaxItemBytes int64
	// NumCounters is the number of admission counters ristretto keeps;
	// about ten times the number of items expected when full. Default
	// MaxCost/1 KiB*10, at least 10,000.
	NumCounters int64
	// IgnoreInternalCost leaves ristretto's per-item bookkeeping out of the
	// cost, so that MaxCost counts only answers' bytes.
	IgnoreInternalCost bool
	// ExpireInStore also gives each entry ristretto's own TTL (the entry's
	// TTL plus grace), so that ristretto drops it, within seconds of its
	// end, instead of leaving it to be overwritten or evicted by cost.
	// Default false: expiry is enforced on read by the entry's deadlines.
	ExpireInStore bool
	// Name is the Source of the events. Default "ristretto".
	Name string
}

// Ristretto is an in-process Store on github.com/dgraph-io/ristretto/v2:
// cost is bytes, and admission and eviction follow ristretto's TinyLFU
// policy. Lookups read the store's own index of the items ristretto holds
// (lock-free, see index.go) rather than ristretto's Get, and tell
// ristretto's policy of a random sample of them (see getEntry). Sets are
// buffered and applied asynchronously (call Wait to see them from Get): a
// set copies the answer into a bounded buffer of the store's, and a
// goroutine of the store makes the items, puts them in the index and hands
// them to ristretto in batches (see setbuf.go). Close releases its
// goroutines.
//
// Expiry is enforced on read, by the deadlines every Entry carries (the
// middleware reads the clock once per call and compares), not by
// ristretto's own TTL unless ExpireInStore. Get may therefore return an
// entry past its StaleUntil, which the middleware and Cache.Stale treat as
// absent; such entries are overwritten by the next answer or evicted by
// cost, so memory stays bounded by MaxCost either way.
type Ristretto struct {
	c       *ristretto.Cache[uint64, *ristrettoItem]
	index   *index
	buf     *setBuffer
	maxItem int64
	name    string
	ttl     bool
}

var _ Store = (*Ristretto)(nil)

// ristrettoItem keeps the whole key next to the entry: ristretto identifies
// items by 64 bits of it, and Get checks the rest. It is stored by pointer:
// copying it by value through ristretto's generic code costs a hit more
// than the allocation costs a miss.
type ristrettoItem struct {
	key Key
	e   Entry
}

// itemOverhead approximates the bytes an entry takes besides its strings:
// the item, the answer's copy, and its share of the index (a 64-byte
// bucket holds 1.5 to 3 items; see index.go), so that MaxCost bounds the
// index too.
const itemOverhead = int64(unsafe.Sizeof(ristrettoItem{})+unsafe.Sizeof(llm.Response{})) + indexBytesPerItem

// indexBytesPerItem is the most index memory an item takes beyond the
// table's first 8 KiB: one 64-byte bucket per 1.5 items just after the
// table doubles.
const indexBytesPerItem = 43

// NewRistretto returns an in-process store.
func NewRistretto(cfg RistrettoConfig) (*Ristretto, error) {
	if cfg.MaxCost < 0 || cfg.MaxItemBytes < 0 || cfg.NumCounters < 0 {
		return nil, errors.New("cache: negative RistrettoConfig field")
	}
	if cfg.MaxCost == 0 {
		cfg.MaxCost = 64 << 20
	}
	if cfg.MaxItemBytes == 0 {
		cfg.MaxItemBytes = max(cfg.MaxCost/16, 1)
	}
	if cfg.NumCounters == 0 {
		cfg.NumCounters = max(cfg.MaxCost/1024*10, 10_000)
	}
	if cfg.Name == "" {
		cfg.Name = "ristretto"
	}
	// The index may grow to a bucket per two of the most items MaxCost
	// holds, each costing at least itemOverhead, or of the items on their
	// way to ristretto's admission policy (in this store's buffer, at most
	// 1,024, and in ristretto's own, up to 32 Ki) if that is more.
	r := &Ristretto{index: newIndex(max(cfg.MaxCost/itemOverhead, 8<<10)),
		maxItem: cfg.MaxItemBytes, name: cfg.Name, ttl: cfg.ExpireInStore}
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *ristrettoItem]{
		NumCounters: cfg.NumCounters,
		MaxCost:     cfg.MaxCost,
		// Every BufferItems of its Gets on a P, ristretto hands their keys
		// to its policy goroutine, waking it (a futex call, microseconds
		// on some machines): 256 wakes it a quarter as often as its usual
		// 64.
		BufferItems:        256,
		IgnoreInternalCost: cfg.IgnoreInternalCost,
		// Whatever ristretto lets go (rejected, evicted, replaced, expired)
		// leaves the index.
		OnExit: r.index.remove,
	})
	if err != nil {
		return nil, errors.Join(errors.New("cache: ristretto"), err)
	}
	r.c = c
	// The buffer holds at most MaxCost/8 (or 512 KiB for a smaller store)
	// of answers waiting, MaxCost/64 (64 KiB) in each shard.
	r.buf = newSetBuffer(max(cfg.MaxCost/(8*setShards), setShardMinBytes), r.apply)
	r.buf.start()
	return r, nil
}

func ristrettoKey(k *Key) uint64 { return binary.LittleEndian.Uint64(k.Digest[:8]) }

// Get returns the entry for key, whatever its deadlines say.
func (r *Ristretto) Get(_ context.Context, key Key) (Entry, bool, error) {
	if e := r.getEntry(&key); e != nil {
		return *e, true, nil
	}
	return Entry{}, false, nil
}

// accessSample is one over the fraction of lookups ristretto's admission
// policy hears of; see getEntry.
const accessSample = 16

// sampled reports whether this lookup is one ristretto hears of: one in
// accessSample, picked by the runtime's per-thread generator (no shared
// write).
func sampled() bool { return rand.Uint32()%accessSample == 0 }

// getEntry returns the stored entry for key in place, or nil.
//
// ristretto admits and evicts by how often each key is asked for
// (TinyLFU), which it learns from its own Get. A lookup here reads the
// index instead, and ristretto hears of a uniform random sample of the
// lookups, one in accessSample, through its Get: a hit calls it here, and
// a miss is counted when its answer is stored, by the store's goroutine
// (apply), off the caller's path. Its frequency estimates are then those
// of the sample: keys asked for often keep their order, and keys asked for
// once or twice look alike, as they nearly do to TinyLFU already. That
// keeps ristretto's Get (a shard's read lock, written by every core that
// reads the shard, and a push to its access buffer: ~50 ns on a hit, more
// while the store is being written) off all misses and 15 hits in 16.
func (r *Ristretto) getEntry(key *Key) *Entry {
	it := r.index.get(key)
	if it == nil || r.buf.closed.Load() {
		return nil
	}
	if sampled() {
		r.c.Get(ristrettoKey(key))
	}
	return &it.e
}

// Set stores e, costed by its size in bytes, unless ttl <= 0. Answers
// bigger than MaxItemBytes are skipped. The write is applied
// asynchronously. The entry's own deadlines decide when it stops being
// served; with ExpireInStore ristretto also drops it after ttl.
func (r *Ristretto) Set(_ context.Context, key Key, e Entry, ttl time.Duration) error {
	if e.Response == nil || ttl <= 0 {
		return nil
	}
	cost := entryBytes(e.Response)
	if cost > r.maxItem {
		return nil
	}
	r.buf.add(&pendingSet{key: key, it: &ristrettoItem{key: key, e: e}, life: ttl, cost: cost})
	return nil
}

// ownedItem is an item and the answer it stores in one allocation: the
// store's copy of an answer handed to setOwned.
type ownedItem struct {
	ristrettoItem
	resp llm.Response
}

// setOwned stores the stored form of resp, fresh for ttl and then stale
// for grace, as Set would: it copies resp into a slot of the store's
// buffer, and the store's goroutine makes the item (the entry and its copy
// of the answer in one allocation) and stamps its deadlines when it takes
// the batch, microseconds later. Answers bigger than MaxItemBytes are
// skipped.
func (r *Ristretto) setOwned(key *Key, resp *llm.Response, ttl, grace time.Duration) {
	if ttl <= 0 {
		return
	}
	cost := entryBytes(resp)
	if cost > r.maxItem {
		return
	}
	s, slot := r.buf.slot(key, cost)
	p := slot
	if p == nil { // the shard is full: this caller applies it
		p = new(pendingSet)
	}
	p.key, p.fresh, p.life, p.cost = *key, ttl, ttl+grace, cost
	copyShared(&p.resp, resp)
	if slot == nil {
		r.buf.overflow(s, p)
		return
	}
	r.buf.release(s, cost)
}

// apply hands a batch of buffered sets to ristretto, making the items of
// answers setOwned buffered, their deadlines counted from now. Each item
// goes into the index first, where lookups find it from then on; one that
// ristretto drops at once (its own buffer is full) leaves it again, and
// one it rejects or evicts later leaves through OnExit.
func (r *Ristretto) apply(batch []pendingSet, now time.Time) {
	for i := range batch {
		p := &batch[i]
		it := p.it
		if it == nil {
			o := &ownedItem{resp: p.resp}
			o.key = p.key
			o.e = Entry{Response: &o.resp, Expires: now.Add(p.fresh), StaleUntil: now.Add(p.life)}
			it = &o.ristrettoItem
		}
		r.index.put(it)
		rk := ristrettoKey(&it.key)
		if sampled() { // the lookup that missed (see getEntry)
			r.c.Get(rk)
		}
		var ok bool
		if r.ttl {
			ok = r.c.SetWithTTL(rk, it, p.cost, p.life)
		} else {
			ok = r.c.Set(rk, it, p.cost)
		}
		if !ok {
			r.index.remove(it)
		}
	}
}

// Name returns the store's name, the Source of its events.
func (r *Ristretto) Name() string { return r.name }

// Wait blocks until every Set made before it is applied: it applies what
// the store's buffer holds, then waits for ristretto's own.
func (r *Ristretto) Wait() {
	r.buf.flushAll()
	r.c.Wait()
}

// Close stops the store's goroutines and drops its entries. Sets still
// buffered are dropped with them.
func (r *Ristretto) Close() {
	r.buf.close()
	r.c.Close()
	r.index.clear()
}

func entryBytes(r *llm.Response) int64 {
	return itemOverhead + int64(len(r.Text)+len(r.ID)+len(r.Model)+len(r.FinishReason))
}
