package metrics

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/llmkit/llmkit/llm"
)

// Log returns a middleware that writes one slog line per call (see
// docs/metrics.md for its attributes) at a level that follows the outcome:
// WithSuccessLevel (default Info) for a success; Warn for a degraded answer
// or the caller's own failure (bad_request, context_length,
// content_filter, canceled); Error otherwise. Attempts, retries and the
// cache result come from an observer registered on each call's context.
// With Error disabled a call allocates nothing. A nil logger means
// slog.Default().
func Log(logger *slog.Logger, opts ...Option) (llm.Middleware, error) {
	cfg, err := newConfig(forLog, opts)
	if err != nil {
		return nil, err
	}
	return func(next llm.Client) llm.Client { return &logClient{logger: logger, cfg: cfg, next: next} }, nil
}

type logClient struct {
	logger *slog.Logger
	cfg    *config
	next   llm.Client
}

// callState collects what the decorators inside report during one call.
type callState struct {
	attempts atomic.Int32
	retries  atomic.Int32
	cache    atomic.Int32 // 1 + the cacheResults index of the last lookup
	bypass   atomic.Int32 // 1 + the bypassReasons index of the last bypass
	rejected atomic.Pointer[string]
}

// Observe counts one event.
func (s *callState) Observe(_ context.Context, ev llm.Event) {
	switch ev.Kind {
	case llm.EventAttempt:
		s.attempts.Add(1)
	case llm.EventRetry:
		s.retries.Add(1)
	case llm.EventRejected:
		r := ev.Reason
		s.rejected.Store(&r)
	default:
		if i := cacheResult(ev); i >= 0 {
			s.cache.Store(int32(i) + 1)
			if i == cacheBypass {
				s.bypass.Store(int32(bypassReason(ev.Reason)) + 1)
			}
		}
	}
}

// Generate calls next and logs the outcome.
func (c *logClient) Generate(ctx context.Context, req *llm.Request) (resp *llm.Response, err error) {
	logger := cmp.Or(c.logger, slog.Default())
	// Error is the highest level the middleware logs at, and a handler's
	// Enabled is monotonic in the level: when Error is off, no line can be
	// written.
	if logger.Handler().Enabled(ctx, slog.LevelError) {
		resp, err = c.generate(ctx, logger, req)
	} else {
		resp, err = c.next.Generate(ctx, req)
	}
	return resp, llm.RedactError(err)
}

func (c *logClient) generate(ctx context.Context, logger *slog.Logger, req *llm.Request) (resp *llm.Response, err error) {
	start := now()
	st := &callState{}
	callReq := req
	var timer *streamTimer
	if req.Stream != nil {
		callReq, timer = timeStream(req, start)
	}
	finished := false
	defer func() {
		if !finished && logger.Enabled(ctx, slog.LevelError) {
			logger.LogAttrs(ctx, slog.LevelError, c.cfg.message,
				slog.String("endpoint", llm.Redact(req.Endpoint)), slog.String("model", llm.Redact(req.Model)),
				slog.String("status", "panic"), slog.Duration("duration", now()-start))
		}
	}()
	resp, err = c.next.Generate(llm.WithObserver(ctx, st), callReq)
	finished = true
	d := now() - start

	level := c.levelFor(resp, err)
	if !logger.Enabled(ctx, level) {
		return resp, err
	}
	a := make([]slog.Attr, 0, 24)
	a = append(a, slog.String("endpoint", llm.Redact(req.Endpoint)), slog.String("model", llm.Redact(req.Model)),
		slog.String("status", statusNames[statusOf(resp, err)]), slog.Duration("duration", d))
	if timer != nil && timer.seen {
		a = append(a, slog.Duration("ttft", timer.ttft))
	}
	n := int(st.attempts.Load())
	if resp != nil {
		n = max(n, resp.Attempts)
	}
	if n > 0 {
		a = append(a, slog.Int("attempts", n))
	}
	if n := st.retries.Load(); n > 0 {
		a = append(a, slog.Int("retries", int(n)))
	}
	if i := st.cache.Load(); i > 0 {
		a = append(a, slog.String("cache", cacheResults[i-1]))
		if j := st.bypass.Load(); j > 0 && int(i-1) == cacheBypass {
			a = append(a, slog.String("cache_bypass", bypassReasons[j-1]))
		}
	}
	if r := st.rejected.Load(); r != nil {
		a = append(a, slog.String("rejected", llm.Redact(*r)))
	}
	if err != nil {
		a = append(a, slog.String("error", llm.Redact(err.Error())))
		if e := (*llm.Error)(nil); errors.As(err, &e) && e.Status != 0 {
			a = append(a, slog.Int("http_status", e.Status))
		}
	} else {
		u := resp.Usage
		a = append(a, slog.String("response_model", llm.Redact(resp.Model)), slog.Int("input_tokens", u.InputTokens), slog.Int("output_tokens", u.OutputTokens))
		if u.CachedInputTokens > 0 {
			a = append(a, slog.Int("cached_input_tokens", u.CachedInputTokens))
		}
		if resp.FinishReason != "" {
			a = append(a, slog.String("finish_reason", string(resp.FinishReason)))
		}
		a = append(a, slog.Bool("cached", resp.Cached), slog.Bool("degraded", resp.Degraded))
		if resp.Degraded {
			a = append(a, slog.String("degraded_reason", resp.DegradedReason.String()))
		}
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		a = append(a, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if c.cfg.promptMax > 0 {
		a = append(a, slog.String("prompt", safeText(req.PromptText(), c.cfg.promptMax)))
	}
	logger.LogAttrs(ctx, level, c.cfg.message, a...)
	return resp, err
}

// levelFor maps an outcome to its level.
func (c *logClient) levelFor(resp *llm.Response, err error) slog.Level {
	if err == nil {
		if resp.Degraded {
			return slog.LevelWarn
		}
		return c.cfg.successLevel
	}
	switch llm.KindOf(err) {
	case llm.KindBadRequest, llm.KindContextLength, llm.KindContentFilter, llm.KindCanceled:
		return slog.LevelWarn
	}
	return slog.LevelError
}
