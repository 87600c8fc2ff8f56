package cache

import (
	"context"
	"sync"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// breaker is the small circuit breaker in front of a remote store. After
// failures consecutive failures it opens: calls fail at once, costing
// nothing, for cooldown. Then one probe call is let through (half-open):
// its success closes the breaker, its failure opens it again.
type breaker struct {
	failures int
	cooldown time.Duration
	source   string

	mu       sync.Mutex
	state    llm.BreakerState
	fails    int
	openedAt time.Time
	probing  bool
}

// allow reports whether a call may go to the store now. A true result must
// be followed by done.
func (b *breaker) allow(ctx context.Context) bool {
	b.mu.Lock()
	switch b.state {
	case llm.BreakerClosed:
		b.mu.Unlock()
		return true
	case llm.BreakerOpen:
		if time.Since(b.openedAt) < b.cooldown {
			b.mu.Unlock()
			return false
		}
		b.state, b.probing = llm.BreakerHalfOpen, true
		b.mu.Unlock()
		llm.Emit(ctx, llm.Event{Kind: llm.EventBreakerState, State: llm.BreakerHalfOpen, Source: b.source})
		return true
	default: // half-open: one probe at a time
		if b.probing {
			b.mu.Unlock()
			return false
		}
		b.probing = true
		b.mu.Unlock()
		return true
	}
}

// done records the outcome of an allowed call.
func (b *breaker) done(ctx context.Context, ok bool) {
	b.mu.Lock()
	from := b.state
	switch {
	case ok:
		b.fails, b.probing = 0, false
		b.state = llm.BreakerClosed
	case from == llm.BreakerHalfOpen:
		b.state, b.openedAt, b.probing = llm.BreakerOpen, time.Now(), false
	default:
		b.fails++
		if b.fails >= b.failures && from == llm.BreakerClosed {
			b.state, b.openedAt = llm.BreakerOpen, time.Now()
		}
	}
	to := b.state
	b.mu.Unlock()
	if to != from {
		llm.Emit(ctx, llm.Event{Kind: llm.EventBreakerState, State: to, Source: b.source})
	}
}

// release gives back an allowed call that was not made, without counting
// it as a success or a failure.
func (b *breaker) release() {
	b.mu.Lock()
	if b.state == llm.BreakerHalfOpen {
		b.probing = false
	}
	b.mu.Unlock()
}

// State returns the breaker's state.
func (b *breaker) State() llm.BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
