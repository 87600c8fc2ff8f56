package metrics

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Option configures NewPrometheus, OTel, Log or NewHealth. Each With...
// function says which it applies to; giving it to another, or an invalid
// value, is an error at construction. A nil Option is ignored.
type Option interface {
	apply(c *config, to target) error
}

// target names the constructors an option applies to.
type target uint8

const (
	forPrometheus target = 1 << iota
	forOTel
	forLog
	forHealth
)

var targetNames = map[target]string{forPrometheus: "NewPrometheus", forOTel: "OTel", forLog: "Log", forHealth: "NewHealth"}

type option struct {
	name string
	to   target
	set  func(*config)
}

func (o option) apply(c *config, to target) error {
	if o.to&to == 0 {
		return fmt.Errorf("metrics: %s does not apply to %s", o.name, targetNames[to])
	}
	o.set(c)
	return nil
}

func opt(name string, to target, set func(*config)) Option { return option{name, to, set} }

// config holds every setting of the package; each constructor reads its own.
type config struct {
	models                  []string // Prometheus and OTel
	maxModels               int
	namespace               string // Prometheus
	endpoints               []string
	maxEndpoints            int
	deployments, limiters   []string
	durBuckets, ttftBuckets []float64
	nativeFactor            float64
	exemplars               bool
	quotaTTL                time.Duration        // Prometheus and Health
	tp                      trace.TracerProvider // OTel
	mp                      metric.MeterProvider
	provider                string
	captureMax              int
	successLevel            slog.Level // Log
	promptMax               int
	message                 string
	lowQuota                float64 // Health
	openDegrades            bool
}

// The defaults of the bounded label sets and of the native histograms'
// growth factor.
const (
	DefaultMaxModels    = 10
	DefaultMaxEndpoints = 10
	DefaultNativeFactor = 1.1
	maxBreakers         = 16
	// maxDeployments and maxLimiters bound the router's deployments and
	// the shared limiters admitted without an allow-list.
	maxDeployments = 16
	maxLimiters    = 16
)

var (
	// DefaultDurationBuckets are llm_request_duration_seconds's classic
	// buckets: 50 ms to two minutes, because model calls take seconds,
	// with steps of 50 ms to 1 s between 0.1 and 3 s, where most calls
	// and their percentiles fall, so that a p95 interpolated within a
	// bucket is off by less than a bucket's width there.
	DefaultDurationBuckets = []float64{0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120}
	// DefaultTTFTBuckets are llm_time_to_first_token_seconds's: the same
	// steps, up to 30 s.
	DefaultTTFTBuckets = []float64{0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30}
)

// newConfig applies the defaults, then opts, and validates the result.
func newConfig(to target, opts []Option) (*config, error) {
	c := &config{
		maxModels:    DefaultMaxModels,
		namespace:    "llm",
		maxEndpoints: DefaultMaxEndpoints,
		durBuckets:   DefaultDurationBuckets,
		ttftBuckets:  DefaultTTFTBuckets,
		nativeFactor: DefaultNativeFactor,
		exemplars:    true,
		quotaTTL:     time.Minute,
		provider:     "llmkit",
		successLevel: slog.LevelInfo,
		message:      "llm call",
		lowQuota:     0.05,
	}
	for _, o := range opts {
		if o == nil {
			continue
		} else if err := o.apply(c, to); err != nil {
			return nil, err
		}
	}
	for _, b := range []*[]float64{&c.durBuckets, &c.ttftBuckets} {
		if n := len(*b); n > 0 && math.IsInf((*b)[n-1], 1) {
			*b = (*b)[:n-1] // implicit, as in client_golang
		}
	}
	return c, c.validate()
}

// WithModels sets the allow-list of model label (and OTel attribute)
// values; any other model is "other". Without it, the first WithMaxModels
// models seen are admitted. For NewPrometheus and OTel.
func WithModels(models ...string) Option {
	models = slices.Clone(models)
	return opt("WithModels", forPrometheus|forOTel, func(c *config) { c.models = models })
}

// WithMaxModels bounds the models admitted without an allow-list. Default
// DefaultMaxModels. For NewPrometheus and OTel.
func WithMaxModels(n int) Option {
	return opt("WithMaxModels", forPrometheus|forOTel, func(c *config) { c.maxModels = n })
}

