// Package cache is a response-caching middleware for llm clients, with an
// in-process store on ristretto (Ristretto) and a tiered store (Tiered)
// that puts it in front of a shared one; package cache/redis is the
// shared store on Redis.
//
// The middleware sits between the observability middlewares and resilience
// in the recommended stack: everything outside it sees every call, and
// nothing a fallback inside it produced is ever stored.
//
// # What is cached
//
// By default only deterministic requests are cached: Temperature set and
// equal to 0. WithNondeterministic caches the rest too. A request can skip
// reading (llm.CacheSkipRead), storing (llm.CacheSkipStore) or both.
// Errors, degraded (fallback) answers, cut streams and answers whose finish
// reason marks them unfinished are never stored.
//
// # The key
//
// A Key is the XXH3-128 digest of a canonical, versioned, length-prefixed
// encoding of every output-affecting Request field and the tenant, fed to
// the hash as a stream (small fields batched in a stack buffer, never the
// whole encoding), plus a 64-bit hash of the tenant that shared
// stores use as a namespace. Stream, Endpoint and the Cache mode are not
// part of it. Requests are validated before anything is hashed, so an
// oversized prompt is rejected with a bad_request error and never hashed.
//
// # Hits, misses, streams and coalescing
//
// A hit returns a copy of the stored answer marked Cached; a streaming hit
// replays the text through req.Stream. Identical misses in flight at the
// same time make one provider call: the first caller (the leader) calls
// with its own context and stream; the others wait, each until the call
// lands or its own context ends, and get a copy of the answer (replayed
// if they stream). If the leader fails for a reason of its own (its
// context ended, its stream callback failed, it panicked) one of the
// others leads a new call. A provider error is handed to the followers of
// that one flight, and never stored.
//
// # Stale answers
//
// Each entry is fresh for a TTL and then kept for a grace window. Cache.Stale
// hands such an expired entry to resilience's fallback hook as a degraded
// answer when the provider fails.
//
// # Events and errors
//
// The cache emits cache_hit, cache_miss, cache_store, cache_coalesced,
// cache_stale and cache_error events, with Source the store's name, to
// the observers on each call's context and to the one given with
// WithObserver. Every error it returns, and every error its events carry,
// has passed through llm.RedactError.
package cache
