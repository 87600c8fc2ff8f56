package cache

import (
	"context"
	"sync"

	"github.com/llmkit/llmkit/llm"
)

// flights coalesces identical misses in flight at once into one call of
// the wrapped client. It is ours rather than golang.org/x/sync/singleflight
// because singleflight's Do gives a waiting caller no way out when its
// context ends and hands the leader's panic to every waiter, and its
// DoChan runs the call on a goroutine of its own, where the leader's stream
// callback must not run and the leader's cancellation would not end the
// call. Here the leader calls on its own goroutine, with its own context
// and stream; a follower waits until the flight lands or its own context
// ends; and when the leader fails for a reason of its own (its context
// ended, its stream callback failed, it panicked) the followers start
// again, one of them leading.
type flights struct {
	mu sync.Mutex
	m  map[Key]*flight
}

// flight is one call that identical misses wait for. Its fields are set
// before done is closed and read only after.
type flight struct {
	done  chan struct{}
	resp  *llm.Response // shared by the followers: they serve clones
	err   error
	retry bool // the leader failed for a reason of its own
}

// join returns the flight for key, and whether the caller leads it.
func (fs *flights) join(key Key) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

// land ends the flight: later misses start a new one, and its followers
// wake to its outcome.
func (fs *flights) land(key Key, f *flight, resp *llm.Response, err error, retry bool) {
	fs.mu.Lock()
	delete(fs.m, key)
	fs.mu.Unlock()
	f.resp, f.err, f.retry = resp, err, retry
	close(f.done)
}

// coalesced leads the flight for key, or waits for the one in the air.
func (cl *client) coalesced(ctx context.Context, req *llm.Request, key Key) (*llm.Response, error) {
	for {
		f, lead := cl.c.flights.join(key)
		if lead {
			return cl.lead(ctx, req, key, f)
		}
		cl.c.emit(ctx, llm.EventCacheCoalesced, req, nil)
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, llm.FromContext(ctx, provider)
		}
		switch {
		case f.retry: // the leader failed for a reason of its own
		case f.err != nil:
			return nil, f.err
		default:
			return serve(f.resp, req, cl.c.cfg.replayChunk)
		}
	}
}

// lead makes the call for flight f and lands it, also when the wrapped
// client panics.
func (cl *client) lead(ctx context.Context, req *llm.Request, key Key, f *flight) (resp *llm.Response, err error) {
	var shared *llm.Response
	retry := true // if the wrapped client panics, a follower leads
	defer func() { cl.c.flights.land(key, f, shared, err, retry) }()
	send, failed := watched(req)
	resp, shared, err = cl.call(ctx, req, send, key)
	if err == nil && shared == nil {
		shared = sharedCopy(resp) // not stored: the followers' own copy
	}
	retry = err != nil && (failed != nil && *failed || ctx.Err() != nil)
	return resp, err
}

// watched returns req, or for a streaming req a copy whose callback
// records in *failed whether the caller's callback failed.
func watched(req *llm.Request) (*llm.Request, *bool) {
	if req.Stream == nil {
		return req, nil
	}
	failed, send := new(bool), req.Clone()
	send.Stream = func(ch llm.Chunk) error {
		err := req.Stream(ch)
		*failed = *failed || err != nil
		return err
	}
	return send, failed
}