// WithNamespace sets the metric name prefix. Default "llm". For
// NewPrometheus.
func WithNamespace(ns string) Option {
	return opt("WithNamespace", forPrometheus, func(c *config) { c.namespace = ns })
}

// WithEndpoints sets the allow-list of endpoint label values; any other
// endpoint is "other". Without it, the first WithMaxEndpoints endpoints
// seen are admitted. For NewPrometheus.
func WithEndpoints(endpoints ...string) Option {
	endpoints = slices.Clone(endpoints)
	return opt("WithEndpoints", forPrometheus, func(c *config) { c.endpoints = endpoints })
}

// WithMaxEndpoints bounds the endpoints admitted without an allow-list.
// Default DefaultMaxEndpoints. For NewPrometheus.
func WithMaxEndpoints(n int) Option {
	return opt("WithMaxEndpoints", forPrometheus, func(c *config) { c.maxEndpoints = n })
}

// WithDeployments sets the allow-list of deployment label values of the
// router's series (the names the router was configured with); any other
// deployment is "other". Without it, the first 16 deployments seen are
// admitted. For NewPrometheus.
func WithDeployments(names ...string) Option {
	names = slices.Clone(names)
	return opt("WithDeployments", forPrometheus, func(c *config) { c.deployments = names })
}

// WithLimiters sets the allow-list of limiter label values of the shared
// limiters' series; any other limiter is "other". Without it, the first
// 16 limiters seen are admitted. For NewPrometheus.
func WithLimiters(names ...string) Option {
	names = slices.Clone(names)
	return opt("WithLimiters", forPrometheus, func(c *config) { c.limiters = names })
}

// WithDurationBuckets replaces DefaultDurationBuckets. For NewPrometheus.
func WithDurationBuckets(b ...float64) Option {
	b = slices.Clone(b)
	return opt("WithDurationBuckets", forPrometheus, func(c *config) { c.durBuckets = b })
}

// WithTTFTBuckets replaces DefaultTTFTBuckets. For NewPrometheus.
func WithTTFTBuckets(b ...float64) Option {
	b = slices.Clone(b)
	return opt("WithTTFTBuckets", forPrometheus, func(c *config) { c.ttftBuckets = b })
}

// WithNativeHistograms sets the bucket growth factor (> 1) of the native
// histograms the histograms also are, or 0 for classic ones only. Default
// DefaultNativeFactor; scrapers that do not negotiate native histograms
// see the classic buckets. For NewPrometheus.
func WithNativeHistograms(factor float64) Option {
	return opt("WithNativeHistograms", forPrometheus, func(c *config) { c.nativeFactor = factor })
}

// WithExemplars turns trace-id exemplars on or off. Default on: a call
// with a sampled span puts its trace_id on its request counter and its
// duration bucket. For NewPrometheus.
func WithExemplars(on bool) Option {
	return opt("WithExemplars", forPrometheus, func(c *config) { c.exemplars = on })
}

// WithQuotaTTL sets how long a reported quota counts when the provider
// gave no reset time. Default one minute: a quota must expire, or a
// replica out of rotation would never hear it is back. For NewPrometheus
// and NewHealth.
func WithQuotaTTL(d time.Duration) Option {
	return opt("WithQuotaTTL", forPrometheus|forHealth, func(c *config) { c.quotaTTL = d })
}

// WithTracerProvider sets the TracerProvider. Default the global one,
// looked up per call so that one installed later is used. A nil tp is
// ignored. For OTel.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return opt("WithTracerProvider", forOTel, func(c *config) { c.tp = cmp.Or(tp, c.tp) })
}

// WithMeterProvider sets the MeterProvider. Default the global one. A nil
// mp is ignored. For OTel.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return opt("WithMeterProvider", forOTel, func(c *config) { c.mp = cmp.Or(mp, c.mp) })
}

// WithProviderName sets gen_ai.provider.name ("openai", ...). Default
// "llmkit": the middleware cannot see the adapter underneath. For OTel.
func WithProviderName(name string) Option {
	return opt("WithProviderName", forOTel, func(c *config) { c.provider = name })
}

