package router_test

import (
	"math"
	"strings"
	"testing"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/router"
)

// Invalid configs are refused at construction with a clear error.
func TestNewRejects(t *testing.T) {
	ok := answer("ok")
	d := func(name string, w float64) router.Deployment {
		return router.Deployment{Name: name, Client: ok, Weight: w}
	}
	for _, tc := range []struct {
		name string
		cfg  router.Config
		want string
	}{
		{"none", router.Config{}, "deployments"},
		{"empty name", router.Config{Deployments: []router.Deployment{d("", 1)}}, "Name"},
		{"label-unsafe name", router.Config{Deployments: []router.Deployment{d("a b", 1)}}, "Name"},
		{"duplicate", router.Config{Deployments: []router.Deployment{d("a", 1), d("a", 1)}}, "twice"},
		{"no client", router.Config{Deployments: []router.Deployment{{Name: "a", Weight: 1}}}, "Client"},
		{"NaN weight", router.Config{Deployments: []router.Deployment{d("a", math.NaN())}}, "Weight"},
		{"Inf weight", router.Config{Deployments: []router.Deployment{d("a", math.Inf(1))}}, "Weight"},
		{"negative weight", router.Config{Deployments: []router.Deployment{d("a", -1)}}, "Weight"},
		{"all weights 0", router.Config{Deployments: []router.Deployment{d("a", 0), d("b", 0)}}, "Weight > 0"},
		{"negative RPM", router.Config{Deployments: []router.Deployment{{Name: "a", Client: ok, Weight: 1, RPM: -1}}}, "RPM"},
		{"unknown group", router.Config{Deployments: []router.Deployment{{Name: "a", Client: ok, Weight: 1, Group: "x"}}}, "group"},
		{"group without traffic", router.Config{
			Groups:      []router.Group{{Name: "a"}, {Name: "b"}},
			Deployments: []router.Deployment{{Name: "x", Client: ok, Weight: 1, Group: "a"}, {Name: "y", Client: ok, Group: "b"}},
		}, "Weight > 0"},
		{"fallback to nowhere", router.Config{
			Groups:      []router.Group{{Name: "a", Fallbacks: map[llm.Kind]string{llm.KindUnavailable: "zzz"}}},
			Deployments: []router.Deployment{{Name: "x", Client: ok, Weight: 1, Group: "a"}},
		}, "fallback"},
		{"fallback to itself", router.Config{
			Groups:      []router.Group{{Name: "a", Fallbacks: map[llm.Kind]string{llm.KindUnavailable: "a"}}},
			Deployments: []router.Deployment{{Name: "x", Client: ok, Weight: 1, Group: "a"}},
		}, "fallback"},
		{"negative cooldown", router.Config{Deployments: []router.Deployment{d("a", 1)}, Cooldown: -1}, "Cooldown"},
		{"unknown strategy", router.Config{Deployments: []router.Deployment{d("a", 1)}, Strategy: 99}, "strategy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := router.New(tc.cfg)
			if err == nil || r != nil {
				t.Fatalf("New accepted %+v", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// A nil request is a bad request, not a panic.
func TestNilRequest(t *testing.T) {
	r := mustNew(t, router.Config{Deployments: []router.Deployment{{Name: "a", Client: answer("a"), Weight: 1}}})
	if _, err := r.Generate(t.Context(), nil); llm.KindOf(err) != llm.KindBadRequest {
		t.Fatalf("nil request: %v, want bad_request", err)
	}
}
