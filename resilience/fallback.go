package resilience

import (
	"github.com/llmkit/llmkit/llm"
)

// fallback walks the degradation chain after err: other clients, other
// models, the stale cache entry, the static message. Nothing is replaced
// once a chunk reached the caller.
func (c *client) fallback(st *call, err error) (*llm.Response, error) {
	fb := c.fb
	if st.tr.delivered() || !fb.Trigger(err) {
		return nil, err
	}
	reason := llm.KindOf(err)
	try := func(cl llm.Client, req *llm.Request) (*llm.Response, bool, error) {
		var tr *tracker
		if req.Stream != nil {
			tr = &tracker{orig: req.Stream}
			req = req.Clone()
			req.Stream = tr.onChunk
		}
		resp, ferr := cl.Generate(st.ctx, req)
		if ferr == nil {
			return resp, true, nil
		}
		if tr.delivered() {
			return nil, false, ferr // the caller saw part of this answer
		}
		return nil, false, nil
	}
	for _, cl := range fb.Clients {
		resp, ok, ferr := try(cl, st.orig)
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			return st.degraded(resp, reason, "client", err, max(resp.Attempts, 1)), nil
		}
		if st.ctx.Err() != nil {
			return nil, st.final(err)
		}
	}
	for _, m := range fb.Models {
		req := st.orig.Clone()
		req.Model = m
		resp, ok, ferr := try(c.next, req)
		if ferr != nil {
			return nil, ferr
		}
		if ok {
			return st.degraded(resp, reason, "client", err, 1), nil
		}
		if st.ctx.Err() != nil {
			return nil, st.final(err)
		}
	}
	if fb.Stale != nil {
		if resp, ok := fb.Stale(st.ctx, st.orig); ok && resp != nil {
			if serr := st.replay(resp.Text); serr != nil {
				return nil, serr
			}
			return st.degraded(resp, reason, "stale", err, 0), nil
		}
	}
	if fb.NoStatic {
		return nil, err
	}
	msg := fb.ErrorMessage
	if reason == llm.KindTimeout {
		msg = fb.TimeoutMessage
	}
	if serr := st.replay(msg); serr != nil {
		return nil, serr
	}
	resp := &llm.Response{Text: msg, Model: st.orig.Model, FinishReason: llm.FinishStop}
	return st.degraded(resp, reason, "static", err, 0), nil
}

// replay delivers a whole fallback answer to a streaming caller as one chunk.
func (st *call) replay(text string) error {
	if st.orig.Stream == nil {
		return nil
	}
	return st.orig.Stream(llm.Chunk{Index: 0, Text: text})
}

func (st *call) degraded(resp *llm.Response, reason llm.Kind, source string, err error, extra int) *llm.Response {
	r := resp.Clone()
	r.Degraded = true
	r.DegradedReason = reason
	r.Attempts = st.attempts + extra
	st.c.obs.Emit(st.ctx, llm.Event{Kind: llm.EventFallback, Request: st.orig, Reason: reason.String(), Source: source, Err: err})
	return r
}
