package metrics

import (
	"errors"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/llmkit/llmkit/llm"
)

// Other is the label value every model, endpoint, breaker name or reason
// outside the bounded set maps to.
const Other = "other"

// labelSet interns a bounded set of label values. Each value gets a stable
// index in [0, size); index size-1 is Other. With an allow-list the set is
// fixed at construction; otherwise the first size-1 distinct values seen
// are admitted and later ones map to Other. Lookups read an immutable map
// without locking, so the per-call path never allocates.
type labelSet struct {
	empty string   // what "" becomes
	size  int      // number of indexes, Other included
	fixed bool     // an allow-list: nothing is admitted
	names []string // exported values; names[i] is written before i is published
	index atomic.Pointer[map[string]int]
	mu    sync.Mutex // serialises admissions
}

// newLabelSet returns a set of the values in allow (when there are any)
// or of the first max values seen.
func newLabelSet(allow []string, max int, empty string) *labelSet {
	s := &labelSet{empty: empty, size: max + 1, names: make([]string, max)}
	m := map[string]int{}
	if len(allow) > 0 {
		s.fixed, s.names = true, nil
		for _, v := range allow {
			if _, dup := m[v]; !dup {
				m[v] = len(s.names)
				s.names = append(s.names, v) // the caller's own, exported as given
			}
		}
		s.size = len(s.names) + 1
	}
	s.index.Store(&m)
	return s
}

// name returns the label value of index i.
func (s *labelSet) name(i int) string {
	if i >= s.size-1 {
		return Other
	}
	return s.names[i]
}

// lookup returns v's index, admitting v when there is room.
func (s *labelSet) lookup(v string) int {
	if v == "" {
		v = s.empty
	}
	m := *s.index.Load()
	if i, ok := m[v]; ok {
		return i
	}
	if s.fixed || len(m) == s.size-1 {
		return s.size - 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m = *s.index.Load()
	if i, ok := m[v]; ok {
		return i
	}
	if len(m) == s.size-1 {
		return s.size - 1
	}
	// The exported value is redacted, so a secret pasted into a model or
	// endpoint name never reaches an exposition; lookups stay keyed by the
	// raw value, copied so that no caller's larger buffer stays alive.
	i := len(m)
	v = strings.Clone(v)
	s.names[i] = llm.Redact(v)
	next := maps.Clone(m)
	next[v] = i
	s.index.Store(&next)
	return i
}

// The status label: the final outcome of a call, "ok", "degraded" (a
// fallback answered) or the kind of its error.
const (
	statusOK = iota
	statusDegraded
	statusKinds // statusKinds + int(kind)
)

// statusNames holds the status label values by index.
var statusNames = func() []string {
	s := []string{"ok", "degraded"}
	for _, k := range llm.Kinds() {
		s = append(s, k.String())
	}
	return s
}()

// statusOf returns the status index of an outcome (of an attempt when
// resp is nil).
func statusOf(resp *llm.Response, err error) int {
	switch {
	case err != nil:
		return statusKinds + int(llm.KindOf(err))
	case resp != nil && resp.Degraded:
		return statusDegraded
	}
	return statusOK
}

// quotaOf returns the quota reported with a response or an error.
func quotaOf(resp *llm.Response, err error) *llm.Quota {
	if resp != nil {
		return resp.Quota
	}
	if e := (*llm.Error)(nil); errors.As(err, &e) {
		return e.Quota
	}
	return nil
}
