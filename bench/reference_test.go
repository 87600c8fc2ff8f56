package bench_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmkit/llmkit/bench"
	"github.com/llmkit/llmkit/llm"
)

// The reference must be correct code, or the comparison means nothing:
// these tests hold it to what its doc comment promises.

// scripted is a provider that answers each call with the next of its
// replies (nil: the canned answer) and counts its calls.
type scripted struct {
	calls   atomic.Int32
	replies []func(context.Context) (*llm.Response, error)
}

func (s *scripted) Generate(ctx context.Context, _ *llm.Request) (*llm.Response, error) {
	n := int(s.calls.Add(1)) - 1
	if n < len(s.replies) && s.replies[n] != nil {
		return s.replies[n](ctx)
	}
	return answer.Clone(), nil
}

func fail(kind llm.Kind) func(context.Context) (*llm.Response, error) {
	return func(context.Context) (*llm.Response, error) {
		return nil, llm.NewError(kind, "test", "scripted failure")
	}
}

func newReference(t *testing.T, p llm.Client, cfg bench.ReferenceConfig) (*bench.Reference, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registry, cfg.Models, cfg.Endpoints = reg, models, endpoints
	if cfg.BaseDelay == 0 {
		cfg.BaseDelay = time.Millisecond // the retry tests' own backoffs stay short
	}
	ref, err := bench.NewReference(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ref, reg
}

func TestReferenceNeedsProviderAndRegistry(t *testing.T) {
	if _, err := bench.NewReference(nil, bench.ReferenceConfig{Registry: prometheus.NewRegistry()}); err == nil {
		t.Error("no provider: want an error")
	}
	if _, err := bench.NewReference(instant, bench.ReferenceConfig{}); err == nil {
		t.Error("no registry: want an error")
	}
}

func TestReferenceCaches(t *testing.T) {
	ctx := context.Background()
	p := &scripted{}
	ref, _ := newReference(t, p, bench.ReferenceConfig{})
	ask := func(req *llm.Request) *llm.Response {
		t.Helper()
		resp, err := ref.Generate(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	req := request("what is the refund policy?")
	if resp := ask(req); resp.Cached {
		t.Fatal("first call: cached, want a miss")
	}
	hit := ask(req)
	if !hit.Cached || hit.Text != answer.Text || p.calls.Load() != 1 {
		t.Fatalf("second call: cached=%v text=%q provider calls=%d, want a hit", hit.Cached, hit.Text, p.calls.Load())
	}
	hit.Text = "changed by the caller"
	if again := ask(req); again.Text != answer.Text {
		t.Fatalf("a hit returned %q after a caller changed an earlier one: hits must be copies", again.Text)
	}

	// What changes the answer, or who asks, is a different key.
	other := request("what is the refund policy?")
	other.Tenant = "acme"
	differs := []*llm.Request{request("what is the return policy?"), other}
	other2 := request("what is the refund policy?")
	other2.Stop = []string{"\n"}
	differs = append(differs, other2)
	other3 := request("what is the refund policy?")
	other3.Extra = map[string]any{"reasoning_effort": "low"}
	differs = append(differs, other3)
	for _, r := range differs {
		before := p.calls.Load()
		if resp := ask(r); resp.Cached || p.calls.Load() != before+1 {
			t.Errorf("%+v: cached=%v, want a miss", r, resp.Cached)
		}
	}
	// The caller metadata is not part of the key.
	meta := request("what is the refund policy?")
	meta.Endpoint = "summarize"
	if resp := ask(meta); !resp.Cached {
		t.Error("another endpoint, same question: want a hit")
	}

	// Requests that are not cached: nondeterministic, streamed, skipped.
	nondet := request("a poem")
	nondet.Temperature = nil
	streamed := request("what is the refund policy?")
	streamed.Stream = func(llm.Chunk) error { return nil }
	skipRead := request("what is the refund policy?")
	skipRead.Cache = llm.CacheSkipRead
	for _, r := range []*llm.Request{nondet, nondet, streamed, skipRead} {
		before := p.calls.Load()
		if resp := ask(r); resp.Cached || p.calls.Load() != before+1 {
			t.Errorf("%+v: cached=%v, want the provider to answer", r, resp.Cached)
		}
	}
	skipStore := request("not to be kept")
	skipStore.Cache = llm.CacheSkipStore
	ask(skipStore)
	if resp := ask(request("not to be kept")); resp.Cached {
		t.Error("an answer asked with CacheSkipStore was stored")
	}
}

func TestReferenceKeepsOnlyCompleteAnswers(t *testing.T) {
	cut := func(context.Context) (*llm.Response, error) {
		r := answer.Clone()
		r.FinishReason = llm.FinishLength
		return r, nil
	}
	p := &scripted{replies: []func(context.Context) (*llm.Response, error){cut}}
	ref, _ := newReference(t, p, bench.ReferenceConfig{})
	req := request("a long answer")
	for range 2 {
		if _, err := ref.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if p.calls.Load() != 2 {
		t.Errorf("an answer cut at the length limit was served from the cache")
	}
}

func TestReferenceRetries(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		replies   []func(context.Context) (*llm.Response, error)
		wantKind  llm.Kind // KindUnknown: success
		wantCalls int32
	}{
		{"retryable failures, then an answer", []func(context.Context) (*llm.Response, error){
			fail(llm.KindUnavailable), fail(llm.KindRateLimited)}, llm.KindUnknown, 3},
		{"retryable failures every time", []func(context.Context) (*llm.Response, error){
			fail(llm.KindOverloaded), fail(llm.KindOverloaded), fail(llm.KindUnavailable), nil}, llm.KindUnavailable, 3},
		{"not retryable", []func(context.Context) (*llm.Response, error){
			fail(llm.KindAuth), nil}, llm.KindAuth, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &scripted{replies: tc.replies}
			ref, _ := newReference(t, p, bench.ReferenceConfig{})
			_, err := ref.Generate(ctx, request("q"))
			if got := llm.KindOf(err); err != nil && got != tc.wantKind || err == nil && tc.wantKind != llm.KindUnknown {
				t.Errorf("error %v (kind %v), want kind %v", err, got, tc.wantKind)
			}
			if p.calls.Load() != tc.wantCalls {
				t.Errorf("provider called %d times, want %d", p.calls.Load(), tc.wantCalls)
			}
		})
	}
}

func TestReferenceBreakerOpens(t *testing.T) {
	ctx := context.Background()
	down := make([]func(context.Context) (*llm.Response, error), 5)
	for i := range down {
		down[i] = fail(llm.KindUnavailable)
	}
	p := &scripted{replies: down}
	ref, _ := newReference(t, p, bench.ReferenceConfig{})
	// Five consecutive failures (the second call's second attempt) trip it.
	for range 2 {
		if _, err := ref.Generate(ctx, request("q")); err == nil {
			t.Fatal("want a failure while the provider is down")
		}
	}
	if p.calls.Load() != 5 {
		t.Fatalf("provider called %d times, want 5 (the breaker opens on the fifth failure)", p.calls.Load())
	}
	_, err := ref.Generate(ctx, request("q"))
	if !errors.Is(err, llm.ErrCircuitOpen) || p.calls.Load() != 5 {
		t.Errorf("with the breaker open: err %v, provider calls %d; want circuit_open without a call", err, p.calls.Load())
	}
}

func TestReferenceAttemptTimeout(t *testing.T) {
	hang := func(ctx context.Context) (*llm.Response, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	p := &scripted{replies: []func(context.Context) (*llm.Response, error){hang}}
	ref, _ := newReference(t, p, bench.ReferenceConfig{AttemptTimeout: 20 * time.Millisecond})
	resp, err := ref.Generate(context.Background(), request("q"))
	if err != nil || resp.Text != answer.Text || p.calls.Load() != 2 {
		t.Errorf("an attempt that hangs: err %v, provider calls %d; want it timed out and retried", err, p.calls.Load())
	}
}

func TestReferenceCallerCancels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancelAndHang := func(ctx context.Context) (*llm.Response, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	p := &scripted{replies: []func(context.Context) (*llm.Response, error){cancelAndHang}}
	ref, _ := newReference(t, p, bench.ReferenceConfig{})
	_, err := ref.Generate(ctx, request("q"))
	if !errors.Is(err, llm.ErrCanceled) || p.calls.Load() != 1 {
		t.Errorf("the caller canceled: err %v, provider calls %d; want canceled, not retried", err, p.calls.Load())
	}
}

func TestReferenceMetrics(t *testing.T) {
	ctx := context.Background()
	p := &scripted{replies: []func(context.Context) (*llm.Response, error){nil, fail(llm.KindAuth)}}
	ref, reg := newReference(t, p, bench.ReferenceConfig{})
	q := request("q")
	_, _ = ref.Generate(ctx, q) // miss
	_, _ = ref.Generate(ctx, q) // hit: no tokens spent
	unknown := request("another")
	unknown.Model, unknown.Endpoint = "gpt-free-form", "somewhere"
	_, _ = ref.Generate(ctx, unknown) // auth error

	want := `
# HELP llm_active_requests LLM calls in flight.
# TYPE llm_active_requests gauge
llm_active_requests 0
# HELP llm_requests_total LLM calls by final outcome: status is ok, degraded or the error kind.
# TYPE llm_requests_total counter
llm_requests_total{endpoint="chat",model="m",status="ok"} 2
llm_requests_total{endpoint="other",model="other",status="auth"} 1
# HELP llm_tokens_total Tokens reported by the provider, by type (input, output, cached_input).
# TYPE llm_tokens_total counter
llm_tokens_total{type="input"} 10
llm_tokens_total{type="output"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"llm_active_requests", "llm_requests_total", "llm_tokens_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var observed uint64
	for _, mf := range mfs {
		if mf.GetName() == "llm_request_duration_seconds" {
			for _, m := range mf.GetMetric() {
				observed += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if observed != 3 {
		t.Errorf("llm_request_duration_seconds observed %d calls, want 3", observed)
	}
}

// Concurrent misses and hits of the same questions, for the race detector.
func TestReferenceConcurrent(t *testing.T) {
	ref, _ := newReference(t, instant, bench.ReferenceConfig{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			q := &questions{source: uint16(g % 2)} // two goroutines per source: the same keys
			for range 200 {
				if _, err := ref.Generate(context.Background(), request(q.next())); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
