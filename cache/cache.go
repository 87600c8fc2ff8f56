package cache

import (
	"context"
	"errors"
	mathbits "math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/llmkit/llmkit/llm"
)

// provider names the cache in the errors it makes.
const provider = "cache"

// Cache is a response cache over a Store. Its Middleware serves and fills
// it; Stale hands expired entries to resilience's fallback. A Cache is safe
// for concurrent use.
type Cache struct {
	store  Store
	source string
	cfg    config

	// flights holds the calls in the air, sharded by key digest so that
	// misses on different keys never contend for one lock.
	flights [flightShards]flightShard

	// rs is store when it is a *Ristretto, which stores an answer in its
	// own allocation and hands out its entries in place.
	rs *Ristretto
	// clock stamps the deadlines of entries set through a Store's Set.
	clock clock
	// obs are the observers subscribed at construction through any of
	// the clients this Cache wraps (see client.Subscribe).
	obs llm.Observers
}

// flightShards is the number of flight shards: enough that misses on
// different keys rarely share a lock on any plausible core count.
const flightShards = 64

// flightSlots is the number of flights a shard holds in its slots before it
// puts more in its overflow map.
const flightSlots = 8

// flightShard is one lock and registry of in-flight calls, padded to whole
// cache lines so that neighbouring shards' locks do not false-share.
//
// A flight lives in a slot (used says which are taken) while there is
// one; beyond flightSlots at once, in the map. Registering and removing a
// key in a slot is a scan of at most flightSlots keys under the lock, no
// hashing and no map bookkeeping; 64 shards of 8 slots hold 512 calls in
// flight (spread by a digest byte) before any goes to a map.
type flightShard struct {
	mu   sync.Mutex
	used uint8
	keys [flightSlots]Key
	fs   [flightSlots]*flight
	m    map[Key]*flight // made when the slots are first full
	_    [320 - 8 - 8 - flightSlots*32 - 8]byte
}

// find returns the flight registered for key and where: a slot index, or
// -1 with ok when it is in the map. s.mu is held.
func (s *flightShard) find(key *Key) (f *flight, slot int, ok bool) {
	for bits := s.used; bits != 0; bits &= bits - 1 {
		i := mathbits.TrailingZeros8(bits)
		if s.keys[i] == *key {
			return s.fs[i], i, true
		}
	}
	if len(s.m) > 0 {
		f, ok = s.m[*key]
	}
	return f, -1, ok
}

// register records key as in the air with flight f (nil: nobody waits
// yet). key is not registered; s.mu is held.
func (s *flightShard) register(key *Key, f *flight) {
	if free := ^s.used; free != 0 {
		i := mathbits.TrailingZeros8(free)
		s.used |= 1 << i
		s.keys[i], s.fs[i] = *key, f
		return
	}
	if s.m == nil {
		s.m = make(map[Key]*flight)
	}
	s.m[*key] = f
}

// shard returns the flight shard of key. It uses a digest byte ristretto
// does not shard by, from the other half of the XXH3-128 digest.
func (c *Cache) shard(key *Key) *flightShard {
	return &c.flights[key.Digest[8]%flightShards]
}

// New returns a Cache over store. It fails on a nil store or an invalid
// option.
func New(store Store, opts ...Option) (*Cache, error) {
	if store == nil {
		return nil, errors.New("cache: nil Store")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.apply(&cfg); err != nil {
			return nil, err
		}
	}
	c := &Cache{store: store, source: store.Name(), cfg: cfg}
	c.rs, _ = store.(*Ristretto)
	return c, nil
}

// Middleware returns a caching middleware over store; it is
// New(store, opts...).Middleware().
func Middleware(store Store, opts ...Option) (llm.Middleware, error) {
	c, err := New(store, opts...)
	if err != nil {
		return nil, err
	}
	return c.Middleware(), nil
}

// Middleware returns the middleware that serves hits from the cache and
// stores what the wrapped client answers. Every client it wraps shares this
// Cache's store and in-flight calls.
func (c *Cache) Middleware() llm.Middleware {
	return func(next llm.Client) llm.Client { return &client{c: c, next: next} }
}

