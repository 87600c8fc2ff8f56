package resilience

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func observed() (context.Context, *llmtest.Recorder) {
	r := &llmtest.Recorder{}
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

// kinds returns the multiset of event kinds r saw, with their reasons and
// sources, sorted.
func kinds(r *llmtest.Recorder) []string {
	evs := r.Events()
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s/%s/%s", e.Kind, e.Reason, e.Source))
	}
	slices.Sort(out)
	return out
}
