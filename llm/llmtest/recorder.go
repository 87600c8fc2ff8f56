package llmtest

import (
	"context"
	"slices"
	"sync"

	"github.com/llmkit/llmkit/llm"
)

// Recorder is an llm.Observer that keeps every event it hears, in the order
// heard, so a test can check what a decorator reported. Give it at
// construction to the decorator under test or register it on the call's
// context (llm.WithObserver). It is safe for concurrent use, and its zero
// value is ready.
type Recorder struct {
	mu     sync.Mutex
	events []llm.Event
}

var _ llm.Observer = (*Recorder)(nil)

// Observe keeps ev.
func (r *Recorder) Observe(_ context.Context, ev llm.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// Events returns a copy of the events heard of the given kinds, or of all
// of them when no kind is given, in the order heard.
func (r *Recorder) Events(kinds ...llm.EventKind) []llm.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []llm.Event
	for _, ev := range r.events {
		if len(kinds) == 0 || slices.Contains(kinds, ev.Kind) {
			out = append(out, ev)
		}
	}
	return out
}

// Count returns how many events of kind were heard.
func (r *Recorder) Count(kind llm.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// Counts returns how many events of each kind were heard; printed with %v
// it reads like map[cache_hit:2 cache_miss:1].
func (r *Recorder) Counts() map[llm.EventKind]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[llm.EventKind]int)
	for _, ev := range r.events {
		out[ev.Kind]++
	}
	return out
}

// Sources returns the distinct non-empty Source values of the events heard,
// sorted.
func (r *Recorder) Sources() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.Source != "" && !slices.Contains(out, ev.Source) {
			out = append(out, ev.Source)
		}
	}
	slices.Sort(out)
	return out
}

// Errors returns the non-nil Err of the events heard, in the order heard.
func (r *Recorder) Errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []error
	for _, ev := range r.events {
		if ev.Err != nil {
			out = append(out, ev.Err)
		}
	}
	return out
}
