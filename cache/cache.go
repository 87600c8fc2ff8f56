package cache

import (
	"context"
	"errors"
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
	store   Store
	source  string
	cfg     config
	flights flights
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
	return &Cache{store: store, source: store.Name(), cfg: cfg, flights: flights{m: make(map[Key]*flight)}}, nil
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

// emit reports an event to the cache's observer and the call's.
func (c *Cache) emit(ctx context.Context, kind llm.EventKind, req *llm.Request, err error) {
	llm.EmitTo(ctx, c.cfg.obs, llm.Event{Kind: kind, Request: req, Source: c.source, Err: llm.RedactError(err)})
}

// Generate serves req from the cache or calls the wrapped client. Every
// error it returns has passed through llm.RedactError.
func (cl *client) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	resp, err := cl.generate(ctx, req)
	return resp, llm.RedactError(err)
}

func (cl *client) generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	c := cl.c
	if req == nil {
		return cl.next.Generate(ctx, req)
	}
	if req.Cache&llm.CacheBypass == llm.CacheBypass {
		return cl.bypass(ctx, req, BypassOptedOut)
	}
	if !c.cacheable(req) {
		return cl.bypass(ctx, req, BypassNondeterministic)
	}
	if ctx.Err() != nil {
		return nil, llm.FromContext(ctx, provider)
	}
	// Validate before hashing: an oversized prompt is never hashed.
	if err := req.ValidateLimits(c.cfg.limits); err != nil {
		return nil, err
	}
	key, err := KeyOf(req)
	if err != nil {
		// An Extra value JSON cannot encode: such a request has no
		// canonical key, so it is not cached.
		return cl.bypass(ctx, req, BypassNoKey)
	}
	if req.Cache&llm.CacheSkipRead == 0 {
		if e, ok := c.lookup(ctx, req, key); ok {
			return serve(e, req, c.cfg.replayChunk)
		}
	} else {
		c.emitBypass(ctx, req, BypassSkipRead) // a refresh: called, and maybe stored
	}
	if !c.cfg.coalesce || req.Cache&llm.CacheSkipRead != 0 {
		resp, _, err := cl.call(ctx, req, req, key)
		return resp, err
	}
	return cl.coalesced(ctx, req, key)
}

// The reasons a request is not looked up, reported as the Reason of an
// llm.EventCacheMiss (a plain miss has none), so that every request
// through the cache counts as a hit, a miss or a bypass with its reason.
const (
	// BypassNondeterministic: the request has no temperature 0 and the
	// cache was not built WithNondeterministic.
	BypassNondeterministic = "nondeterministic"
	// BypassOptedOut: the request asked for llm.CacheBypass.
	BypassOptedOut = "opted_out"
	// BypassSkipRead: the request asked for llm.CacheSkipRead alone (a
	// refresh); its answer may still be stored.
	BypassSkipRead = "skip_read"
	// BypassNoKey: the request has no canonical key (an Extra value JSON
	// cannot encode).
	BypassNoKey = "no_key"
)

// emitBypass reports that req was not looked up, and why.
func (c *Cache) emitBypass(ctx context.Context, req *llm.Request, reason string) {
	llm.EmitTo(ctx, c.cfg.obs, llm.Event{Kind: llm.EventCacheMiss, Request: req, Source: c.source, Reason: reason})
}

// bypass calls the wrapped client for a request the cache may not answer,
// reporting a bypass with its reason; the store is not asked.
func (cl *client) bypass(ctx context.Context, req *llm.Request, reason string) (*llm.Response, error) {
	cl.c.emitBypass(ctx, req, reason)
	return cl.next.Generate(ctx, req)
}

// lookup returns a fresh stored answer for key, reporting a hit or a miss.
func (c *Cache) lookup(ctx context.Context, req *llm.Request, key Key) (*llm.Response, bool) {
	e, ok, err := c.store.Get(ctx, key)
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

// call sends send (req, or a copy of it with another Stream) to the
// wrapped client and stores a storable answer. It returns the answer, the
// copy it stored (which followers may share) or nil, and the error.
func (cl *client) call(ctx context.Context, req, send *llm.Request, key Key) (*llm.Response, *llm.Response, error) {
	resp, err := cl.next.Generate(ctx, send)
	if err != nil {
		return nil, nil, err
	}
	if resp == nil {
		return nil, nil, llm.NewError(llm.KindUnknown, provider, "wrapped client returned neither a response nor an error")
	}
	return resp, cl.c.keep(ctx, req, key, resp), nil
}

// keep stores resp when the request and the answer allow it, and returns
// the copy it stored, or nil when it stored none.
func (c *Cache) keep(ctx context.Context, req *llm.Request, key Key, resp *llm.Response) *llm.Response {
	if req.Cache&llm.CacheSkipStore != 0 || resp.Degraded || !c.cfg.storable(resp) {
		return nil
	}
	shared := sharedCopy(resp)
	now := time.Now()
	life := c.cfg.ttl + c.cfg.grace
	e := Entry{Response: shared, Expires: now.Add(c.cfg.ttl), StaleUntil: now.Add(life)}
	if err := c.store.Set(ctx, key, e, life); err != nil {
		c.emit(ctx, llm.EventCacheError, req, err)
	} else {
		c.emit(ctx, llm.EventCacheStore, req, nil)
	}
	return shared
}

// sharedCopy returns a copy of resp as it is stored and shared: not
// Cached, no Quota, Attempts 0.
func sharedCopy(resp *llm.Response) *llm.Response {
	shared := *resp
	shared.Cached, shared.Quota, shared.Attempts = false, nil, 0
	return &shared
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