// WithContentCapture opts in to recording the prompt (the last user
// message) and the completion on the span, each redacted and cut to
// maxBytes. Default off. For OTel.
func WithContentCapture(maxBytes int) Option {
	return opt("WithContentCapture", forOTel, func(c *config) { c.captureMax = maxBytes })
}

// WithSuccessLevel sets the level of a successful call's line. Default
// Info; Debug keeps successes out of an Info log. For Log.
func WithSuccessLevel(l slog.Level) Option {
	return opt("WithSuccessLevel", forLog, func(c *config) { c.successLevel = l })
}

// WithPromptLogging opts in to logging the prompt (the last user message),
// redacted and cut to maxBytes. Default off. For Log.
func WithPromptLogging(maxBytes int) Option {
	return opt("WithPromptLogging", forLog, func(c *config) { c.promptMax = maxBytes })
}

// WithLogMessage sets the message of the line. Default "llm call". For Log.
func WithLogMessage(msg string) Option {
	return opt("WithLogMessage", forLog, func(c *config) { c.message = msg })
}

// WithLowQuota sets the fraction of a quota's limit under which Health
// reports degraded. Default 0.05. For NewHealth.
func WithLowQuota(fraction float64) Option {
	return opt("WithLowQuota", forHealth, func(c *config) { c.lowQuota = fraction })
}

// WithOpenBreakerDegraded makes an open breaker degraded (200) rather than
// not ready (503): for when a fallback answers, or every replica shares
// the provider. For NewHealth.
func WithOpenBreakerDegraded() Option {
	return opt("WithOpenBreakerDegraded", forHealth, func(c *config) { c.openDegrades = true })
}

var nameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (c *config) validate() error {
	switch {
	case c.maxModels < 1:
		return fmt.Errorf("metrics: WithMaxModels(%d): want at least 1", c.maxModels)
	case c.maxEndpoints < 1:
		return fmt.Errorf("metrics: WithMaxEndpoints(%d): want at least 1", c.maxEndpoints)
	case slices.Contains(c.models, "") || slices.Contains(c.models, Other):
		return fmt.Errorf("metrics: WithModels(%q): empty and %q are not model names", c.models, Other)
	case slices.Contains(c.endpoints, Other):
		return fmt.Errorf("metrics: WithEndpoints: %q is reserved", Other)
	case slices.Contains(c.deployments, "") || slices.Contains(c.deployments, Other):
		return fmt.Errorf("metrics: WithDeployments(%q): empty and %q are not deployment names", c.deployments, Other)
	case slices.Contains(c.limiters, "") || slices.Contains(c.limiters, Other):
		return fmt.Errorf("metrics: WithLimiters(%q): empty and %q are not limiter names", c.limiters, Other)
	case !nameRE.MatchString(c.namespace):
		return fmt.Errorf("metrics: WithNamespace(%q): not a valid metric name prefix", c.namespace)
	case c.nativeFactor != 0 && !(c.nativeFactor > 1):
		return fmt.Errorf("metrics: WithNativeHistograms(%v): want 0 or a factor > 1", c.nativeFactor)
	case c.quotaTTL <= 0:
		return fmt.Errorf("metrics: WithQuotaTTL(%v): want > 0", c.quotaTTL)
	case c.provider == "":
		return errors.New("metrics: WithProviderName: the name must not be empty")
	case c.captureMax < 0:
		return fmt.Errorf("metrics: WithContentCapture(%d): want >= 0", c.captureMax)
	case c.promptMax < 0:
		return fmt.Errorf("metrics: WithPromptLogging(%d): want >= 0", c.promptMax)
	case c.successLevel > slog.LevelWarn:
		return fmt.Errorf("metrics: WithSuccessLevel(%v): a success must not log above Warn", c.successLevel)
	case !(c.lowQuota >= 0 && c.lowQuota < 1):
		return fmt.Errorf("metrics: WithLowQuota(%v): want a fraction in [0, 1)", c.lowQuota)
	}
	for _, b := range [][]float64{c.durBuckets, c.ttftBuckets} {
		ok := len(b) > 0 && !math.IsNaN(b[0])
		for i := 1; i < len(b); i++ {
			ok = ok && b[i] > b[i-1] // false for a NaN
		}
		if !ok {
			return fmt.Errorf("metrics: histogram buckets %v: want strictly increasing bounds", b)
		}
	}
	return nil
}