type client struct {
	c    *Cache
	next llm.Client
}

var _ llm.Client = (*client)(nil)

// cacheable reports whether the answer to req may be cached at all.
func (c *Cache) cacheable(req *llm.Request) bool {
	return c.cfg.nondeterministic || (req.Temperature != nil && *req.Temperature == 0)
}

func (c *Cache) emit(ctx context.Context, kind llm.EventKind, req *llm.Request, err error) {
	c.obs.Emit(ctx, llm.Event{Kind: kind, Request: req, Source: c.source, Err: err})
}

// storeSubscriber is a Store that emits events of its own (Redis: errors
// of its background writes, its breaker's state changes) and can deliver
// them to observers subscribed at construction.
type storeSubscriber interface {
	subscribe(o llm.Observer)
}

// Subscribe subscribes o to the cache's events, and its store's, once the
// wrapped client accepts it too (see llm.Subscriber). The observers belong
// to the Cache: a Cache shared by several wrapped clients reports the
// events of all their calls to each.
func (cl *client) Subscribe(o llm.Observer) bool {
	if !llm.Subscribe(cl.next, o) {
		return false
	}
	cl.c.obs.Add(o)
	if s, ok := cl.c.store.(storeSubscriber); ok {
		s.subscribe(o)
	}
	return true
}

// Generate serves req from the cache or calls the wrapped client.
func (cl *client) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	c := cl.c
	if req == nil || req.Cache&llm.CacheBypass == llm.CacheBypass || !c.cacheable(req) {
		return cl.next.Generate(ctx, req)
	}
	if err := ctx.Err(); err != nil {
		return nil, llm.FromContext(ctx, provider)
	}
	// Validate before hashing: an oversized prompt is never hashed.
	if err := req.ValidateLimits(c.cfg.limits); err != nil {
		return nil, err
	}
	// Keys go down by pointer (see keyOf).
	var key Key
	if err := keyOf(req, &key); err != nil {
		// An Extra value JSON cannot encode: such a request has no
		// canonical key, so it is not cached.
		return cl.next.Generate(ctx, req)
	}
	if req.Cache&llm.CacheSkipRead != 0 {
		return cl.call(ctx, req, &key, nil)
	}
	if e, ok := c.lookup(ctx, req, &key); ok {
		return serve(e, req, c.cfg.replayChunk)
	}
	if !c.cfg.coalesce {
		return cl.call(ctx, req, &key, nil)
	}
	return cl.coalesced(ctx, req, &key)
}

// lookup returns a fresh stored answer for key, reporting a hit or a miss.
func (c *Cache) lookup(ctx context.Context, req *llm.Request, key *Key) (*llm.Response, bool) {
	if c.rs != nil {
		// The entry is read in place: no copy of it, no interface call.
		if e := c.rs.getEntry(key); e != nil && e.Response != nil && time.Until(e.Expires) > 0 {
			c.emit(ctx, llm.EventCacheHit, req, nil)
			return e.Response, true
		}
		c.emit(ctx, llm.EventCacheMiss, req, nil)
		return nil, false
	}
	e, ok, err := c.store.Get(ctx, *key)
	if err != nil {
		c.emit(ctx, llm.EventCacheError, req, err)
	}
	if ok && e.Response != nil && time.Until(e.Expires) > 0 {
		c.emit(ctx, llm.EventCacheHit, req, nil)
		return e.Response, true
	}
	c.emit(ctx, llm.EventCacheMiss, req, nil)
	return nil, false
}

