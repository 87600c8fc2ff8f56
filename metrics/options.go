package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// PromOption configures Prometheus. Options are sealed; build them with the
// With... functions. A nil PromOption is ignored.
type PromOption interface{ applyProm(*promConfig) }

// OTelOption configures OTel. A nil OTelOption is ignored.
type OTelOption interface{ applyOTel(*otelConfig) }

// LogOption configures Log. A nil LogOption is ignored.
type LogOption interface{ applyLog(*logConfig) }

// HealthOption configures NewHealth. A nil HealthOption is ignored.
type HealthOption interface{ applyHealth(*healthConfig) }

// SharedOption configures both Prometheus and OTel, so one model allow-list
// can bound the labels of both.
type SharedOption interface {
	PromOption
	OTelOption
}

type promOptionFunc func(*promConfig)

func (f promOptionFunc) applyProm(c *promConfig) { f(c) }

type otelOptionFunc func(*otelConfig)

func (f otelOptionFunc) applyOTel(c *otelConfig) { f(c) }

type logOptionFunc func(*logConfig)

func (f logOptionFunc) applyLog(c *logConfig) { f(c) }

type healthOptionFunc func(*healthConfig)

func (f healthOptionFunc) applyHealth(c *healthConfig) { f(c) }

// Defaults for the bounded label sets.
const (
	DefaultMaxModels    = 10
	DefaultMaxEndpoints = 10
	maxBreakers         = 16
)

// labelsConfig is what Prometheus and OTel share.
type labelsConfig struct {
	models    []string
	maxModels int
}

type sharedOption func(*labelsConfig)

func (f sharedOption) applyProm(c *promConfig) { f(&c.labelsConfig) }
func (f sharedOption) applyOTel(c *otelConfig) { f(&c.labelsConfig) }

// WithModels sets the allow-list of model names used as label (and OTel
// metric attribute) values; every other model becomes "other". Without it,
// the first WithMaxModels distinct models seen are admitted.
func WithModels(models ...string) SharedOption {
	models = append([]string(nil), models...)
	return sharedOption(func(c *labelsConfig) { c.models = models })
}

// WithMaxModels bounds how many distinct models are admitted when no
// allow-list is set. Default DefaultMaxModels.
func WithMaxModels(n int) SharedOption {
	return sharedOption(func(c *labelsConfig) { c.maxModels = n })
}

func (c *labelsConfig) validate() error {
	if c.maxModels < 1 {
		return fmt.Errorf("metrics: WithMaxModels(%d): want at least 1", c.maxModels)
	}
	for _, m := range c.models {
		if m == "" || m == Other {
			return fmt.Errorf("metrics: WithModels: %q is not a valid model name", m)
		}
	}
	return nil
}

// ---- Prometheus options.

type promConfig struct {
	labelsConfig
	namespace    string
	endpoints    []string
	maxEndpoints int
	durBuckets   []float64
	ttftBuckets  []float64
	nativeFactor float64
	exemplars    bool
	events       bool
}

// DefaultDurationBuckets are llm_request_duration_seconds's buckets: from
// 100 ms to two minutes, because model calls take seconds, not
// milliseconds.
var DefaultDurationBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120}

// DefaultTTFTBuckets are llm_time_to_first_token_seconds's buckets.
var DefaultTTFTBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30}

// WithNamespace sets the metric name prefix. Default "llm".
func WithNamespace(ns string) PromOption {
	return promOptionFunc(func(c *promConfig) { c.namespace = ns })
}

// WithEndpoints sets the allow-list of endpoint label values; any other
// endpoint becomes "other". Without it, the first WithMaxEndpoints distinct
// endpoints seen are admitted.
func WithEndpoints(endpoints ...string) PromOption {
	endpoints = append([]string(nil), endpoints...)
	return promOptionFunc(func(c *promConfig) { c.endpoints = endpoints })
}

// WithMaxEndpoints bounds how many distinct endpoints are admitted when no
// allow-list is set. Default DefaultMaxEndpoints.
func WithMaxEndpoints(n int) PromOption {
	return promOptionFunc(func(c *promConfig) { c.maxEndpoints = n })
}

// WithDurationBuckets replaces DefaultDurationBuckets.
func WithDurationBuckets(b ...float64) PromOption {
	b = append([]float64(nil), b...)
	return promOptionFunc(func(c *promConfig) { c.durBuckets = b })
}

// WithTTFTBuckets replaces DefaultTTFTBuckets.
func WithTTFTBuckets(b ...float64) PromOption {
	b = append([]float64(nil), b...)
	return promOptionFunc(func(c *promConfig) { c.ttftBuckets = b })
}

// WithNativeHistograms makes both histograms native (sparse) histograms as
// well as classic ones, with the given bucket growth factor (1.1 is a
// common choice; it must be > 1). Scrapers that do not negotiate native
// histograms keep seeing the classic buckets.
func WithNativeHistograms(factor float64) PromOption {
	return promOptionFunc(func(c *promConfig) { c.nativeFactor = factor })
}

// WithExemplars turns trace-id exemplars on or off. Default on: when the
// call's context carries a valid span, the duration observation and the
// request count carry trace_id as an exemplar.
func WithExemplars(on bool) PromOption {
	return promOptionFunc(func(c *promConfig) { c.exemplars = on })
}

