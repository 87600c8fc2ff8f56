package cache

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/llmkit/llmkit/llm"
)

func TestSetShardFillsCacheLines(t *testing.T) {
	if n := unsafe.Sizeof(setShard{}); n%64 != 0 {
		t.Fatalf("setShard is %d bytes, not whole cache lines: neighbouring shards' locks would share one", n)
	}
}

// applied records the batches a setBuffer applies.
type applied struct {
	mu   sync.Mutex
	sets []pendingSet
	when []time.Time
}

func (a *applied) apply(batch []pendingSet, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range batch {
		a.sets = append(a.sets, p)
		a.when = append(a.when, now)
	}
}

func (a *applied) n() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sets)
}

// keyIn returns a key of buffer shard shard, numbered n (n is in its
// digest, so keys of different n differ).
func keyIn(shard uint8, n uint64) Key {
	var k Key
	binary.LittleEndian.PutUint64(k.Digest[:8], n)
	k.Digest[9] = shard
	return k
}

// seq reads back the number keyIn put in a key.
func seq(k Key) uint64 { return binary.LittleEndian.Uint64(k.Digest[:8]) }

func TestSetBufferAppliesInOrder(t *testing.T) {
	var a applied
	b := newSetBuffer(1<<20, a.apply) // no drainer: flushAll applies
	defer b.close()
	for i := range uint64(100) {
		b.add(&pendingSet{key: keyIn(uint8(i%3), i), cost: 1})
	}
	if a.n() != 0 {
		t.Fatalf("%d sets applied before any flush", a.n())
	}
	if !b.flushAll() || a.n() != 100 {
		t.Fatalf("flushAll applied %d sets, want 100", a.n())
	}
	last := map[uint8]uint64{}
	for _, p := range a.sets {
		sh := p.key.Digest[9]
		if n, ok := last[sh]; ok && seq(p.key) <= n {
			t.Fatalf("shard %d applied set %d after set %d", sh, seq(p.key), n)
		}
		last[sh] = seq(p.key)
	}
	if b.flushAll() {
		t.Fatal("a second flushAll found sets")
	}
	if b.callerSets.Load() != 0 {
		t.Fatalf("callers applied %d sets with room in the buffer", b.callerSets.Load())
	}
}

// A set that finds its shard full applies the shard's batch and then
// itself, in order, on the caller: nothing is dropped, and the shard never
// holds more than its bound.
func TestSetBufferOverflowAppliesInTheCaller(t *testing.T) {
	var a applied
	b := newSetBuffer(1<<20, a.apply)
	defer b.close()
	for i := range uint64(setShardCap) {
		b.add(&pendingSet{key: keyIn(5, i), cost: 1})
	}
	if a.n() != 0 || len(b.shards[5].buf) != setShardCap {
		t.Fatalf("applied %d, buffered %d; want 0 and %d", a.n(), len(b.shards[5].buf), setShardCap)
	}
	b.add(&pendingSet{key: keyIn(5, setShardCap), cost: 1})
	if a.n() != setShardCap+1 || len(b.shards[5].buf) != 0 {
		t.Fatalf("after the overflowing set: applied %d, buffered %d; want %d and 0", a.n(), len(b.shards[5].buf), setShardCap+1)
	}
	for i, p := range a.sets {
		if seq(p.key) != uint64(i) {
			t.Fatalf("set %d applied in place %d", seq(p.key), i)
		}
	}
	if got := b.callerSets.Load(); got != setShardCap+1 {
		t.Fatalf("callerSets = %d, want %d", got, setShardCap+1)
	}
}

