package router_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/router"
)

// groups builds the layout: a primary group of two keys of a small
// model, a larger-context group, another provider's group for content
// filters, and a backup group for when the primary cannot serve.
func groups(t *testing.T, small1, small2 llm.Client, ev llm.Observer) *router.Router {
	return mustNew(t, router.Config{
		Observer: ev,
		Groups: []router.Group{
			{Name: "small", Fallbacks: map[llm.Kind]string{
				llm.KindContextLength: "large", llm.KindContentFilter: "other", llm.KindUnavailable: "backup",
			}},
			{Name: "large"}, {Name: "other"}, {Name: "backup"},
		},
		Deployments: []router.Deployment{
			{Name: "small-1", Group: "small", Client: small1, Model: "small", Weight: 1},
			{Name: "small-2", Group: "small", Client: small2, Model: "small", Weight: 1},
			{Name: "large", Group: "large", Client: answer("large"), Model: "large-128k", Weight: 1},
			{Name: "other", Group: "other", Client: answer("other"), Model: "other-provider", Weight: 1},
			{Name: "backup", Group: "backup", Client: answer("backup"), Model: "backup", Weight: 1},
		},
	})
}

// A context-length refusal goes at once to the larger-context group (the
// other key of the same model would refuse too), a content-filter refusal
// to the other provider's group; neither is a degraded answer.
func TestFallbackByKind(t *testing.T) {
	for kind, want := range map[llm.Kind]string{llm.KindContextLength: "large", llm.KindContentFilter: "other"} {
		s1 := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(kind)}}
		s2 := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(kind)}}
		ev := &llmtest.Recorder{}
		r := groups(t, s1, s2, ev)
		resp := call(t, context.Background(), r)
		if resp.Text != want || resp.Degraded {
			t.Fatalf("%v: answer from %q (degraded %v), want %q, not degraded", kind, resp.Text, resp.Degraded, want)
		}
		if s1.Calls()+s2.Calls() != 1 {
			t.Fatalf("%v: the small model was asked %d times, want once", kind, s1.Calls()+s2.Calls())
		}
		if fb := ev.Events(llm.EventFallback); len(fb) != 1 || fb[0].Source != want || fb[0].Reason != kind.String() {
			t.Fatalf("%v: fallback events %+v", kind, fb)
		}
		if st := status(r, "small-1"); st.CoolingFor != 0 {
			t.Fatalf("%v cooled a deployment that is fine", kind)
		}
	}
}

// When every deployment of the group failed (or cools), the call goes to
// the next group: a degraded answer, with the kind that moved it.
func TestFallbackWhenGroupUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s1 := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
		s2 := &llmtest.Fake{Default: llmtest.Step{Err: rateLimited(time.Minute)}}
		r := groups(t, s1, s2, nil)
		resp := call(t, context.Background(), r)
		if resp.Text != "backup" || !resp.Degraded || resp.Attempts != 3 {
			t.Fatalf("answer %q degraded=%v (%v) attempts=%d; want backup's, degraded, after 3 attempts",
				resp.Text, resp.Degraded, resp.DegradedReason, resp.Attempts)
		}
		// Both small deployments cool now: the next call goes straight to
		// the backup, as unavailable.
		resp = call(t, context.Background(), r)
		if resp.Text != "backup" || resp.DegradedReason != llm.KindUnavailable || s1.Calls()+s2.Calls() != 2 {
			t.Fatalf("second call: %q (%v) after %d small calls", resp.Text, resp.DegradedReason, s1.Calls()+s2.Calls())
		}
	})
}

// Without a fallback group, the refusal comes back unchanged.
func TestNoFallbackGroup(t *testing.T) {
	up := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindContextLength)}}
	r := mustNew(t, router.Config{Deployments: []router.Deployment{
		{Name: "a", Client: up, Weight: 1}, {Name: "b", Client: up, Weight: 1},
	}})
	if _, err := r.Generate(context.Background(), llm.Prompt("x")); llm.KindOf(err) != llm.KindContextLength || up.Calls() != 1 {
		t.Fatalf("%v after %d calls, want context_length after 1", err, up.Calls())
	}
}

// MaxAttempts caps the deployments one call tries.
func TestMaxAttempts(t *testing.T) {
	up := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
	var deps []router.Deployment
	for _, n := range []string{"a", "b", "c", "d"} {
		deps = append(deps, router.Deployment{Name: n, Client: up, Weight: 1})
	}
	r := mustNew(t, router.Config{MaxAttempts: 2, Deployments: deps})
	if _, err := r.Generate(context.Background(), llm.Prompt("x")); llm.KindOf(err) != llm.KindUnavailable || up.Calls() != 2 {
		t.Fatalf("%v after %d calls, want unavailable after 2", err, up.Calls())
	}
}

// Every attempt is reported as EventRoute: the deployment, the outcome,
// its duration.
func TestRouteEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ev := &llmtest.Recorder{}
		up := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: time.Second, Err: llmtest.Error(llm.KindOverloaded)},
			{Latency: 2 * time.Second},
		}}
		r := mustNew(t, router.Config{Deployments: []router.Deployment{
			{Name: "a", Client: up, Weight: 1}, {Name: "b", Client: up, Weight: 1},
		}})
		ctxObs := llm.WithObserver(context.Background(), ev)
		call(t, ctxObs, r)
		routes := ev.Events(llm.EventRoute)
		if len(routes) != 2 || routes[0].Reason != "overloaded" || routes[0].Duration != time.Second ||
			routes[1].Reason != "ok" || routes[1].Duration != 2*time.Second || routes[0].Source == routes[1].Source {
			t.Fatalf("route events %+v", routes)
		}
	})
}

// A call moved to a fallback group that is all cooling fails fast with
// circuit_open, not with the first group's refusal.
func TestFallbackGroupCooling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		backup := &llmtest.Fake{Steps: []llmtest.Step{{Err: rateLimited(time.Minute)}}}
		r := mustNew(t, router.Config{
			Groups: []router.Group{{Name: "main", Fallbacks: map[llm.Kind]string{llm.KindContextLength: "big"}}, {Name: "big"}},
			Deployments: []router.Deployment{
				{Name: "main", Group: "main", Client: &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindContextLength)}}, Weight: 1},
				{Name: "big", Group: "big", Client: backup, Weight: 1},
			},
		})
		if _, err := r.Generate(context.Background(), llm.Prompt("x")); llm.KindOf(err) != llm.KindRateLimited {
			t.Fatalf("first call: %v, want big's rate_limited", err)
		}
		_, err := r.Generate(context.Background(), llm.Prompt("x"))
		if llm.KindOf(err) != llm.KindCircuitOpen || llm.RetryAfterOf(err) != time.Minute {
			t.Fatalf("second call: %v, want circuit_open with big's cooldown", err)
		}
	})
}
