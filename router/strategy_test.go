package router_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/router"
)

// LowestLatency measures each deployment once, then sends calls to the
// faster one; streams are ranked by time to first chunk, not by how long
// the whole answer took.
func TestLowestLatencyPicksFaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := &llmtest.Fake{Default: llmtest.Step{Latency: 80 * time.Millisecond}}
		fast := &llmtest.Fake{Default: llmtest.Step{Latency: 20 * time.Millisecond}}
		ev := &llmtest.Recorder{}
		r := mustNew(t, router.Config{Strategy: router.LowestLatency, Observer: ev, Rand: rand.NewPCG(3, 4), Deployments: []router.Deployment{
			{Name: "slow", Client: slow, Weight: 1}, {Name: "fast", Client: fast, Weight: 1},
		}})
		for range 40 {
			call(t, context.Background(), r)
		}
		if slow.Calls() != 1 || fast.Calls() != 39 {
			t.Fatalf("calls slow=%d fast=%d; want slow measured once, then every call to fast", slow.Calls(), fast.Calls())
		}
		if s := status(r, "fast"); s.P90 != 20*time.Millisecond {
			t.Fatalf("fast p90 = %v, want 20ms", s.P90)
		}

		// Streams: "quick-start" sends its first chunk after 10ms but takes
		// 410ms in all; "steady" needs 30ms for its first and is then done.
		// Time to first chunk decides, undivided by the token count.
		quick := &llmtest.Fake{Default: llmtest.Step{Latency: 10 * time.Millisecond, ChunkDelay: 100 * time.Millisecond, Chunks: []string{"a", "b", "c", "d", "e"}}}
		steady := &llmtest.Fake{Default: llmtest.Step{Latency: 30 * time.Millisecond, Chunks: []string{"a"}}}
		r = mustNew(t, router.Config{Strategy: router.LowestLatency, Rand: rand.NewPCG(3, 4), Deployments: []router.Deployment{
			{Name: "quick-start", Client: quick, Weight: 1}, {Name: "steady", Client: steady, Weight: 1},
		}})
		for range 20 {
			if _, _, err := streamed(t, r); err != nil {
				t.Fatal(err)
			}
		}
		if steady.Calls() != 1 || quick.Calls() != 19 {
			t.Fatalf("stream calls quick-start=%d steady=%d; want quick-start, first chunk sooner", quick.Calls(), steady.Calls())
		}
		if s := status(r, "quick-start"); s.StreamP90 != 10*time.Millisecond {
			t.Fatalf("quick-start time-to-first-chunk p90 = %v, want 10ms", s.StreamP90)
		}

		// A window older than LatencyTTL no longer counts: the slow one is
		// measured again, so a recovered deployment gets its chance.
		time.Sleep(2 * time.Minute)
		for range 2 {
			if _, _, err := streamed(t, r); err != nil {
				t.Fatal(err)
			}
		}
		if quick.Calls() != 20 || steady.Calls() != 2 {
			t.Fatalf("after the TTL: quick-start=%d steady=%d; want both measured again", quick.Calls(), steady.Calls())
		}
	})
}

// LeastInFlight sends a call to the deployment with the fewest calls
// running.
func TestLeastInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hold := func(_ int, req *llm.Request) llmtest.Step {
			if req.PromptText() == "hold" {
				return llmtest.Step{Hang: true}
			}
			return llmtest.Step{}
		}
		a, b := &llmtest.Fake{Func: hold}, &llmtest.Fake{Func: hold}
		r := mustNew(t, router.Config{Strategy: router.LeastInFlight, Rand: rand.NewPCG(5, 6), Deployments: []router.Deployment{
			{Name: "a", Client: a, Weight: 1}, {Name: "b", Client: b, Weight: 1},
		}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = r.Generate(ctx, llm.Prompt("hold"))
		}()
		synctest.Wait()
		busy, idle := a, b
		if b.InFlight() == 1 {
			busy, idle = b, a
		}
		for range 20 {
			call(t, context.Background(), r)
		}
		if busy.Calls() != 1 || idle.Calls() != 20 {
			t.Fatalf("busy=%d idle=%d calls; want every call on the idle deployment", busy.Calls(), idle.Calls())
		}
		cancel()
		<-done
		// Idle again, ties are drawn: both get calls.
		for range 40 {
			call(t, context.Background(), r)
		}
		if busy.Calls() < 5 {
			t.Fatalf("after the hold ended, %d calls on the formerly busy deployment; want a share", busy.Calls())
		}
	})
}

