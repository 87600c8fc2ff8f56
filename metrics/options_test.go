package metrics_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmkit/llmkit/metrics"
)

// constructors builds each constructor of the package with opts.
var constructors = map[string]func(opts ...metrics.Option) error{
	"NewPrometheus": func(opts ...metrics.Option) error {
		_, err := metrics.NewPrometheus(prometheus.NewRegistry(), opts...)
		return err
	},
	"OTel": func(opts ...metrics.Option) error { _, err := metrics.OTel(opts...); return err },
	"Log":  func(opts ...metrics.Option) error { _, err := metrics.Log(discardLogger, opts...); return err },
	"NewHealth": func(opts ...metrics.Option) error {
		_, err := metrics.NewHealth(opts...)
		return err
	},
}

// Every option applies to the constructors it names and is an error given
// to another; invalid values are errors; nil options are ignored.
func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		opt       metrics.Option
		appliesTo string // the constructors it applies to
	}{
		{metrics.WithModels("a"), "NewPrometheus OTel"},
		{metrics.WithMaxModels(3), "NewPrometheus OTel"},
		{metrics.WithNamespace("svc"), "NewPrometheus"},
		{metrics.WithEndpoints("chat"), "NewPrometheus"},
		{metrics.WithMaxEndpoints(3), "NewPrometheus"},
		{metrics.WithDeployments("east"), "NewPrometheus"},
		{metrics.WithLimiters("tpm"), "NewPrometheus"},
		{metrics.WithDurationBuckets(1, 2), "NewPrometheus"},
		{metrics.WithTTFTBuckets(1, 2), "NewPrometheus"},
		{metrics.WithNativeHistograms(0), "NewPrometheus"},
		{metrics.WithExemplars(false), "NewPrometheus"},
		{metrics.WithQuotaTTL(1), "NewPrometheus NewHealth"},
		{metrics.WithTracerProvider(nil), "OTel"},
		{metrics.WithMeterProvider(nil), "OTel"},
		{metrics.WithProviderName("openai"), "OTel"},
		{metrics.WithContentCapture(10), "OTel"},
		{metrics.WithSuccessLevel(slog.LevelDebug), "Log"},
		{metrics.WithPromptLogging(10), "Log"},
		{metrics.WithLogMessage("x"), "Log"},
		{metrics.WithLowQuota(0.1), "NewHealth"},
		{metrics.WithOpenBreakerDegraded(), "NewHealth"},
	} {
		for name, build := range constructors {
			err := build(nil, tc.opt)
			if applies := strings.Contains(" "+tc.appliesTo+" ", " "+name+" "); applies != (err == nil) {
				t.Errorf("%s(%T for %s): err %v", name, tc.opt, tc.appliesTo, err)
			}
		}
	}
	for name, tc := range map[string]struct {
		opt   metrics.Option
		build string
	}{
		"namespace":           {metrics.WithNamespace("bad-name"), "NewPrometheus"},
		"max endpoints":       {metrics.WithMaxEndpoints(0), "NewPrometheus"},
		"max models":          {metrics.WithMaxModels(0), "OTel"},
		"reserved model":      {metrics.WithModels("other"), "NewPrometheus"},
		"empty model":         {metrics.WithModels(""), "OTel"},
		"reserved endpoint":   {metrics.WithEndpoints("other"), "NewPrometheus"},
		"reserved deployment": {metrics.WithDeployments("other"), "NewPrometheus"},
		"empty limiter":       {metrics.WithLimiters(""), "NewPrometheus"},
		"buckets order":       {metrics.WithDurationBuckets(1, 0.5), "NewPrometheus"},
		"buckets empty":       {metrics.WithTTFTBuckets(), "NewPrometheus"},
		"native factor":       {metrics.WithNativeHistograms(1), "NewPrometheus"},
		"quota ttl":           {metrics.WithQuotaTTL(0), "NewHealth"},
		"provider name":       {metrics.WithProviderName(""), "OTel"},
		"negative capture":    {metrics.WithContentCapture(-1), "OTel"},
		"negative prompt":     {metrics.WithPromptLogging(-1), "Log"},
		"success at Error":    {metrics.WithSuccessLevel(slog.LevelError), "Log"},
		"low quota fraction":  {metrics.WithLowQuota(1), "NewHealth"},
	} {
		if err := constructors[tc.build](tc.opt); err == nil {
			t.Errorf("%s: want an error from %s", name, tc.build)
		}
	}
	if _, err := metrics.NewPrometheus(nil); err == nil {
		t.Error("NewPrometheus(nil): want an error")
	}
}
