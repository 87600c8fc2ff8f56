package resilience

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder collects events.
type recorder struct {
	mu     sync.Mutex
	events []llm.Event
}

func (r *recorder) Observe(_ context.Context, ev llm.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) of(k llm.EventKind) []llm.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []llm.Event
	for _, e := range r.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func observed() (context.Context, *recorder) {
	r := &recorder{}
	return llm.WithObserver(context.Background(), r), r
}

func wrap(t testing.TB, cfg Config, next llm.Client) llm.Client {
	t.Helper()
	mw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return mw(next)
}

func breaker(t testing.TB, cfg BreakerConfig) *Breaker {
	t.Helper()
	b, err := NewBreaker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// force opens or closes b as a call would, under its lock.
func force(b *Breaker, open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if open {
		b.cb.Open()
	} else {
		b.cb.Close()
	}
}

func exactRetry(n int) *RetryConfig { return &RetryConfig{MaxAttempts: n, NoJitter: true} }

// kinds returns the multiset of event kinds r saw, sorted.
func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.events))
	for _, e := range r.events {
		out = append(out, fmt.Sprintf("%s/%s/%s", e.Kind, e.Reason, e.Source))
	}
	slices.Sort(out)
	return out
}
