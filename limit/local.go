package limit

import (
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/ratelimiter"
)

// localShare is the LocalShare mode: each key's limit divided by the
// number of replicas, on failsafe-go's bursty rate limiters (each window
// admits its share; a burst across a window's boundary may reach twice
// the share, see docs/limits.md). Keys beyond maxKeys share one pair.
type localShare struct {
	replicas int
	window   time.Duration
	maxKeys  int

	mu       sync.Mutex
	keys     map[string]*localPair
	overflow *localPair
}

// localPair limits one key's requests and tokens; a nil limiter is
// unlimited. Its limits are those of the first call that used it.
type localPair struct {
	req, tok     ratelimiter.RateLimiter[any]
	rpmMax, tMax int
}

func newLocalShare(replicas int, window time.Duration, maxKeys int) *localShare {
	return &localShare{replicas: replicas, window: window, maxKeys: maxKeys, keys: map[string]*localPair{}}
}

// share returns a limit's share: at least 1, 0 for unlimited.
func (s *localShare) share(limit int) int {
	if limit <= 0 {
		return 0
	}
	return max(limit/s.replicas, 1)
}

func (s *localShare) pair(key string, rpm, tpm int) *localPair {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.keys[key]; ok {
		return p
	}
	if len(s.keys) >= s.maxKeys {
		if s.overflow == nil {
			s.overflow = s.newPair(rpm, tpm)
		}
		return s.overflow
	}
	p := s.newPair(rpm, tpm)
	s.keys[key] = p
	return p
}

func (s *localShare) newPair(rpm, tpm int) *localPair {
	p := &localPair{rpmMax: s.share(rpm), tMax: s.share(tpm)}
	if p.rpmMax > 0 {
		p.req = ratelimiter.NewBursty[any](uint(p.rpmMax), s.window)
	}
	if p.tMax > 0 {
		p.tok = ratelimiter.NewBursty[any](uint(p.tMax), s.window)
	}
	return p
}

// take admits one call of toks tokens (at most the share, so that a large
// call can pass in an empty window) under key, or refuses it.
func (s *localShare) take(key string, rpm, tpm, toks int) bool {
	p := s.pair(key, rpm, tpm)
	if p.req != nil && !p.req.TryAcquirePermit() {
		return false
	}
	if p.tok != nil && !p.tok.TryAcquirePermits(uint(min(toks, p.tMax))) {
		return false // the request permit is spent: failsafe-go cannot take it back
	}
	return true
}
