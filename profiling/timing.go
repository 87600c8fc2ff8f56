package profiling

import (
	"context"
	"log/slog"
	"time"

	oteltrace "go.opentelemetry.io/otel/trace"
)

// TimingMessage is the message of the slog line Time writes.
const TimingMessage = "timing"

// TimeOption configures TimeWith and NewTimer.
type TimeOption interface {
	applyTime(*Timer)
}

type timeOptionFunc func(*Timer)

func (f timeOptionFunc) applyTime(t *Timer) { f(t) }

// Logger sets the logger the timing line goes to. Default slog.Default().
func Logger(l *slog.Logger) TimeOption {
	return timeOptionFunc(func(t *Timer) {
		if l != nil {
			t.logger = l
		}
	})
}

// Level sets the level of the timing line. Default slog.LevelInfo.
func Level(l slog.Level) TimeOption {
	return timeOptionFunc(func(t *Timer) { t.level = l })
}

// Histogram also observes each duration, in seconds, on o: a prometheus
// Histogram or Summary, or one child of a vector resolved once with
// WithLabelValues. The observation happens whether or not the log level is
// enabled.
func Histogram(o Observer) TimeOption {
	return timeOptionFunc(func(t *Timer) { t.observer = o })
}

// Timer times named blocks of code outside a Client: it writes one slog
// line with the name, the duration and the OpenTelemetry trace id when the
// context carries one, and optionally observes a histogram. Build it once
// with NewTimer and call Start per block; it is safe for concurrent use.
type Timer struct {
	name     string
	logger   *slog.Logger
	level    slog.Level
	observer Observer
}

// NewTimer returns a Timer for the block called name.
func NewTimer(name string, opts ...TimeOption) *Timer {
	t := &Timer{name: name, level: slog.LevelInfo}
	for _, o := range opts {
		if o != nil {
			o.applyTime(t)
		}
	}
	return t
}

func noop() {}

// Start starts timing and returns the function that stops it; use it as
//
//	defer timer.Start(ctx)()
//
// When the log level is disabled and there is no histogram, Start does not
// read the clock and returns a shared no-op: no allocation.
func (t *Timer) Start(ctx context.Context) func() {
	logger := t.logger
	if logger == nil {
		logger = slog.Default()
	}
	logging := logger.Enabled(ctx, t.level)
	if !logging && t.observer == nil {
		return noop
	}
	start := time.Now()
	return func() {
		d := time.Since(start)
		if t.observer != nil {
			t.observer.Observe(d.Seconds())
		}
		if !logging {
			return
		}
		if sc := oteltrace.SpanContextFromContext(ctx); sc.HasTraceID() {
			logger.LogAttrs(ctx, t.level, TimingMessage, slog.String("name", t.name),
				slog.Duration("duration", d), slog.String("trace_id", sc.TraceID().String()))
			return
		}
		logger.LogAttrs(ctx, t.level, TimingMessage, slog.String("name", t.name), slog.Duration("duration", d))
	}
}

// Time times the rest of the calling function at info level on logger
// (slog.Default() when nil):
//
//	defer profiling.Time(ctx, logger, "rerank")()
//
// It writes one line, message "timing", with the attributes name, duration
// and trace_id (when ctx carries an OpenTelemetry span). It costs one
// Enabled check and no allocation when the level is disabled.
func Time(ctx context.Context, logger *slog.Logger, name string) func() {
	if logger == nil {
		logger = slog.Default()
	}
	if !logger.Enabled(ctx, slog.LevelInfo) {
		return noop
	}
	t := Timer{name: name, logger: logger, level: slog.LevelInfo}
	return t.Start(ctx)
}

// TimeWith is Time with options (Logger, Level, Histogram). It builds its
// configuration on every call; on a hot path build a Timer once instead.
func TimeWith(ctx context.Context, name string, opts ...TimeOption) func() {
	return NewTimer(name, opts...).Start(ctx)
}

// Observer is the one method of a Prometheus histogram or summary (and
// prometheus.Observer) that Histogram needs; declaring it here keeps the
// package free of the client_golang dependency.
type Observer interface {
	Observe(float64)
}
