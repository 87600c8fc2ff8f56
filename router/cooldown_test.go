package router_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/router"
)

func rateLimited(after time.Duration) *llm.Error {
	e := llmtest.Error(llm.KindRateLimited)
	e.RetryAfter = after
	return e
}

// A 429's Retry-After sets the cooldown; a later, shorter one does not
// shorten it, a longer one extends it; the end is reported once noticed.
func TestCooldownsOnlyExtend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ev := &llmtest.Recorder{}
		up := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: time.Second, Err: rateLimited(10 * time.Second)},
			{Latency: 2 * time.Second, Err: rateLimited(time.Second)},
		}}
		r := mustNew(t, router.Config{Observer: ev, Deployments: []router.Deployment{{Name: "a", Client: up, Weight: 1}}})
		var wg sync.WaitGroup
		for range 2 { // both calls reach the deployment before either fails
			wg.Go(func() {
				if _, err := r.Generate(context.Background(), llm.Prompt("x")); llm.KindOf(err) != llm.KindRateLimited {
					t.Errorf("err = %v, want the deployment's rate_limited", err)
				}
			})
		}
		wg.Wait()
		if got := status(r, "a").CoolingFor; got != 9*time.Second {
			t.Fatalf("at t=2s cooling for %v, want 9s (10s from t=1s): the shorter Retry-After shortened the cooldown", got)
		}
		if cds := ev.Events(llm.EventCooldown); len(cds) != 1 || cds[0].Delay != 10*time.Second || cds[0].Reason != "rate_limited" || cds[0].Source != "a" {
			t.Fatalf("cooldown events %+v, want one of 10s, rate_limited, a", cds)
		}
		// While it cools, calls fail fast with circuit_open and when to
		// come back.
		time.Sleep(3 * time.Second)
		_, err := r.Generate(context.Background(), llm.Prompt("x"))
		if llm.KindOf(err) != llm.KindCircuitOpen || llm.RetryAfterOf(err) != 6*time.Second {
			t.Fatalf("while cooling: %v (RetryAfter %v), want circuit_open after 6s", err, llm.RetryAfterOf(err))
		}
		if up.Calls() != 2 {
			t.Fatalf("a cooling deployment was called: %d calls", up.Calls())
		}
		time.Sleep(6 * time.Second)
		call(t, context.Background(), r)
		cds := ev.Events(llm.EventCooldown)
		if last := cds[len(cds)-1]; len(cds) != 2 || last.Delay != 0 || last.Reason != "rate_limited" {
			t.Fatalf("cooldown events %+v, want the end (Delay 0) reported", cds)
		}
	})
}

// A failure that does not say how long cools for Cooldown; a longer
// Retry-After later extends it.
func TestCooldownDefaultAndExtension(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: time.Second, Err: llmtest.Error(llm.KindUnavailable)},
			{Latency: 2 * time.Second, Err: rateLimited(time.Minute)},
		}}
		r := mustNew(t, router.Config{Cooldown: 3 * time.Second, Deployments: []router.Deployment{{Name: "a", Client: up, Weight: 1}}})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { _, _ = r.Generate(context.Background(), llm.Prompt("x")) })
		}
		synctest.Wait()
		time.Sleep(1500 * time.Millisecond)
		if got := status(r, "a").CoolingFor; got != 2500*time.Millisecond {
			t.Fatalf("after a 503 at t=1s, at t=1.5s cooling for %v, want 2.5s (Cooldown 3s)", got)
		}
		wg.Wait()
		if got := status(r, "a").CoolingFor; got != time.Minute {
			t.Fatalf("after a 429 with Retry-After 1m, cooling for %v, want 1m", got)
		}
	})
}

// MaxCooldown caps a provider's Retry-After.
func TestMaxCooldownCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Steps: []llmtest.Step{{Err: rateLimited(time.Hour)}}}
		r := mustNew(t, router.Config{MaxCooldown: time.Minute, Deployments: []router.Deployment{{Name: "a", Client: up, Weight: 1}}})
		_, _ = r.Generate(context.Background(), llm.Prompt("x"))
		if got := status(r, "a").CoolingFor; got != time.Minute {
			t.Fatalf("cooling for %v, want the 1m cap", got)
		}
	})
}

