package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"strings"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/llmkit/llmkit/llm"
)

// RistrettoConfig configures an in-process store. Zero fields take the
// defaults.
type RistrettoConfig struct {
	// MaxCost bounds the bytes the store keeps: ristretto's fixed
	// structures (its admission counters and buffers, a few hundred KiB)
	// and, for each entry, its answer's bytes plus the entry's and
	// ristretto's bookkeeping (see docs/cache.md). It must exceed the
	// fixed structures. Default 64 MiB.
	MaxCost int64
	// MaxItemBytes is the largest entry (answer plus overhead) stored;
	// bigger ones are skipped. Default MaxCost/16, so that one answer
	// never evicts most others.
	MaxItemBytes int64
	// NumCounters is the number of admission counters ristretto keeps;
	// about ten times the number of entries expected when full. Default
	// MaxCost/1 KiB*10, at least 10,000.
	NumCounters int64
	// Name is the Source of the events. Default "ristretto".
	Name string
}

// Ristretto is an in-process Store on github.com/dgraph-io/ristretto/v2:
// Get and Set are ristretto's, cost is bytes, and admission and eviction
// follow ristretto's TinyLFU policy. Like ristretto, it applies sets
// asynchronously: Wait makes earlier sets visible. Close releases its
// goroutines.
//
// Entries carry their deadlines, which the middleware and Cache.Stale
// check on every read; an entry past them stays until a new answer for its
// key replaces it or eviction by cost removes it. ristretto's own TTL is
// not used: its expiry buckets are Go maps that keep their size until the
// bucket's time is up, so under churn they grow with the number of sets
// over the TTL, not with what the store holds.
type Ristretto struct {
	c       *ristretto.Cache[uint64, *item]
	maxItem int64
	name    string
}

var _ Store = (*Ristretto)(nil)

// item is what the store keeps for an entry: the whole key (ristretto
// identifies items by 64 bits of it) and its own copy of the answer, whose
// strings share one allocation made for them, so that a stored answer
// never pins a bigger buffer its text was cut from, and its size is known.
type item struct {
	key  Key
	e    Entry
	resp llm.Response
}

// ristrettoOverhead is ristretto's bookkeeping per item: a slot in its
// store's map (the key and a 48-byte storeItem) and one in its policy's
// cost map (16 bytes), in Go maps that keep a share of their slots empty
// and, under churn, hold deleted slots until they grow. Measured: ~140
// bytes while a store fills, ~240 after a million evictions. ristretto's
// own internal cost (IgnoreInternalCost false) counts the storeItem alone,
// so it is off, and this is counted instead.
const ristrettoOverhead = 256

// itemOverhead is what an entry costs besides its strings' allocation: the
// item and ristretto's bookkeeping of it.
var itemOverhead = int64(reflect.TypeFor[item]().Size()) + ristrettoOverhead

// ristrettoFixed is what ristretto keeps whatever it holds, measured: its
// set buffer and store shards (~290 KiB), and its admission counters, a
// count-min sketch of four rows of 4-bit counters and a bloom filter of
// ~9.6 bits per counter, each rounded up to a power of two. It comes out
// of MaxCost, so that MaxCost bounds all the store keeps.
func ristrettoFixed(counters int64) int64 {
	pow2 := func(n int64) int64 { return 1 << bits.Len64(uint64(n-1)) }
	return 300<<10 + 2*pow2(counters) + pow2(counters*96/10)/8
}

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
	fixed := ristrettoFixed(cfg.NumCounters)
	if cfg.MaxCost <= fixed {
		return nil, fmt.Errorf("cache: MaxCost %d is no more than ristretto's own structures for %d counters (%d bytes)",
			cfg.MaxCost, cfg.NumCounters, fixed)
	}
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *item]{
		NumCounters:        cfg.NumCounters,
		MaxCost:            cfg.MaxCost - fixed,
		BufferItems:        64,
		IgnoreInternalCost: true, // counted in itemOverhead
	})
	if err != nil {
		return nil, errors.Join(errors.New("cache: ristretto"), err)
	}
	return &Ristretto{c: c, maxItem: cfg.MaxItemBytes, name: cfg.Name}, nil
}

func ristrettoKey(k Key) uint64 { return binary.LittleEndian.Uint64(k.Digest[:8]) }

// Get returns the entry for key, whatever its deadlines say.
func (r *Ristretto) Get(_ context.Context, key Key) (Entry, bool, error) {
	it, ok := r.c.Get(ristrettoKey(key))
	if !ok || it.key != key {
		return Entry{}, false, nil
	}
	return it.e, true, nil
}

// Set stores a copy of e, costed by its bytes, unless ttl <= 0; e's
// deadlines say when it stops being served. Entries bigger than
// MaxItemBytes are skipped. ristretto applies the write asynchronously,
// and may reject it by its admission policy.
func (r *Ristretto) Set(_ context.Context, key Key, e Entry, ttl time.Duration) error {
	if e.Response == nil || ttl <= 0 {
		return nil
	}
	src := e.Response
	n := len(src.ID) + len(src.Text) + len(src.Model) + len(src.FinishReason)
	if itemOverhead+int64(n) > r.maxItem {
		return nil
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range [...]string{src.ID, src.Text, src.Model, string(src.FinishReason)} {
		b.WriteString(s)
	}
	// The allocation is b.Cap() bytes: n rounded up to the allocator's
	// size class (or to pages for big answers), which is what it keeps.
	cost := itemOverhead + int64(b.Cap())
	s := b.String()
	it := &item{key: key, resp: *src}
	it.resp.ID, s = s[:len(src.ID)], s[len(src.ID):]
	it.resp.Text, s = s[:len(src.Text)], s[len(src.Text):]
	it.resp.Model, s = s[:len(src.Model)], s[len(src.Model):]
	it.resp.FinishReason = llm.FinishReason(s)
	it.e = Entry{Response: &it.resp, Expires: e.Expires, StaleUntil: e.StaleUntil}
	r.c.Set(ristrettoKey(key), it, cost)
	return nil
}

// Name returns the store's name, the Source of its events.
func (r *Ristretto) Name() string { return r.name }

// Wait blocks until every Set made before it is applied or rejected.
func (r *Ristretto) Wait() { r.c.Wait() }

// Close stops the store's goroutines and drops its entries. Call it once
// nothing uses the store any more.
func (r *Ristretto) Close() { r.c.Close() }
