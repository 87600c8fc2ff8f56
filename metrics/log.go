package metrics

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/llmkit/llmkit/llm"
)

// Log returns a middleware that writes one slog line per call: endpoint,
// model, status, duration, time to first chunk (streams), tokens, attempts,
// retries, cache result, degraded, trace id and, on failure, the error
// kind, HTTP status and redacted error text.
//
// The level follows the outcome: a success logs at WithSuccessLevel
// (default Info); a degraded answer and the caller's own failures
// (bad_request, context_length, content_filter, canceled) at Warn; every
// other failure at Error. When the logger is not enabled for the lowest of
// those levels, the call costs one Enabled check and allocates nothing.
// Prompt text is logged only with WithPromptLogging. A nil logger means
// slog.Default().
func Log(logger *slog.Logger, opts ...LogOption) (llm.Middleware, error) {
	cfg := logConfig{successLevel: slog.LevelInfo, message: "llm call"}
	for _, o := range opts {
		if o != nil {
			o.applyLog(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := &logMW{logger: logger, cfg: cfg}
	return func(next llm.Client) llm.Client { return &logClient{l: l, next: next} }, nil
}

type logMW struct {
	logger *slog.Logger
	cfg    logConfig
}

type logClient struct {
	l    *logMW
	next llm.Client
}

// callState collects what the decorators inside report during one call.
type callState struct {
	scope    llm.ObserverScope // registers the state as an observer without a second allocation
	attempts atomic.Int32
	retries  atomic.Int32
	cache    atomic.Uint32 // the last cache EventKind
	rejected atomic.Pointer[string]
}

// Observe counts one event.
func (s *callState) Observe(_ context.Context, ev llm.Event) {
	switch ev.Kind {
	case llm.EventAttempt:
		s.attempts.Add(1)
	case llm.EventRetry:
		s.retries.Add(1)
	case llm.EventCacheHit, llm.EventCacheMiss, llm.EventCacheStale, llm.EventCacheCoalesced, llm.EventCacheError:
		s.cache.Store(uint32(ev.Kind))
	case llm.EventRejected:
		r := ev.Reason
		s.rejected.Store(&r)
	}
}

// Generate calls next and logs the outcome.
func (c *logClient) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	logger := c.l.logger
	if logger == nil {
		logger = slog.Default()
	}
	// Error is the highest level the middleware logs at. A handler's
	// Enabled is monotonic in the level (every slog handler with a level
	// threshold is), so when Error is off no line can be written: one
	// check decides.
	if !logger.Handler().Enabled(ctx, slog.LevelError) {
		return c.next.Generate(ctx, req)
	}
	return c.l.generate(ctx, logger, req, c.next)
}

func (l *logMW) generate(ctx context.Context, logger *slog.Logger, req *llm.Request, next llm.Client) (resp *llm.Response, err error) {
	start := now()
	st := &callState{}
	callCtx := st.scope.Bind(ctx, st)
	var timer *streamTimer
	callReq := req
	if req.Stream != nil {
		callReq, timer = timeStream(req, start)
	}
	finished := false
	defer func() {
		if !finished && logger.Enabled(ctx, slog.LevelError) {
			logger.LogAttrs(ctx, slog.LevelError, l.cfg.message,
				slog.String("endpoint", llm.Redact(req.Endpoint)), slog.String("model", llm.Redact(req.Model)),
				slog.String("status", "panic"), slog.Duration("duration", now()-start))
		}
	}()
	resp, err = next.Generate(callCtx, callReq)
	finished = true
	d := now() - start

	level := l.levelFor(resp, err)
	if !logger.Enabled(ctx, level) {
		return resp, err
	}
	a := make([]slog.Attr, 0, 24)
	a = append(a,
		slog.String("endpoint", llm.Redact(req.Endpoint)),
		slog.String("model", llm.Redact(req.Model)),
		slog.String("status", statusNames[statusIndex(err)]),
		slog.Duration("duration", d))
	if timer != nil && timer.seen {
		a = append(a, slog.Duration("ttft", timer.ttft))
	}
	attempts := int(st.attempts.Load())
	if resp != nil && resp.Attempts > attempts {
		attempts = resp.Attempts
	}
	if attempts > 0 {
		a = append(a, slog.Int("attempts", attempts))
	}
	if n := st.retries.Load(); n > 0 {
		a = append(a, slog.Int("retries", int(n)))
	}
	if k := llm.EventKind(st.cache.Load()); k != 0 {
		a = append(a, slog.String("cache", cacheResult(k)))
	}
	if r := st.rejected.Load(); r != nil {
		a = append(a, slog.String("rejected", *r))
	}
	if err == nil {
		a = append(a,
			slog.String("response_model", llm.Redact(resp.Model)),
			slog.Int("input_tokens", resp.Usage.InputTokens),
			slog.Int("output_tokens", resp.Usage.OutputTokens))
		if resp.Usage.CachedInputTokens > 0 {
			a = append(a, slog.Int("cached_input_tokens", resp.Usage.CachedInputTokens))
		}
		if resp.FinishReason != "" {
			a = append(a, slog.String("finish_reason", string(resp.FinishReason)))
		}
		a = append(a, slog.Bool("cached", resp.Cached), slog.Bool("degraded", resp.Degraded))
		if resp.Degraded {
			a = append(a, slog.String("degraded_reason", resp.DegradedReason.String()))
		}
	} else {
		a = append(a, slog.String("error", llm.Redact(err.Error())))
		var e *llm.Error
		if asError(err, &e) && e.Status != 0 {
			a = append(a, slog.Int("http_status", e.Status))
		}
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		a = append(a, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if l.cfg.promptMax > 0 {
		a = append(a, slog.String("prompt", safeText(req.PromptText(), l.cfg.promptMax)))
	}
	logger.LogAttrs(ctx, level, l.cfg.message, a...)
	return resp, err
}

// levelFor maps an outcome to its level.
func (l *logMW) levelFor(resp *llm.Response, err error) slog.Level {
	if err == nil {
		if resp.Degraded {
			return slog.LevelWarn
		}
		return l.cfg.successLevel
	}
	switch llm.KindOf(err) {
	case llm.KindBadRequest, llm.KindContextLength, llm.KindContentFilter, llm.KindCanceled:
		return slog.LevelWarn
	}
	return slog.LevelError
}