// The shard's cost bound: sets wait while their cost fits; a set that
// would pass it applies the shard's batch and itself; a set bigger than
// the bound is never buffered.
func TestSetBufferByteBound(t *testing.T) {
	var a applied
	b := newSetBuffer(100, a.apply)
	defer b.close()
	b.add(&pendingSet{key: keyIn(0, 0), cost: 60})
	b.add(&pendingSet{key: keyIn(0, 1), cost: 40})
	if a.n() != 0 || b.shards[0].bytes != 100 {
		t.Fatalf("within the bound: applied %d (want 0), shard holds %d bytes (want 100)", a.n(), b.shards[0].bytes)
	}
	b.add(&pendingSet{key: keyIn(0, 2), cost: 1}) // 101 > 100
	if a.n() != 3 || b.shards[0].bytes != 0 {
		t.Fatalf("past the bound: applied %d (want 3), shard holds %d bytes (want 0)", a.n(), b.shards[0].bytes)
	}
	b.add(&pendingSet{key: keyIn(0, 3), cost: 10})
	b.add(&pendingSet{key: keyIn(0, 4), cost: 500}) // bigger than the bound
	if a.n() != 5 || b.shards[0].bytes != 0 {
		t.Fatalf("a set bigger than the bound: applied %d (want 5), shard holds %d bytes (want 0)", a.n(), b.shards[0].bytes)
	}
	for i, p := range a.sets {
		if seq(p.key) != uint64(i) {
			t.Fatalf("set %d applied in place %d", seq(p.key), i)
		}
	}
}

// The drainer applies a set without anyone flushing, lets the next batch
// gather for setBatchDelay, lingers (a set then needs no wake), and then
// sleeps until the next set: while idle it does nothing at all, however
// long.
func TestSetBufferDrainerWakesAndSleeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var a applied
		b := newSetBuffer(1<<20, a.apply)
		b.start()
		defer b.close()
		synctest.Wait()
		if !b.idle.Load() {
			t.Fatal("a new buffer's drainer is not idle")
		}
		b.add(&pendingSet{key: keyIn(1, 1), cost: 1})
		synctest.Wait()
		if a.n() != 1 || b.wakes.Load() != 1 || b.drained.Load() != 1 {
			t.Fatalf("after one set: applied %d, wakes %d, batches %d; want 1, 1, 1", a.n(), b.wakes.Load(), b.drained.Load())
		}
		if !a.when[0].Equal(time.Now()) {
			t.Fatalf("the batch's time is %v, want now (%v)", a.when[0], time.Now())
		}
		// It lingers: a set now is applied within setPoll, unwoken.
		time.Sleep(setBatchDelay + 10*setPoll + setPoll/2) // between two polls
		b.add(&pendingSet{key: keyIn(3, 3), cost: 1})
		synctest.Wait()
		if a.n() != 1 {
			t.Fatalf("a set while lingering was applied before the next poll: applied %d", a.n())
		}
		time.Sleep(setPoll)
		synctest.Wait()
		if a.n() != 2 || b.wakes.Load() != 1 {
			t.Fatalf("a set while lingering: applied %d, wakes %d; want 2, 1", a.n(), b.wakes.Load())
		}
		time.Sleep(setBatchDelay + setLingerPolls*setPoll)
		synctest.Wait()
		if !b.idle.Load() {
			t.Fatal("the drainer is not idle after lingering")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if b.wakes.Load() != 1 || b.drained.Load() != 2 {
			t.Fatalf("an idle hour woke the drainer: wakes %d, batches %d", b.wakes.Load(), b.drained.Load())
		}
		b.add(&pendingSet{key: keyIn(2, 2), cost: 1})
		synctest.Wait()
		if a.n() != 3 || b.wakes.Load() != 2 {
			t.Fatalf("after a set to the idle drainer: applied %d, wakes %d; want 3, 2", a.n(), b.wakes.Load())
		}
		if b.callerSets.Load() != 0 {
			t.Fatalf("callers applied %d sets", b.callerSets.Load())
		}
	})
}

// While the drainer lets a batch gather, a shard reaching half its bound
// wakes it at once, before the shard can overflow.
func TestSetBufferHalfFullShardWakesTheDrainer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var a applied
		b := newSetBuffer(1<<20, a.apply)
		b.start()
		defer b.close()
		b.add(&pendingSet{key: keyIn(3, 0), cost: 1})
		synctest.Wait() // applied; the drainer waits setBatchDelay
		for i := range uint64(setShardCap/2 - 1) {
			b.add(&pendingSet{key: keyIn(3, i+1), cost: 1})
		}
		synctest.Wait() // no time has passed
		if a.n() != 1 {
			t.Fatalf("applied %d sets before the shard was half full, want 1", a.n())
		}
		b.add(&pendingSet{key: keyIn(3, setShardCap/2), cost: 1})
		synctest.Wait()
		if a.n() != setShardCap/2+1 {
			t.Fatalf("a half-full shard did not wake the drainer: applied %d, want %d", a.n(), setShardCap/2+1)
		}
	})
}

