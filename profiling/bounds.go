package profiling

import "errors"

// Other is the label value (and file-name part) used for an endpoint,
// model or tenant outside the allow-list, and for every combination once
// the bound on distinct combinations is reached.
const Other = "other"

// Unset is the value used when a request leaves Endpoint, Model or Tenant
// empty.
const Unset = "none"

// BoundOption limits the values that become labels or file-name parts. It
// is accepted by both Labels and NewCapturer.
type BoundOption interface {
	LabelOption
	CaptureOption
}

// bounds maps caller-supplied strings to bounded values.
type bounds struct {
	endpoints map[string]struct{} // nil: any value
	models    map[string]struct{}
}

func (b *bounds) endpoint(s string) string { return bounded(b.endpoints, s) }
func (b *bounds) model(s string) string    { return bounded(b.models, s) }

func bounded(allow map[string]struct{}, s string) string {
	if s == "" {
		return Unset
	}
	if allow == nil {
		return s
	}
	if _, ok := allow[s]; ok {
		return s
	}
	return Other
}

func allowSet(names []string) (map[string]struct{}, error) {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		if n == "" {
			return nil, errors.New("profiling: empty name in allow-list")
		}
		m[n] = struct{}{}
	}
	return m, nil
}

type boundOption struct {
	models bool
	names  []string
}

func (o boundOption) apply(b *bounds) error {
	m, err := allowSet(o.names)
	if err != nil {
		return err
	}
	if o.models {
		b.models = m
	} else {
		b.endpoints = m
	}
	return nil
}

func (o boundOption) applyLabels(c *labelConfig) error    { return o.apply(&c.bounds) }
func (o boundOption) applyCapture(c *captureConfig) error { return o.apply(&c.bounds) }

// Endpoints restricts endpoint values to names; any other endpoint becomes
// Other. Without it every endpoint is kept as given (Labels still bounds the
// number of combinations). An empty name is an error.
func Endpoints(names ...string) BoundOption {
	return boundOption{names: append([]string(nil), names...)}
}

// Models restricts model values to names; any other model becomes Other.
// Without it every model is kept as given (Labels still bounds the number
// of combinations). An empty name is an error.
func Models(names ...string) BoundOption {
	return boundOption{models: true, names: append([]string(nil), names...)}
}
