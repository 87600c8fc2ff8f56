package profiling

import (
	"context"
	"errors"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/llmkit/llmkit/llm"
)

// The pprof label keys Labels sets.
const (
	LabelEndpoint = "endpoint"
	LabelModel    = "model"
	LabelTenant   = "tenant"
)

// DefaultMaxLabelSets is the default bound on distinct label combinations.
const DefaultMaxLabelSets = 256

// maxValueLen caps a label value in bytes; longer values are cut at a rune
// boundary so one careless caller cannot pin megabytes in the table.
const maxValueLen = 128

// maxRawKey is the longest raw (endpoint+model+tenant) key the fast table
// remembers; longer ones take the slower, still allocation-free, path.
const maxRawKey = 3 * maxValueLen

// LabelOption configures Labels. Endpoints and Models are LabelOptions too.
type LabelOption interface {
	applyLabels(*labelConfig) error
}

type labelConfig struct {
	bounds
	tenant  bool
	tenants map[string]struct{}
	max     int
}

type labelOptionFunc func(*labelConfig) error

func (f labelOptionFunc) applyLabels(c *labelConfig) error { return f(c) }

// Tenant adds the tenant label. Tenants are often numerous and may identify
// customers, so the label is off by default. With names, only those
// tenants are kept and the rest become Other; without, tenants are kept as
// given up to the MaxLabelSets bound.
func Tenant(names ...string) LabelOption {
	names = append([]string(nil), names...)
	return labelOptionFunc(func(c *labelConfig) error {
		c.tenant = true
		if len(names) == 0 {
			c.tenants = nil
			return nil
		}
		m, err := allowSet(names)
		c.tenants = m
		return err
	})
}

// MaxLabelSets bounds the distinct (endpoint, model[, tenant]) combinations
// Labels builds; once n have been seen, new combinations are labelled
// Other. Default DefaultMaxLabelSets; n must be positive.
func MaxLabelSets(n int) LabelOption {
	return labelOptionFunc(func(c *labelConfig) error {
		if n <= 0 {
			return errors.New("profiling: MaxLabelSets must be positive")
		}
		c.max = n
		return nil
	})
}

// Labels returns a middleware that runs each call with the pprof
// labels endpoint and model (and tenant, with the Tenant option), so CPU
// and goroutine profiles taken while calls run can be split by LLM call
// site. Goroutines the wrapped client starts inherit the labels.
//
// An empty Endpoint, Model or Tenant is labelled Unset. Values outside an
// allow-list (Endpoints, Models, Tenant) are labelled Other, values are cut
// to 128 bytes, and once MaxLabelSets distinct combinations have been seen
// every new one is labelled Other in every label, so the label sets stay
// bounded whatever callers send. Each label set is built once and reused.
//
// The per-call cost is one table lookup, one small allocation (the
// context the wrapped client receives, which carries the labels), and
// setting and restoring the goroutine's labels. When the caller's context
// already carries pprof labels, the call runs under pprof.Do, which merges
// them (three allocations).
func Labels(opts ...LabelOption) (llm.Middleware, error) {
	cfg := labelConfig{max: DefaultMaxLabelSets}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyLabels(&cfg); err != nil {
			return nil, err
		}
	}
	l := &labeler{cfg: cfg}
	empty := map[labelKey]*labelEntry{}
	l.raw.Store(&empty)
	l.other = l.makeEntry(labelKey{Other, Other, Other})
	return l.middleware, nil
}

type labelKey struct{ endpoint, model, tenant string }

// labeler holds two read-mostly tables, each replaced wholesale under mu
// (copy on write: both are bounded, so copies stay small and rare):
// raw maps what callers sent to a label set, bounded maps the bounded
// values to one, so that raw values which bound to the same labels share a
// set and count once against the limit.
type labeler struct {
	cfg     labelConfig
	raw     atomic.Pointer[map[labelKey]*labelEntry]
	mu      sync.Mutex
	bounded map[labelKey]*labelEntry // guarded by mu
	other   *labelEntry
}

// labelEntry is one bounded label set, with a context that carries it and
// nothing else, both built once.
type labelEntry struct {
	set    pprof.LabelSet
	labels context.Context
}

// labelCtx is a caller's context seen through a prebuilt label set: the
// pprof label lookup is answered from the set's own context, everything
// else (values, deadline, cancellation) from the caller's. It is what
// pprof.Do would build, for one allocation instead of two and no merging
// of label maps on every call.
type labelCtx struct {
	context.Context
	labels context.Context
}

func (c *labelCtx) Value(key any) any {
	if v := c.labels.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

func (l *labeler) middleware(next llm.Client) llm.Client {
	return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (resp *llm.Response, err error) {
		if req == nil {
			resp, err = next.Generate(ctx, req)
			return resp, llm.RedactError(err)
		}
		e := l.lookup(req)
		if hasLabels(ctx) {
			// The caller set labels of its own: merge, as pprof.Do does.
			pprof.Do(ctx, e.set, func(ctx context.Context) {
				resp, err = next.Generate(ctx, req)
			})
			return resp, llm.RedactError(err)
		}
		lctx := &labelCtx{Context: ctx, labels: e.labels}
		pprof.SetGoroutineLabels(lctx)
		defer pprof.SetGoroutineLabels(ctx)
		resp, err = next.Generate(lctx, req)
		return resp, llm.RedactError(err)
	})
}

// hasLabels reports whether ctx carries pprof labels.
func hasLabels(ctx context.Context) bool {
	has := false
	pprof.ForLabels(ctx, func(string, string) bool { has = true; return false })
	return has
}

func (l *labeler) lookup(req *llm.Request) *labelEntry {
	k := labelKey{endpoint: req.Endpoint, model: req.Model}
	if l.cfg.tenant {
		k.tenant = req.Tenant
	}
	if s, ok := (*l.raw.Load())[k]; ok {
		return s
	}
	return l.slow(k)
}

// slow resolves a combination the raw table does not hold yet.
func (l *labeler) slow(k labelKey) *labelEntry {
	b := labelKey{endpoint: clip(l.cfg.endpoint(k.endpoint)), model: clip(l.cfg.model(k.model))}
	if l.cfg.tenant {
		b.tenant = clip(bounded(l.cfg.tenants, k.tenant))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	set, ok := l.bounded[b]
	if !ok {
		if len(l.bounded) >= l.cfg.max {
			set = l.other
		} else {
			set = l.makeEntry(b)
			if l.bounded == nil {
				l.bounded = make(map[labelKey]*labelEntry)
			}
			l.bounded[b] = set
		}
	}
	old := *l.raw.Load()
	if len(old) < l.cfg.max && len(k.endpoint)+len(k.model)+len(k.tenant) <= maxRawKey {
		if _, ok := old[k]; !ok {
			next := make(map[labelKey]*labelEntry, len(old)+1)
			for kk, v := range old {
				next[kk] = v
			}
			next[k] = set
			l.raw.Store(&next)
		}
	}
	return set
}

func (l *labeler) makeEntry(b labelKey) *labelEntry {
	set := pprof.Labels(LabelEndpoint, b.endpoint, LabelModel, b.model)
	if l.cfg.tenant {
		set = pprof.Labels(LabelEndpoint, b.endpoint, LabelModel, b.model, LabelTenant, b.tenant)
	}
	return &labelEntry{set: set, labels: pprof.WithLabels(context.Background(), set)}
}

// clip cuts s to maxValueLen bytes at a rune boundary.
func clip(s string) string {
	if len(s) <= maxValueLen {
		return s
	}
	i := maxValueLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
