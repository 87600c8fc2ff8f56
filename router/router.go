package router

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// provider names this package in the errors it makes.
const provider = "router"

// errAttemptTimeout is the cause of a deployment's attempt context when
// AttemptTimeout passed.
var errAttemptTimeout = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: "deployment attempt timed out"}

// Router is an llm.Client over several deployments. It is safe for
// concurrent use.
type Router struct {
	cfg       Config
	deps      []deployment
	groups    [][]uint8          // the indices of each group's deployments
	fallbacks []map[llm.Kind]int // per group: kind → group index
	randMu    sync.Mutex
	// start anchors now: readings are positive, so 0 can mean "none",
	// and follow testing/synctest's fake clock for a router built in a
	// bubble.
	start time.Time
}

// now returns a monotonic reading: the time since New, plus 1 ns.
func (r *Router) now() time.Duration { return time.Since(r.start) + 1 }

var _ llm.Client = (*Router)(nil)

// New validates cfg and builds the router. It returns an error for an
// invalid config and never panics on a request.
func New(cfg Config) (*Router, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Router{cfg: cfg, deps: make([]deployment, len(cfg.Deployments)), start: time.Now()}
	index := map[string]int{}
	for i, g := range cfg.Groups {
		index[g.Name] = i
	}
	r.groups = make([][]uint8, len(cfg.Groups))
	r.fallbacks = make([]map[llm.Kind]int, len(cfg.Groups))
	for i, g := range cfg.Groups {
		r.fallbacks[i] = map[llm.Kind]int{}
		for k, to := range g.Fallbacks {
			r.fallbacks[i][k] = index[to]
		}
	}
	for i, d := range cfg.Deployments {
		r.deps[i].Deployment = d
		r.deps[i].group = index[d.Group]
		r.groups[r.deps[i].group] = append(r.groups[r.deps[i].group], uint8(i))
	}
	return r, nil
}

// Generate sends req to one deployment after another, as described in
// the package documentation, and returns the first answer, or the last
// deployment's error.
func (r *Router) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if req == nil {
		return nil, llm.BadRequest("router: nil request")
	}
	if ctx.Err() != nil {
		return nil, llm.FromContext(ctx, provider)
	}
	estimate := req.EstimateInputTokens()
	g, visited := 0, uint64(1)
	var tried, hinted uint64    // deployments tried in this call; found cooling by a shared hint
	var moved llm.Kind          // why the call left its first group
	var lastErr, groupErr error // the last failure; the last in the current group
	var waited time.Duration
	for attempts := 0; ; {
		now := r.now()
		i, earliest := r.pick(ctx, g, tried|hinted, req.Stream != nil, now)
		if i >= 0 && r.sharedCooling(ctx, req, &r.deps[i]) {
			hinted |= 1 << i
			continue
		}
		if i < 0 {
			kind := llm.KindUnavailable // every deployment cooling
			if groupErr != nil {
				kind = llm.KindOf(groupErr)
			}
			if next, ok := r.fallback(g, kind, visited); ok {
				r.reportFallback(ctx, req, next, kind, groupErr)
				g, moved, groupErr = next, kind, nil
				visited |= 1 << next
				continue
			}
			if earliest == 0 {
				if groupErr != nil {
					return nil, groupErr
				}
				return nil, &llm.Error{Kind: llm.KindCircuitOpen, Provider: provider, Message: "no deployment available"}
			}
			wait := time.Duration(earliest) - now
			if r.mayWait(ctx, waited, wait) {
				if llm.Sleep(ctx, wait) != nil {
					return nil, llm.FromContext(ctx, provider)
				}
				waited += wait
				hinted = 0
				continue
			}
			if groupErr != nil {
				return nil, groupErr
			}
			return nil, &llm.Error{Kind: llm.KindCircuitOpen, Provider: provider, RetryAfter: wait,
				Message: "every deployment is cooling down"}
		}
		if attempts == r.cfg.MaxAttempts {
			return nil, cmp.Or(lastErr, error(&llm.Error{Kind: llm.KindCircuitOpen, Provider: provider, Message: "MaxAttempts reached"}))
		}
		attempts++
		resp, sent, err := r.attempt(ctx, req, i, estimate)
		if err == nil {
			return r.answer(resp, attempts, moved), nil
		}
		if ctx.Err() != nil {
			return nil, llm.FromContext(ctx, provider)
		}
		tried |= 1 << i
		if sent {
			return nil, err // output started: no failover, the kind as it is
		}
		kind := llm.KindOf(err)
		if d := r.cooldownFor(err); d > 0 {
			r.cool(ctx, req, &r.deps[i], d, uint32(kind))
		}
		lastErr, groupErr = err, err
		if failsOver(kind) {
			continue
		}
		if kind == llm.KindContextLength || kind == llm.KindContentFilter {
			if next, ok := r.fallback(g, kind, visited); ok {
				r.reportFallback(ctx, req, next, kind, err)
				g, moved, groupErr = next, kind, nil
				visited |= 1 << next
				continue
			}
		}
		return nil, err
	}
}

