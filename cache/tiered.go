package cache

import (
	"context"
	"errors"
	"time"
)

// Tiered is a Store that puts a fast local store (L1, usually Ristretto) in
// front of a shared one (L2, usually Redis). Get tries L1, then L2, and
// fills L1 from an L2 hit for the rest of the entry's lifetime; Set writes
// both. An L2 failure is returned as an error alongside L1's result, so the
// middleware reports it and goes on.
type Tiered struct {
	l1, l2 Store
	name   string
}

var _ Store = (*Tiered)(nil)

// NewTiered returns a two-level store named "tiered".
func NewTiered(l1, l2 Store) (*Tiered, error) {
	if l1 == nil || l2 == nil {
		return nil, errors.New("cache: NewTiered needs two stores")
	}
	return &Tiered{l1: l1, l2: l2, name: "tiered"}, nil
}

// Get returns L1's entry, or L2's (copied into L1).
func (t *Tiered) Get(ctx context.Context, key Key) (Entry, bool, error) {
	e, ok, err1 := t.l1.Get(ctx, key)
	if ok && time.Until(e.Expires) > 0 {
		return e, true, err1
	}
	e2, ok2, err2 := t.l2.Get(ctx, key)
	if !ok2 {
		// Keep a stale L1 entry for Cache.Stale.
		return e, ok, errors.Join(err1, err2)
	}
	if ttl := time.Until(e2.StaleUntil); ttl > 0 && (!ok || e2.StaleUntil.After(e.StaleUntil)) {
		err1 = errors.Join(err1, t.l1.Set(ctx, key, e2, ttl))
	}
	return e2, true, errors.Join(err1, err2)
}

// Set writes e to both levels.
func (t *Tiered) Set(ctx context.Context, key Key, e Entry, ttl time.Duration) error {
	return errors.Join(t.l1.Set(ctx, key, e, ttl), t.l2.Set(ctx, key, e, ttl))
}

// Name returns "tiered".
func (t *Tiered) Name() string { return t.name }
