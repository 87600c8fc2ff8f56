package resilience

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/internal/clock"
	"github.com/llmkit/llmkit/llm"
)

// HedgeConfig starts extra attempts when the first one is slow. The first
// attempt to succeed wins (for a stream, the first to produce a chunk) and
// the others are canceled.
type HedgeConfig struct {
	Delay time.Duration // the wait before each hedge; required unless Quantile is set
	// Quantile, when in (0, 1), replaces Delay with that quantile of the
	// latencies of the last 128 successful attempts, once 20 are seen.
	Quantile  float64
	MaxHedges int          // the extra attempts at most; default 1
	Observer  llm.Observer // hears each attempt (EventAttempt) and hedge (EventHedge)
}

// Hedge returns hedging alone. It is not failsafe-go's hedge policy, which
// takes the first result: a stream goes to the first attempt to produce a
// chunk, and the others are canceled before any of theirs reaches the
// caller. failsafe-go's quantile estimator is internal; this window is ours.
func Hedge(cfg HedgeConfig) (llm.Middleware, error) { return newHedge(cfg, cfg.Observer) }

// hedger holds the settings and a window of recent successful latencies.
type hedger struct {
	HedgeConfig
	mu   sync.Mutex
	ring [128]time.Duration
	n    int
	q    atomic.Int64 // the current quantile delay, 0 until known
}

func newHedger(c HedgeConfig) (*hedger, error) {
	setDefault(&c.MaxHedges, 1)
	if c.Delay < 0 || c.MaxHedges < 0 || c.MaxHedges > 10 || c.Quantile < 0 || c.Quantile >= 1 || c.Delay == 0 && c.Quantile == 0 {
		return nil, errf("Hedge needs a Delay > 0 or a Quantile in (0, 1), and MaxHedges in [1, 10]")
	}
	return &hedger{HedgeConfig: c}, nil
}

func newHedge(c HedgeConfig, obs llm.Observer) (llm.Middleware, error) {
	c.Observer = obs
	h, err := newHedger(c)
	if err != nil {
		return nil, err
	}
	return func(next llm.Client) llm.Client {
		return policyFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			return h.run(ctx, req, next)
		})
	}, nil
}

func (h *hedger) currentDelay() time.Duration { return cmp.Or(time.Duration(h.q.Load()), h.Delay) }

// observe records a successful attempt's latency; every 16, from the 20th
// on, the quantile is recomputed from the window.
func (h *hedger) observe(d time.Duration) {
	if h.Quantile == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring[h.n%len(h.ring)] = d
	if h.n++; h.n >= 20 && h.n%16 == 0 {
		s := slices.Sorted(slices.Values(h.ring[:min(h.n, len(h.ring))]))
		h.q.Store(int64(s[int(h.Quantile*float64(len(s)-1))]))
	}
}

var errHedgeLost = errors.New("resilience: another hedged attempt is streaming")

type hedgeResult struct {
	resp     *llm.Response
	err      error
	idx      int
	panicked any
}

// run makes one attempt, and up to MaxHedges more, Delay apart, while none
// has won: the first success, or for a stream the first attempt to produce
// a chunk, relayed to the caller's goroutine. Every goroutine is waited
// for; a panic in one is raised again on the caller's goroutine.
func (h *hedger) run(ctx context.Context, req *llm.Request, next llm.Client) (*llm.Response, error) {
	ctx, t := withTally(ctx)
	t.hedged.Store(true)
	results := make(chan hedgeResult, h.MaxHedges+1)
	cancels := make([]context.CancelFunc, 0, h.MaxHedges+1)
	var chunks chan llm.Chunk // a stream's, from its winner, answered on reply
	var reply chan error
	if req.Stream != nil {
		chunks, reply = make(chan llm.Chunk), make(chan error, 1)
	}
	var winner atomic.Int32
	winner.Store(-1)
	launch := func(idx int) {
		num := int(t.n.Add(1))
		if idx > 0 {
			llm.EmitTo(ctx, h.Observer, llm.Event{Kind: llm.EventHedge, Request: req, Attempt: num})
		}
		actx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		areq := req
		if chunks != nil {
			areq = req.Clone()
			areq.Stream = func(ch llm.Chunk) error {
				if !winner.CompareAndSwap(-1, int32(idx)) && winner.Load() != int32(idx) {
					return errHedgeLost
				}
				select {
				case chunks <- ch:
					return <-reply
				case <-actx.Done():
					return actx.Err()
				}
			}
		}
		go func() {
			r, t0 := hedgeResult{idx: idx}, clock.Mono()
			defer func() {
				if p := recover(); p != nil {
					r.panicked, r.err = p, errPanic
				}
				results <- r
			}()
			r.resp, r.err = next.Generate(actx, areq)
			dur := clock.Mono() - t0
			if r.err == nil {
				h.observe(dur)
			}
			llm.EmitTo(ctx, h.Observer, llm.Event{Kind: llm.EventAttempt, Request: req, Attempt: num, Duration: dur, Err: r.err})
		}()
	}
	cancelAll := func(keep int) {
		for i, c := range cancels {
			if i != keep {
				c()
			}
		}
	}
	launch(0)
	outstanding, hedges := 1, 0
	timer := time.NewTimer(h.currentDelay())
	defer timer.Stop()
	var won *llm.Response
	var lastErr error
	var pan any
	decided, streaming := false, false
	for outstanding > 0 {
		select {
		case ch := <-chunks:
			if !streaming {
				streaming = true
				cancelAll(int(winner.Load()))
			}
			reply <- req.Stream(ch)
		case r := <-results:
			outstanding--
			switch {
			case r.panicked != nil:
				pan, decided = cmp.Or(pan, r.panicked), true // the first panic
				cancelAll(-1)
			case decided:
			case r.err == nil:
				won, decided = r.resp, true
				cancelAll(r.idx)
			case streaming && int(winner.Load()) == r.idx:
				lastErr, decided = r.err, true
			case streaming, errors.Is(r.err, errHedgeLost):
				// a loser, canceled when the winner's first chunk arrived
			default:
				lastErr, decided = r.err, !llm.Retryable(r.err)
				if decided {
					cancelAll(-1)
				}
			}
		case <-timer.C:
			if !decided && !streaming && hedges < h.MaxHedges && ctx.Err() == nil {
				hedges++
				launch(hedges)
				outstanding++
				timer.Reset(h.currentDelay())
			}
		}
	}
	cancelAll(-1)
	if pan != nil {
		panic(pan)
	}
	if won != nil {
		return t.stamp(won), nil
	}
	return nil, lastErr
}