// Many goroutines add sets while the drainer runs and others flush: every
// set is applied exactly once, and each goroutine's sets to one shard in
// the order it made them.
func TestSetBufferConcurrent(t *testing.T) {
	const (
		writers = 8
		each    = 3000
	)
	var a applied
	b := newSetBuffer(1<<20, a.apply)
	b.start()
	defer b.close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var flushers sync.WaitGroup
	for range 2 {
		flushers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					b.flushAll()
				}
			}
		})
	}
	for w := range writers {
		wg.Go(func() {
			for i := range uint64(each) {
				k := keyIn(uint8(i%setShards), uint64(w)<<32|i)
				b.add(&pendingSet{key: k, cost: 1})
			}
		})
	}
	wg.Wait()
	close(stop)
	flushers.Wait()
	b.flushAll()
	if a.n() != writers*each {
		t.Fatalf("applied %d sets, want %d", a.n(), writers*each)
	}
	seen := make(map[uint64]bool, writers*each)
	last := map[[2]uint64]uint64{}
	for _, p := range a.sets {
		n := seq(p.key)
		if seen[n] {
			t.Fatalf("set %x applied twice", n)
		}
		seen[n] = true
		wsh := [2]uint64{n >> 32, uint64(p.key.Digest[9])}
		if prev, ok := last[wsh]; ok && n <= prev {
			t.Fatalf("writer %d, shard %d: set %x applied after %x", wsh[0], wsh[1], n, prev)
		}
		last[wsh] = n
	}
	t.Logf("%d sets: %d batches by the drainer, %d sets by callers", a.n(), b.drained.Load(), b.callerSets.Load())
}

// close stops the drainer (goleak in TestMain checks it is gone) and
// drops what is still buffered; later sets and flushes apply nothing.
func TestSetBufferClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var a applied
		b := newSetBuffer(1<<20, a.apply)
		b.start()
		b.add(&pendingSet{key: keyIn(0, 0), cost: 1})
		b.add(&pendingSet{key: keyIn(0, 1), cost: 1}) // waits for the next batch
		synctest.Wait()
		b.close()
		select {
		case <-b.done:
		default:
			t.Fatal("close returned before the drainer ended")
		}
		n := a.n()
		for i := range uint64(setShardCap + 1) {
			b.add(&pendingSet{key: keyIn(0, i+2), cost: 1})
		}
		b.flushAll()
		if a.n() != n {
			t.Fatalf("%d sets applied after close", a.n()-n)
		}
		b.close() // twice is fine
	})
}

func TestRistrettoWaitAppliesTheBuffer(t *testing.T) {
	st := newRistrettoT(t, RistrettoConfig{})
	ctx := context.Background()
	const n = 3 * setShards * setShardCap // more than the buffer holds
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = keyIn(uint8(i), uint64(i)+1)
		st.Set(ctx, keys[i], Entry{Response: &llm.Response{Text: "a"}}, time.Hour)
	}
	st.Wait()
	missing := 0
	for _, k := range keys {
		if _, ok, _ := st.Get(ctx, k); !ok {
			missing++
		}
	}
	// ristretto drops a set only when its own buffer (32Ki sets) is full.
	if missing > 0 {
		t.Fatalf("%d of %d entries missing after Wait", missing, n)
	}
}

func TestRistrettoCloseWithPendingSets(t *testing.T) {
	st, err := NewRistretto(RistrettoConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := New(st)
	up := llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
		return &llm.Response{Text: "a", FinishReason: llm.FinishStop}, nil
	})
	cl := c.Middleware()(up)
	for i := range 100 {
		r := det("q")
		r.MaxTokens = i + 1
		if _, err := cl.Generate(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	st.Wait() // returns after Close
	st.Set(context.Background(), keyIn(0, 1), Entry{Response: &llm.Response{Text: "late"}}, time.Hour)
	st.Close()
}