// WithEvents turns the subscription to llm events on or off. Default on,
// so that retries, cache results, breaker changes, fallbacks, limiter
// rejections and per-attempt calls are counted. The middleware subscribes
// once, when it wraps its client (llm.Subscribe); over a chain that
// refuses (one ending in a ClientFunc) each call registers the observer
// with llm.WithObserver instead, at one allocation per call. Turning
// events off saves that allocation where no decorator inside emits.
func WithEvents(on bool) PromOption {
	return promOptionFunc(func(c *promConfig) { c.events = on })
}

var nameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (c *promConfig) validate() error {
	if err := c.labelsConfig.validate(); err != nil {
		return err
	}
	if !nameRE.MatchString(c.namespace) {
		return fmt.Errorf("metrics: WithNamespace(%q): not a valid metric name prefix", c.namespace)
	}
	if c.maxEndpoints < 1 {
		return fmt.Errorf("metrics: WithMaxEndpoints(%d): want at least 1", c.maxEndpoints)
	}
	for _, e := range c.endpoints {
		if e == Other {
			return fmt.Errorf("metrics: WithEndpoints: %q is reserved", e)
		}
	}
	for _, b := range [][]float64{c.durBuckets, c.ttftBuckets} {
		if len(b) == 0 {
			return errors.New("metrics: histogram buckets must not be empty")
		}
		if slices.ContainsFunc(b, math.IsNaN) {
			return fmt.Errorf("metrics: histogram buckets %v contain NaN", b)
		}
		for i := 1; i < len(b); i++ {
			if b[i] <= b[i-1] {
				return fmt.Errorf("metrics: histogram buckets %v are not strictly increasing", b)
			}
		}
	}
	if c.nativeFactor != 0 && c.nativeFactor <= 1 {
		return fmt.Errorf("metrics: WithNativeHistograms(%v): the factor must be > 1", c.nativeFactor)
	}
	return nil
}

// ---- OTel options.

type otelConfig struct {
	labelsConfig
	tp         trace.TracerProvider
	mp         metric.MeterProvider
	provider   string
	captureMax int
	tpExplicit bool
	mpExplicit bool
}

// WithTracerProvider sets the TracerProvider. Default
// otel.GetTracerProvider(), looked up when the call starts so that a
// provider installed after construction is used. A nil tp is ignored.
func WithTracerProvider(tp trace.TracerProvider) OTelOption {
	return otelOptionFunc(func(c *otelConfig) {
		if tp != nil {
			c.tp, c.tpExplicit = tp, true
		}
	})
}

// WithMeterProvider sets the MeterProvider. Default otel.GetMeterProvider().
// A nil mp is ignored.
func WithMeterProvider(mp metric.MeterProvider) OTelOption {
	return otelOptionFunc(func(c *otelConfig) {
		if mp != nil {
			c.mp, c.mpExplicit = mp, true
		}
	})
}

// WithProviderName sets gen_ai.provider.name ("openai", "anthropic", ...).
// Default "llmkit", since the middleware cannot see which adapter is
// underneath.
func WithProviderName(name string) OTelOption {
	return otelOptionFunc(func(c *otelConfig) { c.provider = name })
}

// WithContentCapture opts in to recording the prompt (the last user
// message) and the completion on the span, as gen_ai.input.messages and
// gen_ai.output.messages, each cut to maxBytes and passed through
// llm.Redact. Default off: no text is recorded.
func WithContentCapture(maxBytes int) OTelOption {
	return otelOptionFunc(func(c *otelConfig) { c.captureMax = maxBytes })
}

func (c *otelConfig) validate() error {
	if err := c.labelsConfig.validate(); err != nil {
		return err
	}
	if c.provider == "" {
		return errors.New("metrics: WithProviderName: the name must not be empty")
	}
	if c.captureMax < 0 {
		return fmt.Errorf("metrics: WithContentCapture(%d): want >= 0", c.captureMax)
	}
	return nil
}

// ---- Log options.

type logConfig struct {
	successLevel slog.Level
	promptMax    int
	message      string
}

// WithSuccessLevel sets the level of the line for a successful call.
// Default slog.LevelInfo; slog.LevelDebug keeps successes out of an
// Info-level log while failures still show.
func WithSuccessLevel(l slog.Level) LogOption {
	return logOptionFunc(func(c *logConfig) { c.successLevel = l })
}

// WithPromptLogging opts in to logging the prompt (the last user message),
// cut to maxBytes and passed through llm.Redact. Default off.
func WithPromptLogging(maxBytes int) LogOption {
	return logOptionFunc(func(c *logConfig) { c.promptMax = maxBytes })
}

// WithLogMessage sets the message of the log line. Default "llm call".
func WithLogMessage(msg string) LogOption {
	return logOptionFunc(func(c *logConfig) { c.message = msg })
}

func (c *logConfig) validate() error {
	if c.promptMax < 0 {
		return fmt.Errorf("metrics: WithPromptLogging(%d): want >= 0", c.promptMax)
	}
	if c.successLevel > slog.LevelWarn {
		return fmt.Errorf("metrics: WithSuccessLevel(%v): a success must not log above Warn", c.successLevel)
	}
	return nil
}