// failsOver reports whether another deployment of the same group may
// answer where one failed with kind.
func failsOver(kind llm.Kind) bool {
	switch kind {
	case llm.KindRateLimited, llm.KindTimeout, llm.KindUnavailable, llm.KindOverloaded,
		llm.KindAuth, llm.KindCircuitOpen, llm.KindStreamCut:
		return true
	}
	return false
}

// fallback returns the group a call leaves group g for after kind, when
// there is one it has not visited.
func (r *Router) fallback(g int, kind llm.Kind, visited uint64) (int, bool) {
	to, ok := r.fallbacks[g][kind]
	if !ok && failsOver(kind) {
		to, ok = r.fallbacks[g][llm.KindUnavailable]
	}
	if !ok || visited&(1<<to) != 0 {
		return 0, false
	}
	return to, true
}

func (r *Router) reportFallback(ctx context.Context, req *llm.Request, g int, kind llm.Kind, err error) {
	llm.EmitTo(ctx, r.cfg.Observer, llm.Event{Kind: llm.EventFallback, Request: req,
		Source: r.cfg.Groups[g].Name, Reason: kind.String(), Err: err})
}

// mayWait reports whether a call that waited already may wait another
// wait for a cooling deployment: within MaxWait and before its deadline.
func (r *Router) mayWait(ctx context.Context, waited, wait time.Duration) bool {
	if wait <= 0 {
		return true
	}
	if waited+wait > r.cfg.MaxWait {
		return false
	}
	dl, ok := ctx.Deadline()
	return !ok || time.Now().Add(wait).Before(dl)
}

// answer marks an answer that took several attempts, or came from a group
// the call moved to because its own could not serve it (Degraded).
func (r *Router) answer(resp *llm.Response, attempts int, moved llm.Kind) *llm.Response {
	degraded, more := failsOver(moved), attempts > 1 && resp.Attempts < attempts
	if !degraded && !more {
		return resp
	}
	resp = resp.Clone()
	if more {
		resp.Attempts = attempts
	}
	if degraded {
		resp.Degraded, resp.DegradedReason = true, moved
	}
	return resp
}

// attempt sends req to deployment i, on a copy with the deployment's model
// and a watched Stream, and learns from the outcome. sent reports whether
// a chunk reached the caller.
func (r *Router) attempt(ctx context.Context, req *llm.Request, i, estimate int) (resp *llm.Response, sent bool, err error) {
	d := &r.deps[i]
	stream := req.Stream != nil
	areq := req
	if stream || d.Model != "" && d.Model != req.Model {
		areq = req.Clone()
		areq.Model = cmp.Or(d.Model, req.Model)
	}
	actx := ctx
	var timer *time.Timer
	if r.cfg.AttemptTimeout > 0 {
		var cancel context.CancelCauseFunc
		actx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		timer = time.AfterFunc(r.cfg.AttemptTimeout, func() { cancel(errAttemptTimeout) })
		defer timer.Stop()
	}
	t0 := r.now()
	var w *streamWatch
	if stream {
		w = &streamWatch{r: r, t0: t0, timer: timer, orig: req.Stream}
		areq.Stream = w.chunk
	}
	d.inflight.Add(1)
	defer d.inflight.Add(-1)
	d.count(t0, estimate)
	resp, err = d.Client.Generate(actx, areq)
	now := r.now()
	sent = w != nil && w.sent
	reason := "ok"
	if err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(actx), errAttemptTimeout) && llm.KindOf(err) != llm.KindTimeout {
			err = &llm.Error{Kind: llm.KindTimeout, Provider: provider, Message: errAttemptTimeout.Message, Err: err}
		}
		reason = llm.KindOf(err).String()
		var e *llm.Error
		if errors.As(err, &e) {
			d.noteQuota(now, e.Quota)
		}
	} else {
		if r.cfg.Strategy == LowestLatency {
			if stream && sent {
				d.lat[1].record(now, w.ttft)
			} else if !stream {
				d.lat[0].record(now, now-t0)
			}
		}
		d.settle(t0, estimate, resp.Usage.Total())
		if out, reset := d.noteQuota(now, resp.Quota); out {
			r.cool(ctx, req, d, cmp.Or(reset, r.cfg.Cooldown), uint32(llm.KindRateLimited))
		}
	}
	llm.EmitTo(ctx, r.cfg.Observer, llm.Event{Kind: llm.EventRoute, Request: req, Source: d.Name, Reason: reason, Duration: now - t0, Err: err})
	return resp, sent, err
}

// streamWatch passes a stream's chunks to the caller, noting when the
// first one arrived: from then on the call may not fail over, and the
// attempt timeout no longer applies.
type streamWatch struct {
	r     *Router
	t0    time.Duration
	timer *time.Timer
	orig  func(llm.Chunk) error
	sent  bool
	ttft  time.Duration
}

func (w *streamWatch) chunk(ch llm.Chunk) error {
	if !w.sent {
		w.sent, w.ttft = true, w.r.now()-w.t0
		if w.timer != nil {
			w.timer.Stop()
		}
	}
	return w.orig(ch)
}
