package limit

import (
	"context"
	"sync"
	"time"
)

// leases hands out request permits taken from the store in blocks: one
// round trip admits up to block calls of a key in this process. A lease
// lives at most ttl; when it is used up or expires, what it did not use is
// given back to the store (settled) and the next call takes a new one.
//
// A lease counts in the store's window at the time it was taken, and its
// permits are used up to ttl later: in any window, a replica may thus run
// the rest of at most one lease per key taken before the window began,
// so over-admission is at most replicas × block requests per window.
type leases struct {
	block   int
	ttl     time.Duration
	maxKeys int

	mu       sync.Mutex
	keys     map[string]*lease
	overflow *lease
}

// lease is one key's current block.
type lease struct {
	mu      sync.Mutex
	key     string
	id      int64 // 0: no lease
	granted int   // permits the store granted
	used    int
	expires time.Time
}

func newLeases(block int, ttl time.Duration, maxKeys int) *leases {
	return &leases{block: block, ttl: ttl, maxKeys: maxKeys, keys: map[string]*lease{}}
}

func (ls *leases) get(key string) *lease {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l, ok := ls.keys[key]; ok {
		return l
	}
	if len(ls.keys) >= ls.maxKeys {
		if ls.overflow == nil {
			ls.overflow = &lease{}
		}
		return ls.overflow
	}
	l := &lease{}
	ls.keys[key] = l
	return l
}

// take admits one call of key under rpm from its lease, taking a new lease
// from st when the current one is used up or expired. It returns the
// store's decision, or its error.
func (ls *leases) take(ctx context.Context, st store, key string, rpm int) (decision, error) {
	l := ls.get(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.id != 0 && l.key == key && l.used < l.granted && now.Before(l.expires) {
		l.used++
		return decision{admitted: true, granted: 1}, nil
	}
	if err := l.giveBack(ctx, st); err != nil {
		return decision{}, err
	}
	id := newID()
	d, err := st.reserve(ctx, key, id, min(ls.block, rpm), 0, rpm, 0, true)
	if err != nil || !d.admitted {
		return d, err
	}
	l.key, l.id, l.granted, l.used, l.expires = key, id, d.granted, 1, now.Add(ls.ttl)
	return d, nil
}

// giveBack settles the current lease to the permits it used.
func (l *lease) giveBack(ctx context.Context, st store) error {
	if l.id == 0 {
		return nil
	}
	id, key, used, granted := l.id, l.key, l.used, l.granted
	l.id = 0
	if used >= granted {
		return nil
	}
	return st.settle(ctx, key, id, used, 0)
}

// close gives back every lease's unused permits.
func (ls *leases) close(ctx context.Context, st store) error {
	ls.mu.Lock()
	all := make([]*lease, 0, len(ls.keys)+1)
	for _, l := range ls.keys {
		all = append(all, l)
	}
	if ls.overflow != nil {
		all = append(all, ls.overflow)
	}
	ls.mu.Unlock()
	var first error
	for _, l := range all {
		l.mu.Lock()
		if err := l.giveBack(ctx, st); err != nil && first == nil {
			first = err
		}
		l.mu.Unlock()
	}
	return first
}
