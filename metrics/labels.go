package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/llmkit/llmkit/llm"
)

// Other is the label value every model, endpoint or breaker name outside
// the bounded set maps to.
const Other = "other"

// labelSet interns a bounded set of label values. Each value gets a stable
// index in [0, size); index size-1 is Other. With an allow-list the set is
// fixed at construction; otherwise the first size-1 distinct values seen
// are admitted and later ones map to Other. Lookups are lock-free reads of
// an immutable snapshot, so the per-call path never allocates.
type labelSet struct {
	empty  string   // what "" becomes
	size   int      // number of indexes, Other included
	names  []string // fixed length size-1; names[i] is written before i is published
	n      int      // admitted so far, guarded by mu
	index  atomic.Pointer[labelIndex]
	mu     sync.Mutex
	fixed  bool
	filled atomic.Bool
}

// labelIndex is an immutable snapshot of the admitted values: keys[i] is
// the raw value of index i. A small set is searched linearly, which for a
// handful of short strings is faster than hashing; a larger one has a map.
type labelIndex struct {
	keys []string
	m    map[string]int // nil when len(keys) <= maxScan
}

// maxScan is the largest set searched linearly.
const maxScan = 8

func newLabelIndex(keys []string) *labelIndex {
	ix := &labelIndex{keys: keys}
	if len(keys) > maxScan {
		ix.m = make(map[string]int, len(keys))
		for i, k := range keys {
			ix.m[k] = i
		}
	}
	return ix
}

func (ix *labelIndex) find(v string) (int, bool) {
	if ix.m != nil {
		i, ok := ix.m[v]
		return i, ok
	}
	for i, k := range ix.keys {
		if k == v {
			return i, true
		}
	}
	return 0, false
}

// newLabelSet returns a set admitting allow (when non-empty) or the first
// max values seen.
func newLabelSet(allow []string, max int, empty string) *labelSet {
	s := &labelSet{empty: empty}
	var keys []string
	if len(allow) > 0 {
		s.fixed = true
		seen := make(map[string]bool)
		for _, v := range allow {
			if seen[v] {
				continue
			}
			seen[v] = true
			keys = append(keys, v)
		}
		// An allow-list is the caller's own value, exported as given.
		s.names = keys
		s.n = len(s.names)
		s.size = s.n + 1
		s.filled.Store(true)
	} else {
		s.size = max + 1
		s.names = make([]string, max)
	}
	s.index.Store(newLabelIndex(keys))
	return s
}

// other returns Other's index.
func (s *labelSet) other() int { return s.size - 1 }

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
	if i, ok := s.index.Load().find(v); ok {
		return i
	}
	if s.filled.Load() {
		return s.other()
	}
	return s.admit(v)
}

func (s *labelSet) admit(v string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.index.Load()
	if i, ok := old.find(v); ok {
		return i
	}
	if s.n >= s.size-1 {
		s.filled.Store(true)
		return s.other()
	}
	v = string([]byte(v)) // never keep a caller's larger backing array alive
	i := s.n
	// The label value is redacted: a secret pasted into a model or
	// endpoint name never reaches an exposition. Lookups stay keyed by
	// the raw value, so they stay on the fast path.
	s.names[i] = llm.Redact(v)
	s.n++
	// Copy on write: the set is small and bounded, and admissions stop
	// once it is full.
	s.index.Store(newLabelIndex(append(old.keys[:len(old.keys):len(old.keys)], v)))
	if s.n == s.size-1 {
		s.filled.Store(true)
	}
	return i
}
