// Package cache is a response-caching middleware for llm clients, with an
// in-process store (ristretto), a shared store (Redis) and a tiered store
// that puts the first in front of the second.
//
// The middleware sits between the observability middlewares and resilience
// in the recommended stack (see DESIGN.md): everything outside it sees every
// call, and nothing a fallback inside it produced is ever stored.
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
// A Key is a 128-bit digest of a canonical, versioned, length-prefixed
// binary encoding of every output-affecting Request field (model, system
// prompt, messages with their roles, max tokens, temperature, top-p, seed,
// stop sequences, extras with sorted keys) and the tenant, plus a separate
// 64-bit hash of the tenant that shared stores use as a namespace. Stream,
// Endpoint and the Cache mode are not part of it. Requests are validated
// before anything is hashed, so an oversized prompt is rejected with a
// bad_request error and never hashed.
//
// # Hits, misses, streams and coalescing
//
// A hit returns a copy of the stored answer marked Cached; a streaming hit
// replays the text through req.Stream. Identical misses in flight at the
// same time make one provider call: the first caller (the leader) calls the
// provider with its own context and stream; the others wait and get a copy
// of its answer (streaming followers get it replayed). If the leader's call
// fails for a reason of its own (its context ended, or its stream callback
// returned an error) the followers do not inherit that failure: one of them
// becomes the new leader. A provider error is handed to the followers of
// that one flight, and never stored.
//
// # Stale answers
//
// Each entry is fresh for a TTL and then kept for a grace window. Cache.Stale
// hands such an expired entry to resilience's fallback hook as a degraded
// answer when the provider fails.
package cache