// With every deployment cooling, a call waits for the earliest to come
// back when that is within MaxWait and before its deadline, and otherwise
// fails at once with circuit_open and the wait it would need.
func TestAllCoolingWaitBoundedByDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &llmtest.Fake{Steps: []llmtest.Step{{Err: rateLimited(10 * time.Second)}}}
		b := &llmtest.Fake{Steps: []llmtest.Step{{Err: rateLimited(20 * time.Second)}}}
		r := mustNew(t, router.Config{MaxWait: time.Minute, Deployments: []router.Deployment{
			{Name: "a", Client: a, Weight: 1}, {Name: "b", Client: b, Weight: 1},
		}})
		// Both fail: each is tried once, and the last error comes back.
		if _, err := r.Generate(context.Background(), llm.Prompt("x")); llm.KindOf(err) != llm.KindRateLimited {
			t.Fatalf("both failing: %v, want rate_limited", err)
		}
		if a.Calls() != 1 || b.Calls() != 1 {
			t.Fatalf("calls a=%d b=%d, want each deployment tried once", a.Calls(), b.Calls())
		}

		// A deadline before the earliest return: no wait at all.
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := r.Generate(ctx, llm.Prompt("x"))
		cancel()
		if llm.KindOf(err) != llm.KindCircuitOpen || llm.RetryAfterOf(err) != 10*time.Second {
			t.Fatalf("deadline 5s, earliest back in 10s: %v (RetryAfter %v), want circuit_open after 10s", err, llm.RetryAfterOf(err))
		}
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("waited %v for a deployment that comes back after the deadline", waited)
		}

		// A deadline after it: the call waits exactly until a is back.
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp := call(t, ctx, r)
		if waited := time.Since(start); waited != 10*time.Second || resp.Text != "ok" || a.Calls() != 2 {
			t.Fatalf("waited %v, answer %q, a called %d times; want 10s and a's answer", waited, resp.Text, a.Calls())
		}
	})
}

// MaxWait bounds the wait when there is no deadline; MaxWait 0 fails fast.
func TestMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, maxWait := range []time.Duration{0, 5 * time.Second} {
			up := &llmtest.Fake{Steps: []llmtest.Step{{Err: rateLimited(10 * time.Second)}}}
			r := mustNew(t, router.Config{MaxWait: maxWait, Deployments: []router.Deployment{{Name: "a", Client: up, Weight: 1}}})
			_, _ = r.Generate(context.Background(), llm.Prompt("x"))
			start := time.Now()
			_, err := r.Generate(context.Background(), llm.Prompt("x"))
			if llm.KindOf(err) != llm.KindCircuitOpen || time.Since(start) != 0 {
				t.Fatalf("MaxWait %v, cooling 10s: %v after %v, want circuit_open at once", maxWait, err, time.Since(start))
			}
		}
	})
}

// Keys rotate: among three deployments of one model (three API keys), the
// one answering 401 and the one answering 429 cool down, and the calls go
// on through the third.
func TestKeysRotate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ev := &llmtest.Recorder{}
		revoked := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindAuth)}}
		limited := &llmtest.Fake{Steps: []llmtest.Step{{Err: rateLimited(30 * time.Second)}}}
		good := &llmtest.Fake{}
		r := mustNew(t, router.Config{Observer: ev, Deployments: []router.Deployment{
			{Name: "key-1", Client: revoked, Weight: 1},
			{Name: "key-2", Client: limited, Weight: 1},
			{Name: "key-3", Client: good, Weight: 1},
		}})
		for range 50 {
			call(t, context.Background(), r)
		}
		if revoked.Calls() != 1 || limited.Calls() != 1 || good.Calls() != 50 {
			t.Fatalf("calls key-1=%d key-2=%d key-3=%d; want the failing keys tried once each, key-3 every call",
				revoked.Calls(), limited.Calls(), good.Calls())
		}
		if s := status(r, "key-1"); s.CoolingFor != time.Minute {
			t.Fatalf("revoked key cools for %v, want AuthCooldown's 1m", s.CoolingFor)
		}
		// Once key-2's Retry-After passed, it takes calls again.
		time.Sleep(30 * time.Second)
		for range 50 {
			call(t, context.Background(), r)
		}
		if limited.Calls() < 10 {
			t.Fatalf("key-2 got %d calls after its cooldown, want about half", limited.Calls())
		}
		var reasons []string
		for _, e := range ev.Events(llm.EventRoute) {
			if e.Reason != "ok" {
				reasons = append(reasons, e.Source+":"+e.Reason)
			}
		}
		if len(reasons) != 2 {
			t.Fatalf("failed routes %v, want key-1:auth and key-2:rate_limited", reasons)
		}
	})
}

