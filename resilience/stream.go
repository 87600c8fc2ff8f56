package resilience

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// tracker stands between the provider and the caller's Stream callback. It
// records whether a chunk reached the caller (after which nothing may be
// retried, hedged or replaced) and drives the stream timeouts. It is only
// used from the calling goroutine.
type tracker struct {
	orig func(llm.Chunk) error
	sent atomic.Bool
	idle time.Duration
	// the running attempt's stream timer and its cancel
	timer  *time.Timer
	cancel context.CancelCauseFunc
}

func (t *tracker) delivered() bool { return t != nil && t.sent.Load() }

func (t *tracker) onChunk(ch llm.Chunk) error {
	t.sent.Store(true)
	if t.timer != nil {
		if t.idle > 0 {
			t.timer.Reset(t.idle)
		} else {
			t.timer.Stop()
		}
	}
	return t.orig(ch)
}

// arm bounds the wait for the attempt's first chunk (and, once chunks flow,
// the gaps between them). The returned stop releases the timer.
func (t *tracker) arm(parent context.Context, firstChunk time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	t.cancel = cancel
	d, cause := firstChunk, error(errFirstChunkTimeout)
	if t.sent.Load() || d == 0 {
		d, cause = t.idle, errIdleTimeout
	}
	if d <= 0 {
		return ctx, func() { cancel(nil) }
	}
	idleCause := error(errIdleTimeout)
	fired := func() {
		if t.sent.Load() {
			cancel(idleCause)
		} else {
			cancel(cause)
		}
	}
	t.timer = time.AfterFunc(d, fired)
	return ctx, func() {
		t.timer.Stop()
		t.timer = nil
		cancel(nil)
	}
}
