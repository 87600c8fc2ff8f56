package queue

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmkit/llmkit/llm"
)

// Config configures a Queue. Zero fields take the defaults named.
type Config struct {
	// Client is the stack the workers call: build it WITHOUT retry and
	// fallback (a resilience.Config with Retry and Fallback nil), since the
	// queue retries. Required to work jobs; nil makes an insert-only Queue
	// (Start fails).
	Client llm.Client
	// Queue names the River queue. Default "llm".
	Queue string
	// Workers is how many jobs one process runs at once. Default 10.
	Workers int
	// MaxAttempts bounds the runs of a job, the first included, before it
	// is discarded. Default 4: the seed's Celery task, max_retries=3.
	MaxAttempts int
	// BaseDelay is the wait after the first failed attempt; it doubles
	// after each one (the seed's countdown 2^n), with ±20% jitter, up to
	// MaxDelay. Defaults 1 s and 1 h.
	BaseDelay, MaxDelay time.Duration
	// MaxSnooze caps the Retry-After a rate-limited or circuit-open job
	// waits; MaxSnoozes bounds how often one job is snoozed before such a
	// failure counts as a failed attempt. Defaults 5 min and 10.
	MaxSnooze  time.Duration
	MaxSnoozes int
	// JobTimeout bounds one attempt. Default 1 min. There is no "none":
	// River's rescuer never rescues a job without a timeout.
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before River's
	// rescuer takes it for a dead worker's and retries it. It must exceed
	// JobTimeout. Default JobTimeout + 1 min.
	RescueAfter time.Duration
	// DrainTimeout is how long Stop lets running jobs finish before it
	// cancels them (they are then retried). Default 30 s.
	DrainTimeout time.Duration
	// PollInterval is how often a worker looks for jobs when no
	// notification arrives (SQLite has none; Postgres uses LISTEN/NOTIFY).
	// Default 1 s.
	PollInterval time.Duration
	// Retention is how long completed and cancelled jobs, with their
	// results, are kept. Default 24 h. Discarded jobs are kept 7 days.
	Retention time.Duration
	// Unique makes Enqueue refuse a request equal (by cache key, tenant
	// included) to a job still pending, scheduled, available, running or
	// retryable: it returns that job instead.
	Unique bool
	// Registerer receives the Prometheus metrics (see metrics.go); nil
	// registers none.
	Registerer prometheus.Registerer
	// TracerProvider and MeterProvider, when either is set, wire River's
	// OpenTelemetry middleware (otelriver): a span per insert and per run
	// of a job, the stack's own spans as children of the run's, and
	// otelriver's river.* metrics. Both nil means none, not the global
	// providers: pass otel.GetTracerProvider() to use those. One left nil
	// beside the other is a no-op one. See tracing.go.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Logger receives River's logs; nil means warnings and errors to
	// slog.Default().
	Logger *slog.Logger
	// Schema is the PostgreSQL schema of River's tables; empty means the
	// search_path. Leave it empty for SQLite.
	Schema string
	// ID names this worker process; empty means a random one.
	ID string
	// Test is for tests only: River's TestOnly mode (no staggered start of
	// maintenance services) and a stubbed clock.
	Test struct {
		Enabled bool
		Now     func() time.Time
	}
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Queue == "" {
		c.Queue = "llm"
	}
	if c.Workers == 0 {
		c.Workers = 10
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 4
	}
	if c.MaxSnoozes == 0 {
		c.MaxSnoozes = 10
	}
	def(&c.BaseDelay, time.Second)
	def(&c.MaxDelay, time.Hour)
	def(&c.MaxSnooze, 5*time.Minute)
	def(&c.JobTimeout, time.Minute)
	def(&c.RescueAfter, c.JobTimeout+time.Minute)
	def(&c.DrainTimeout, 30*time.Second)
	def(&c.PollInterval, time.Second)
	def(&c.Retention, 24*time.Hour)
	switch {
	case c.Workers < 0 || c.MaxAttempts < 0 || c.MaxSnoozes < 0:
		return c, errors.New("queue: Workers, MaxAttempts and MaxSnoozes must not be negative")
	case c.BaseDelay < 0 || c.MaxDelay < c.BaseDelay:
		return c, errors.New("queue: BaseDelay must be positive and at most MaxDelay")
	case c.MaxSnooze < 0 || c.JobTimeout < 0 || c.DrainTimeout < 0 || c.PollInterval < 0 || c.Retention < 0:
		return c, errors.New("queue: MaxSnooze, JobTimeout, DrainTimeout, PollInterval and Retention must be positive")
	case c.RescueAfter <= c.JobTimeout:
		return c, errors.New("queue: RescueAfter must exceed JobTimeout, or live jobs are rescued")
	}
	return c, nil
}
