package resilience

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/internal/clock"
	"github.com/llmkit/llmkit/llm"
)

// hedger holds the hedge settings and, for a quantile delay, a window of
// recent successful attempt latencies.
type hedger struct {
	delay    time.Duration
	quantile float64
	max      int

	mu   sync.Mutex
	ring [128]time.Duration
	n    int
	q    atomic.Int64 // the current quantile delay, 0 until known
}

const hedgeSamples = 20 // successes needed before the quantile is used

func newHedger(c HedgeConfig) (*hedger, error) {
	if c.MaxHedges == 0 {
		c.MaxHedges = 1
	}
	switch {
	case c.Delay < 0 || c.MaxHedges < 0 || c.MaxHedges > 10:
		return nil, errf("Hedge.Delay must be ≥ 0 and MaxHedges in [1, 10]")
	case c.Quantile < 0 || c.Quantile >= 1:
		return nil, errf("Hedge.Quantile out of [0, 1)")
	case c.Delay == 0 && c.Quantile == 0:
		return nil, errf("Hedge needs a Delay or a Quantile")
	}
	return &hedger{delay: c.Delay, quantile: c.Quantile, max: c.MaxHedges}, nil
}

func (h *hedger) currentDelay() time.Duration {
	if q := h.q.Load(); q > 0 {
		return time.Duration(q)
	}
	return h.delay
}

func (h *hedger) observe(d time.Duration) {
	if h.quantile == 0 {
		return
	}
	h.mu.Lock()
	h.ring[h.n%len(h.ring)] = d
	h.n++
	if h.n < hedgeSamples || h.n%16 != 0 {
		h.mu.Unlock()
		return
	}
	s := slices.Clone(h.ring[:min(h.n, len(h.ring))])
	h.mu.Unlock()
	slices.Sort(s)
	h.q.Store(int64(s[int(h.quantile*float64(len(s)-1))]))
}

var errHedgeLost = errors.New("resilience: another hedged attempt is streaming")

type hedgeResult struct {
	resp     *llm.Response
	err      error
	idx      int
	dur      time.Duration
	panicked any
}

type hedgeChunk struct {
	idx int
	ch  llm.Chunk
}

// hedged runs one attempt with up to MaxHedges extra attempts started
// Delay apart. The first success wins; for a stream, the first attempt to
// produce a chunk wins and the others are canceled before it reaches the
// caller, so no token is delivered twice. Every goroutine is waited for.
func (st *call) hedged(actx context.Context) (*llm.Response, error) {
	h := st.c.hedge
	ctx, orig, next, tr, bud := st.ctx, st.orig, st.c.next, st.tr, st.c.budget
	obs := &st.c.obs // not st: the goroutines must not capture it, or every call's st escapes
	results := make(chan hedgeResult, h.max+1)
	cancels := make([]context.CancelFunc, 0, h.max+1)
	replies := make([]chan error, h.max+1)
	var chunks chan hedgeChunk
	var winner atomic.Int32
	winner.Store(-1)
	if tr != nil {
		chunks = make(chan hedgeChunk)
	}
	launch := func(idx, num int) {
		cctx, cancel := context.WithCancel(actx)
		cancels = append(cancels, cancel)
		req := orig
		if tr != nil {
			reply := make(chan error, 1)
			replies[idx] = reply
			req = orig.Clone()
			req.Stream = func(ch llm.Chunk) error {
				if !winner.CompareAndSwap(-1, int32(idx)) && winner.Load() != int32(idx) {
					return errHedgeLost
				}
				select {
				case chunks <- hedgeChunk{idx, ch}:
				case <-cctx.Done():
					return cctx.Err()
				}
				select {
				case err := <-reply:
					return err
				case <-cctx.Done():
					return cctx.Err()
				}
			}
		}
		go func() {
			r := hedgeResult{idx: idx}
			t0 := clock.Mono()
			defer func() {
				if p := recover(); p != nil {
					r.panicked, r.err = p, errPanic
				}
				results <- r
			}()
			r.resp, r.err = next.Generate(cctx, req)
			r.dur = clock.Mono() - t0
			obs.Emit(ctx, llm.Event{Kind: llm.EventAttempt, Request: orig, Attempt: num, Duration: r.dur, Err: r.err})
		}()
	}
	cancelAll := func(keep int) {
		for i, c := range cancels {
			if i != keep {
				c()
			}
		}
	}

	st.attempts++
	launch(0, st.attempts)
	outstanding, hedges := 1, 0
	timer := time.NewTimer(h.currentDelay())
	defer timer.Stop()
	var (
		won       *hedgeResult
		lastErr   error
		pan       any
		decided   bool
		streaming bool
		hedgeHeld [11]bool
	)
	for outstanding > 0 {
		select {
		case c := <-chunks:
			if !streaming {
				streaming = true
				cancelAll(c.idx)
			}
			replies[c.idx] <- tr.onChunk(c.ch)
		case r := <-results:
			outstanding--
			if hedgeHeld[r.idx] {
				hedgeHeld[r.idx] = false
				bud.ReleasePermit()
			}
			switch {
			case r.panicked != nil:
				if pan == nil {
					pan = r.panicked
				}
				decided = true
				cancelAll(-1)
			case decided:
			case r.err == nil:
				won, decided = &r, true
				h.observe(r.dur)
				cancelAll(r.idx)
			case streaming && int(winner.Load()) == r.idx:
				lastErr, decided = r.err, true
			case streaming, errors.Is(r.err, errHedgeLost):
				// a loser, canceled when the winner's first chunk arrived
			default:
				lastErr = r.err
				if !llm.Retryable(r.err) {
					decided = true
					cancelAll(-1)
				}
			}
		case <-timer.C:
			if decided || streaming || hedges >= h.max || actx.Err() != nil {
				continue
			}
			idx := hedges + 1
			if bud != nil {
				if !bud.TryAcquirePermit() {
					reject(ctx, obs, "budget", lastErr)
					continue
				}
				hedgeHeld[idx] = true
			}
			hedges++
			st.attempts++
			obs.Emit(ctx, llm.Event{Kind: llm.EventHedge, Request: orig, Attempt: st.attempts})
			launch(idx, st.attempts)
			outstanding++
			if hedges < h.max {
				timer.Reset(h.currentDelay())
			}
		}
	}
	cancelAll(-1)
	if pan != nil {
		panic(pan)
	}
	if won != nil {
		return won.resp, nil
	}
	return nil, lastErr
}
