package resilience

import (
	"context"
	"slices"

	"github.com/llmkit/llmkit/llm"
)

// FallbackConfig is the ordered degradation chain: Clients, then Models,
// then Stale, then the static message for the cause. The answer it gives is
// marked Degraded with DegradedReason set to the triggering error's kind.
type FallbackConfig struct {
	// Clients are tried in order with the caller's request.
	Clients []llm.Client
	// Models are tried in order, one attempt each, through the wrapped
	// client (inside New, past the primary model's retries and breaker).
	Models []string
	// Stale returns an expired answer within its grace period (the cache's).
	Stale          func(ctx context.Context, req *llm.Request) (*llm.Response, bool)
	ErrorMessage   string           // the static answer to a failure; default DefaultErrorMessage
	TimeoutMessage string           // the static answer to a timeout; default DefaultTimeoutMessage
	NoStatic       bool             // no static answer: the error is returned
	Trigger        func(error) bool // which errors fall back; default DefaultTrigger
	Observer       llm.Observer     // hears each fallback answer (EventFallback)
}

// The default static messages.
const (
	DefaultErrorMessage   = "The service is temporarily unavailable, please try again later."
	DefaultTimeoutMessage = "The request took too long; please simplify your prompt."
)

// DefaultTrigger is the default FallbackConfig.Trigger: retryable errors,
// circuit_open and timeouts, never bad_request (nor auth, context length,
// content filter or the caller's cancellation).
func DefaultTrigger(err error) bool {
	switch llm.KindOf(err) {
	case llm.KindBadRequest, llm.KindCanceled:
		return false
	case llm.KindCircuitOpen, llm.KindTimeout:
		return true
	}
	return llm.Retryable(err)
}

// Fallback returns the degradation chain alone. A nil cfg uses the static
// messages only. Nothing is replaced once a chunk reached the caller.
func Fallback(cfg *FallbackConfig) (llm.Middleware, error) {
	if cfg == nil {
		cfg = &FallbackConfig{}
	}
	f, err := newFallback(*cfg, cfg.Observer)
	if err != nil {
		return nil, err
	}
	return func(next llm.Client) llm.Client { return f.wrap(next, next) }, nil
}

type fallback struct{ FallbackConfig }

func newFallback(c FallbackConfig, obs llm.Observer) (*fallback, error) {
	setDefault(&c.ErrorMessage, DefaultErrorMessage)
	setDefault(&c.TimeoutMessage, DefaultTimeoutMessage)
	if c.Trigger == nil {
		c.Trigger = DefaultTrigger
	}
	c.Clients, c.Models, c.Observer = slices.Clone(c.Clients), slices.Clone(c.Models), obs
	if slices.Contains(c.Clients, nil) {
		return nil, errf("Fallback.Clients holds a nil client")
	}
	return &fallback{c}, nil
}

// wrap answers from primary, or walks the chain after its failure; model
// fallbacks go through models.
func (f *fallback) wrap(primary, models llm.Client) llm.Client {
	return policyFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		pctx, t := withTally(ctx)
		preq, tr := track(req)
		resp, err := primary.Generate(pctx, preq)
		if err == nil || tr.delivered() || !f.Trigger(err) {
			return resp, err
		}
		return f.degrade(ctx, int(t.n.Load()), req, models, err)
	})
}

// degrade walks the chain after err: other clients, other models, the
// stale answer, the static message. attempts is what the primary made.
func (f *fallback) degrade(ctx context.Context, attempts int, req *llm.Request, models llm.Client, err error) (*llm.Response, error) {
	reason := llm.KindOf(err)
	// answer marks resp degraded; replay first streams it as one chunk.
	answer := func(resp *llm.Response, source string, extra int, replay bool) (*llm.Response, error) {
		if replay && req.Stream != nil {
			if serr := req.Stream(llm.Chunk{Text: resp.Text}); serr != nil {
				return nil, serr
			}
		}
		r := resp.Clone()
		r.Degraded, r.DegradedReason, r.Attempts = true, reason, attempts+extra
		llm.EmitTo(ctx, f.Observer, llm.Event{Kind: llm.EventFallback, Request: req, Reason: reason.String(), Source: source, Err: err})
		return r, nil
	}
	for i := range len(f.Clients) + len(f.Models) {
		cl, creq, extra := models, req, 1
		if i < len(f.Clients) {
			cl = f.Clients[i]
		} else {
			creq = req.Clone()
			creq.Model = f.Models[i-len(f.Clients)]
		}
		creq, tr := track(creq)
		resp, ferr := cl.Generate(ctx, creq)
		switch {
		case ferr == nil && i < len(f.Clients):
			extra = max(resp.Attempts, 1)
			fallthrough
		case ferr == nil:
			return answer(resp, "client", extra, false)
		case tr.delivered():
			return nil, ferr // the caller saw part of this answer
		case ctx.Err() != nil:
			return nil, final(ctx, err, false)
		}
	}
	if f.Stale != nil {
		if resp, ok := f.Stale(ctx, req); ok && resp != nil {
			return answer(resp, "stale", 0, true)
		}
	}
	if f.NoStatic {
		return nil, err
	}
	msg := f.ErrorMessage
	if reason == llm.KindTimeout {
		msg = f.TimeoutMessage
	}
	return answer(&llm.Response{Text: msg, Model: req.Model, FinishReason: llm.FinishStop}, "static", 0, true)
}
