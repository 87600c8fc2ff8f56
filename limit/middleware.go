package limit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// reservation is what one admitted call holds.
type reservation struct {
	key     string
	id      int64
	toks    int  // tokens reserved; 0 when the call has no TPM limit
	inStore bool // reserved in Redis, so settled there
}

// Middleware returns the limiter as a middleware. A call over the limit
// fails with KindRateLimited and a RetryAfter; an admitted call's token
// reservation is settled to its real usage when it ends, however it ends.
func (l *Limiter) Middleware() llm.Middleware {
	return func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (resp *llm.Response, err error) {
			if ctx.Err() != nil {
				return nil, llm.FromContext(ctx, provider)
			}
			rpm, tpm := l.limits(req)
			if rpm == 0 && tpm == 0 {
				return next.Generate(ctx, req)
			}
			res, err := l.admit(ctx, req, rpm, tpm)
			if err != nil {
				return nil, err
			}
			call, m := meter(req)
			finished := false
			defer func() {
				used := res.toks // a panic below keeps the whole reservation
				if finished {
					used = usedTokens(req, resp, err, m)
				}
				l.settle(ctx, req, res, used)
			}()
			resp, err = next.Generate(ctx, call)
			finished = true
			return resp, err
		})
	}
}

// Close gives back the unused permits of the leases this process holds.
// Without leasing it does nothing. The caller owns the Redis client.
func (l *Limiter) Close(ctx context.Context) error {
	if l.leases == nil {
		return nil
	}
	return l.leases.close(ctx, l.store)
}

// admit decides one call: on Redis, else in the degraded mode.
func (l *Limiter) admit(ctx context.Context, req *llm.Request, rpm, tpm int) (reservation, error) {
	key := l.storeKey(l.scope(req))
	res := reservation{key: key}
	if tpm > 0 {
		res.toks = min(l.reserveTokens(req), tpm) // a larger call waits for an empty window
	}
	var d decision
	var err error
	if l.leases != nil && tpm == 0 {
		d, err = l.leases.take(ctx, l.store, key, rpm)
	} else {
		res.id = newID()
		d, err = l.store.reserve(ctx, key, res.id, 1, res.toks, rpm, tpm, false)
		res.inStore = err == nil && d.admitted
	}
	switch {
	case err != nil:
		return l.degraded(ctx, req, res, rpm, tpm, err)
	case !d.admitted:
		e := &llm.Error{Kind: llm.KindRateLimited, Provider: provider, Message: "limit " + l.cfg.Name + " reached", RetryAfter: d.retryAfter}
		l.emit(ctx, llm.Event{Kind: llm.EventLimit, Request: req, Source: l.cfg.Name, Reason: "rejected", Err: e})
		return res, e
	}
	l.emit(ctx, llm.Event{Kind: llm.EventLimit, Request: req, Source: l.cfg.Name, Reason: "allowed", Tokens: res.toks})
	return res, nil
}

// degraded decides a call Redis could not decide, as OnRedisError says,
// and reports it with the mode as Reason.
func (l *Limiter) degraded(ctx context.Context, req *llm.Request, res reservation, rpm, tpm int, storeErr error) (reservation, error) {
	ev := llm.Event{Kind: llm.EventLimit, Request: req, Source: l.cfg.Name, Reason: l.cfg.OnRedisError.String(), Err: storeErr}
	var refusal error
	switch l.cfg.OnRedisError {
	case FailClosed:
		refusal = &llm.Error{Kind: llm.KindRateLimited, Provider: provider, Message: "limit store unavailable, failing closed",
			RetryAfter: time.Second, Err: storeErr}
	case LocalShare:
		if !l.local.take(res.key, rpm, tpm, res.toks) {
			retry := l.window
			if s := l.local.share(rpm); s > 0 {
				retry = l.window / time.Duration(s)
			}
			refusal = &llm.Error{Kind: llm.KindRateLimited, Provider: provider, Message: "local share of limit " + l.cfg.Name + " reached",
				RetryAfter: retry, Err: storeErr}
			ev.Err = refusal // a local-share refusal: its cause is the store's error
		}
	}
	if refusal != nil {
		l.emit(ctx, ev)
		return reservation{}, refusal
	}
	ev.Tokens = res.toks
	l.emit(ctx, ev)
	return reservation{key: res.key, toks: res.toks}, nil
}

// settle reconciles a call's token reservation with what it used: the
// store keeps the used amount, so the rest is free again (or, when the
// call used more, later calls wait for it). The store is called even when
// ctx ended, bounded by Timeout.
func (l *Limiter) settle(ctx context.Context, req *llm.Request, res reservation, used int) {
	if res.toks == 0 {
		return
	}
	var err error
	if res.inStore && used != res.toks {
		err = l.store.settle(ctx, res.key, res.id, 1, used)
	}
	l.emit(ctx, llm.Event{Kind: llm.EventLimitSettle, Request: req, Source: l.cfg.Name, Tokens: used, Err: err})
}

func (l *Limiter) emit(ctx context.Context, ev llm.Event) { llm.EmitTo(ctx, l.cfg.Observer, ev) }

// storeKey returns the Redis key of a scope: prefix, name, and the
// scope's SHA-256 in a hash tag, so that a cluster keeps a scope's keys
// in one slot. No raw scope reaches Redis.
func (l *Limiter) storeKey(scope string) string {
	sum := sha256.Sum256([]byte(scope))
	var buf [128]byte // on the stack for the usual prefix and name
	b := append(append(append(buf[:0], l.cfg.Prefix...), l.cfg.Name...), ":{"...)
	b = hex.AppendEncode(b, sum[:16])
	return string(append(b, '}'))
}

// newID returns a reservation id, unique with overwhelming odds, never 0
// (which is no reservation). Redis keeps it in decimal.
func newID() int64 { return rand.Int64N(math.MaxInt64) + 1 }

// streamMeter counts the output tokens a streamed call delivered, for a
// stream cut before its usage was reported.
type streamMeter struct{ tokens atomic.Int64 }

// meter returns req with its Stream counted, on a copy, or req itself and
// nil when it does not stream.
func meter(req *llm.Request) (*llm.Request, *streamMeter) {
	if req.Stream == nil {
		return req, nil
	}
	m, orig, c := &streamMeter{}, req.Stream, req.Clone()
	c.Stream = func(ch llm.Chunk) error {
		m.tokens.Add(int64(textTokens(ch.Text)))
		return orig(ch)
	}
	return c, m
}

// textTokens estimates the tokens of a text as llm estimates a prompt's.
func textTokens(s string) int {
	r := llm.Request{System: s}
	return r.EstimateInputTokens()
}

// usedTokens is what a finished call used: the provider's Usage when it
// answered (estimated from the text when it reported none); after an
// error, the input and whatever output was streamed when the provider
// may have worked on it (a cancellation, a timeout, a cut stream, an
// unclassified failure), else nothing (it refused the call).
func usedTokens(req *llm.Request, resp *llm.Response, err error, m *streamMeter) int {
	input := req.EstimateInputTokens()
	if err == nil && resp != nil {
		if u := resp.Usage.Total(); u > 0 {
			return u
		}
		return input + textTokens(resp.Text)
	}
	if m != nil {
		if out := int(m.tokens.Load()); out > 0 {
			return input + out
		}
	}
	switch llm.KindOf(err) {
	case llm.KindCanceled, llm.KindTimeout, llm.KindStreamCut, llm.KindUnknown:
		return input
	}
	return 0
}