// UsageBased draws by the allowance left: from the provider's quota, and
// from local counts against RPM, up to the cap, then fails fast until the
// minute turns.
func TestUsageBased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		quota := func(left int64) llmtest.Step {
			q := llm.Quota{LimitRequests: 1000, RemainingRequests: left, LimitTokens: llm.QuotaUnknown, RemainingTokens: llm.QuotaUnknown, ResetRequests: time.Minute}
			return llmtest.Step{Response: &llm.Response{Quota: &q}}
		}
		low, high := &llmtest.Fake{Default: quota(100)}, &llmtest.Fake{Default: quota(900)}
		r := mustNew(t, router.Config{Strategy: router.UsageBased, Rand: rand.NewPCG(7, 8), Deployments: []router.Deployment{
			{Name: "low", Client: low, Weight: 1}, {Name: "high", Client: high, Weight: 1},
		}})
		for range 2000 {
			call(t, context.Background(), r)
		}
		// 10% vs 90% left: low gets about a tenth, once both reported.
		if share := float64(low.Calls()) / 2000; share < 0.07 || share > 0.14 {
			t.Fatalf("low got %.1f%% of the calls, want about 10%%", 100*share)
		}

		// RPM 5 each: ten calls split evenly (never all on one), then none
		// until the minute ends.
		a, b := &llmtest.Fake{}, &llmtest.Fake{}
		r = mustNew(t, router.Config{Strategy: router.UsageBased, Rand: rand.NewPCG(9, 10), Deployments: []router.Deployment{
			{Name: "a", Client: a, Weight: 1, RPM: 5}, {Name: "b", Client: b, Weight: 1, RPM: 5},
		}})
		for range 10 {
			call(t, context.Background(), r)
		}
		if a.Calls() != 5 || b.Calls() != 5 {
			t.Fatalf("RPM 5 each: a=%d b=%d, want 5 and 5", a.Calls(), b.Calls())
		}
		_, err := r.Generate(context.Background(), llm.Prompt("x"))
		if llm.KindOf(err) != llm.KindCircuitOpen || llm.RetryAfterOf(err) <= 0 || llm.RetryAfterOf(err) > time.Minute {
			t.Fatalf("over RPM: %v (RetryAfter %v), want circuit_open within the minute", err, llm.RetryAfterOf(err))
		}
		time.Sleep(llm.RetryAfterOf(err))
		call(t, context.Background(), r)
	})
}

// A provider reporting its quota used up cools the deployment until the
// quota resets, before any 429.
func TestExhaustedQuotaCools(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := llm.NewQuota()
		q.LimitRequests, q.RemainingRequests, q.ResetRequests = 100, 0, 20*time.Second
		spent := &llmtest.Fake{Default: llmtest.Step{Response: &llm.Response{Quota: &q}}}
		r := mustNew(t, router.Config{Deployments: []router.Deployment{
			{Name: "spent", Client: spent, Weight: 1000}, {Name: "other", Client: &llmtest.Fake{}, Weight: 0.001},
		}})
		for range 10 {
			call(t, context.Background(), r)
		}
		if spent.Calls() != 1 || status(r, "spent").CoolingFor != 20*time.Second {
			t.Fatalf("spent called %d times, cooling %v; want once, then 20s of cooling", spent.Calls(), status(r, "spent").CoolingFor)
		}
	})
}