// serve hands the caller its own copy of a shared answer, marked Cached,
// replaying it through req.Stream when the caller streams.
func serve(shared *llm.Response, req *llm.Request, chunk int) (*llm.Response, error) {
	resp := shared.Clone()
	resp.Cached = true
	if req.Stream != nil {
		if err := replay(req.Stream, resp.Text, chunk); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// replay streams text as one chunk, or in chunks of about size bytes cut
// on UTF-8 boundaries when size > 0.
func replay(stream func(llm.Chunk) error, text string, size int) error {
	if size <= 0 || len(text) <= size {
		return stream(llm.Chunk{Index: 0, Text: text})
	}
	for i := 0; len(text) > 0; i++ {
		n := min(size, len(text))
		for n < len(text) && !utf8.RuneStart(text[n]) {
			n++
		}
		if err := stream(llm.Chunk{Index: i, Text: text[:n]}); err != nil {
			return err
		}
		text = text[n:]
	}
	return nil
}

// flight is one provider call that identical concurrent misses wait for.
//
// A leader registers its key in its shard with a nil *flight, which costs
// no allocation; the first follower makes the flight and puts it in the
// leader's slot. So a miss nobody joins allocates nothing to coalesce.
type flight struct {
	// done is closed when the flight lands.
	done chan struct{}
	// resp is the leader's answer as the followers share it: a copy the
	// leader's caller cannot reach. Set before done is closed.
	resp *llm.Response
	err  error
	// retry says the leader failed for a reason of its own (its context
	// ended, its stream callback failed, it panicked): followers try again
	// instead of inheriting the failure.
	retry bool
}

// coalesced makes req the leader of a flight for key, or waits for the
// flight already in the air.
func (cl *client) coalesced(ctx context.Context, req *llm.Request, key *Key) (*llm.Response, error) {
	c := cl.c
	s := c.shard(key)
	for {
		s.mu.Lock()
		f, slot, ok := s.find(key)
		if !ok {
			s.register(key, nil) // in the air, nobody waiting yet
			s.mu.Unlock()
			return cl.call(ctx, req, key, s)
		}
		if f == nil {
			f = &flight{done: make(chan struct{})}
			if slot >= 0 {
				s.fs[slot] = f
			} else {
				s.m[*key] = f
			}
		}
		s.mu.Unlock()
		c.emit(ctx, llm.EventCacheCoalesced, req, nil)
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, llm.FromContext(ctx, provider)
		}
		if f.retry {
			continue
		}
		if f.err != nil {
			return nil, f.err
		}
		return serve(f.resp, req, c.cfg.replayChunk)
	}
}

// call asks the wrapped client and stores a storable answer. When s is
// set, req leads the flight for key registered in s, and call hands the
// outcome to its followers.
func (cl *client) call(ctx context.Context, req *llm.Request, key *Key, s *flightShard) (resp *llm.Response, err error) {
	c := cl.c
	if s == nil {
		resp, err = cl.next.Generate(ctx, req)
		if err == nil && resp != nil {
			c.keep(ctx, req, key, resp)
		}
		return resp, err
	}
	landed := false
	defer func() {
		if !landed { // the wrapped client panicked: let a follower lead
			c.land(s, key, nil, nil, nil, true)
		}
	}()
	r := req
	var callbackFailed *atomic.Bool // written by the stream callback
	if req.Stream != nil {
		callbackFailed = new(atomic.Bool)
		stream := req.Stream
		r = req.Clone()
		r.Stream = func(ch llm.Chunk) error {
			if err := stream(ch); err != nil {
				callbackFailed.Store(true)
				return err
			}
			return nil
		}
	}
	resp, err = cl.next.Generate(ctx, r)
	var shared *llm.Response
	if err == nil {
		if resp == nil {
			err = llm.NewError(llm.KindUnknown, provider, "wrapped client returned neither a response nor an error")
		} else {
			shared = c.keep(ctx, req, key, resp)
		}
	}
	retry := err != nil && ((callbackFailed != nil && callbackFailed.Load()) || ctx.Err() != nil)
	c.land(s, key, resp, shared, err, retry)
	landed = true
	return resp, err
}

// land ends the flight for key in s: later misses start a new one, and its
// followers, if any joined, wake to shared (or a copy of resp when the
// answer was not stored), err or retry.
func (c *Cache) land(s *flightShard, key *Key, resp, shared *llm.Response, err error, retry bool) {
	s.mu.Lock()
	f, slot, _ := s.find(key) // the leader's own entry: only the leader removes it
	if slot >= 0 {
		s.used &^= 1 << slot
		s.fs[slot] = nil
	} else {
		delete(s.m, *key)
	}
	s.mu.Unlock()
	if f == nil {
		return // nobody joined
	}
	if err == nil && !retry && shared == nil {
		shared = sharedCopy(resp)
	}
	// Followers read the outcome after done closes; no later miss can find
	// f, since it has left the shard.
	f.resp, f.err, f.retry = shared, err, retry
	close(f.done)
}

// sharedCopy returns a copy of resp as it is stored and shared: not
// Cached, no Quota, Attempts 0.
func sharedCopy(resp *llm.Response) *llm.Response {
	shared := new(llm.Response)
	copyShared(shared, resp)
	return shared
}

// copyShared writes into dst the stored form of resp.
func copyShared(dst, resp *llm.Response) {
	*dst = *resp
	dst.Cached, dst.Quota, dst.Attempts = false, nil, 0
}

// keep stores resp when the request and the answer allow it, and returns
// the copy it stored, which followers may share, or nil when it stored
// none.
func (c *Cache) keep(ctx context.Context, req *llm.Request, key *Key, resp *llm.Response) *llm.Response {
	if req.Cache&llm.CacheSkipStore != 0 || resp.Degraded || !c.cfg.storable(resp) {
		return nil
	}
	if c.rs != nil {
		// The store copies the answer into its buffer; followers, if any,
		// get a copy land makes.
		c.rs.setOwned(key, resp, c.cfg.ttl, c.cfg.grace)
		c.emit(ctx, llm.EventCacheStore, req, nil)
		return nil
	}
	now := c.clock.now()
	life := c.cfg.ttl + c.cfg.grace
	expires, staleUntil := now.Add(c.cfg.ttl), now.Add(life)
	shared := sharedCopy(resp)
	if err := c.store.Set(ctx, *key, Entry{Response: shared, Expires: expires, StaleUntil: staleUntil}, life); err != nil {
		c.emit(ctx, llm.EventCacheError, req, err)
	} else {
		c.emit(ctx, llm.EventCacheStore, req, nil)
	}
	return shared
}

// anchorAge is how long a clock anchor serves before the wall clock is
// read again, so that a step of the wall clock reaches new entries'
// deadlines within this long.
const anchorAge = time.Second

// anchor is a full clock reading (wall and monotonic) that now() offsets.
type anchor struct{ t time.Time }

// clock is a source of entry deadlines cheaper than time.Now.
type clock struct {
	// anchor is the last full clock reading; see now.
	anchor atomic.Pointer[anchor]
}

// now returns the current time, with a monotonic reading so that the
// time.Until checks of entries made in this process read only the
// monotonic clock. time.Now reads two clocks; now reads one, the monotonic
// clock, and offsets the last anchor by it, reading both again at most
// once per anchorAge. Its wall time can lag a wall-clock step by at most
// anchorAge.
func (c *clock) now() time.Time {
	if a := c.anchor.Load(); a != nil {
		if d := time.Since(a.t); d >= 0 && d < anchorAge {
			return a.t.Add(d)
		}
	}
	t := time.Now()
	c.anchor.Store(&anchor{t})
	return t
}

// Stale returns the stored answer to req when it has expired but is still
// within its grace window (or is still fresh), as a copy marked Cached. It
// is the hook resilience's fallback takes for a degraded answer: that
// package marks the answer Degraded. It reports false for a request the
// cache would not serve (nondeterministic without WithNondeterministic,
// CacheSkipRead, invalid) and when nothing usable is stored. It does not
// call req.Stream.
func (c *Cache) Stale(ctx context.Context, req *llm.Request) (*llm.Response, bool) {
	if req == nil || req.Cache&llm.CacheSkipRead != 0 || !c.cacheable(req) ||
		req.ValidateLimits(c.cfg.limits) != nil {
		return nil, false
	}
	key, err := KeyOf(req)
	if err != nil {
		return nil, false
	}
	e, ok, err := c.store.Get(ctx, key)
	if err != nil {
		c.emit(ctx, llm.EventCacheError, req, err)
		return nil, false
	}
	if !ok || e.Response == nil || time.Until(e.StaleUntil) <= 0 {
		return nil, false
	}
	resp := e.Response.Clone()
	resp.Cached = true
	c.emit(ctx, llm.EventCacheStale, req, nil)
	return resp, true
}