// A deployment that hangs past AttemptTimeout cools as timed out and the
// call moves on at once.
func TestAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := &llmtest.Fake{Default: llmtest.Step{Hang: true}}
		good := &llmtest.Fake{}
		r := mustNew(t, router.Config{AttemptTimeout: time.Second, Deployments: []router.Deployment{
			{Name: "hang", Client: hang, Weight: 1000}, {Name: "good", Client: good, Weight: 0.001},
		}})
		start := time.Now()
		for range 3 {
			call(t, context.Background(), r)
		}
		if hang.Calls() != 1 || time.Since(start) != time.Second {
			t.Fatalf("hang called %d times over %v; want once, given up after its 1s timeout", hang.Calls(), time.Since(start))
		}
		if s := status(r, "hang"); s.CoolingFor != 5*time.Second {
			t.Fatalf("hang cools for %v, want the default 5s", s.CoolingFor)
		}
	})
}

// Another replica's cooldown, shared, keeps this one away from the
// deployment; the local state stays authoritative (a shorter shared hint
// does not shorten a local cooldown).
func TestSharedCooldowns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := &memShared{until: map[string]time.Time{}}
		ev := &llmtest.Recorder{}
		flaky := &llmtest.Fake{Steps: []llmtest.Step{{Err: rateLimited(20 * time.Second)}}}
		deps := func(c llm.Client) []router.Deployment {
			return []router.Deployment{{Name: "a", Client: c, Weight: 1000}, {Name: "b", Client: &llmtest.Fake{}, Weight: 0.001}}
		}
		one := mustNew(t, router.Config{Shared: shared, Deployments: deps(flaky)})
		aOnTwo := &llmtest.Fake{}
		two := mustNew(t, router.Config{Shared: shared, Observer: ev, Deployments: deps(aOnTwo)})
		call(t, context.Background(), one) // a: 429 → cools 20s, shared
		if got := time.Until(shared.CoolingUntil(context.Background(), "a")); got != 20*time.Second {
			t.Fatalf("shared hint for a: %v, want 20s", got)
		}
		for range 20 {
			call(t, context.Background(), two)
		}
		if aOnTwo.Calls() != 0 {
			t.Fatalf("replica two called a %d times while another replica's hint said it cools", aOnTwo.Calls())
		}
		if cds := ev.Events(llm.EventCooldown); len(cds) != 1 || cds[0].Reason != "shared" || cds[0].Delay != 20*time.Second {
			t.Fatalf("replica two's cooldown events %+v, want one shared 20s", cds)
		}
		time.Sleep(20 * time.Second)
		call(t, context.Background(), two)
		if aOnTwo.Calls() != 1 {
			t.Fatalf("a not used after the shared cooldown ended (%d calls)", aOnTwo.Calls())
		}
		// A local cooldown longer than the shared hint stands.
		one2 := mustNew(t, router.Config{Shared: shared, Deployments: deps(&llmtest.Fake{Steps: []llmtest.Step{{Err: rateLimited(time.Minute)}}})})
		call(t, context.Background(), one2)
		shared.CoolUntil(context.Background(), "a", time.Now().Add(time.Second)) // a shorter hint arrives
		call(t, context.Background(), one2)
		if got := status(one2, "a").CoolingFor; got != time.Minute {
			t.Fatalf("local cooldown %v after a shorter shared hint, want 1m", got)
		}
	})
}

// memShared is an in-process SharedCooldowns, standing in for the Redis
// one of package limit: the router's side of the interface is under test.
type memShared struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (m *memShared) CoolUntil(_ context.Context, name string, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if until.After(m.until[name]) {
		m.until[name] = until
	}
}

func (m *memShared) CoolingUntil(_ context.Context, name string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.until[name]
}

// A call waiting for a cooling deployment returns as soon as its caller
// cancels.
func TestWaitCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &llmtest.Fake{Steps: []llmtest.Step{{Err: rateLimited(time.Minute)}}}
		r := mustNew(t, router.Config{MaxWait: 5 * time.Minute, Deployments: []router.Deployment{{Name: "a", Client: up, Weight: 1}}})
		_, _ = r.Generate(context.Background(), llm.Prompt("x"))
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		time.AfterFunc(10*time.Second, cancel)
		_, err := r.Generate(ctx, llm.Prompt("x"))
		if llm.KindOf(err) != llm.KindCanceled || time.Since(start) != 10*time.Second {
			t.Fatalf("%v after %v, want canceled after the caller's 10s", err, time.Since(start))
		}
	})
}
