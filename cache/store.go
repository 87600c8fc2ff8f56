package cache

import (
	"context"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Entry is a stored answer with its lifetime.
type Entry struct {
	// Response is the answer as stored: not Cached, not Degraded, no Quota,
	// Attempts 0. It is shared by every reader and must not be modified;
	// the middleware hands callers clones.
	Response *llm.Response
	// Expires is when the entry stops being fresh. Until then it answers
	// requests.
	Expires time.Time
	// StaleUntil is when the grace window ends. Between Expires and
	// StaleUntil the entry only serves Cache.Stale.
	StaleUntil time.Time
}

// Store keeps entries by key. A Store is safe for concurrent use.
//
// Get reports a miss as (Entry{}, false, nil); an error means the store
// failed, and the middleware treats it as a miss and reports
// llm.EventCacheError. Get may return an entry past its deadlines: readers
// check them. Set stores e, which is of no use after ttl (TTL plus grace):
// a store may drop it then, or earlier to make room; an error means it was
// not stored. Neither may retain ctx. Name is a short, bounded name
// ("ristretto", "redis", "tiered") used as the Source of the events the
// middleware emits.
type Store interface {
	Get(ctx context.Context, key Key) (Entry, bool, error)
	Set(ctx context.Context, key Key, e Entry, ttl time.Duration) error
	Name() string
}
