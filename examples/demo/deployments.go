package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
	"github.com/llmkit/llmkit/router"
)

// deploymentNames are the simulated deployments the router spreads calls
// over: three regions of one model, each with its own API key.
var deploymentNames = []string{"east", "west", "central"}

// simDeployments builds one simulated model per deployment and a router
// over them, weighted 2:1:1, whose cooldowns are short enough to show a
// failed deployment coming back within a phase.
func simDeployments(watch *routeWatch) (*router.Router, map[string]*sim.Model, error) {
	models := map[string]*sim.Model{}
	var deps []router.Deployment
	for i, name := range deploymentNames {
		m, err := sim.New(sim.Config{
			Seed: int64(i + 1), TTFT: 40 * time.Millisecond, PerToken: time.Millisecond,
			MinTokens: 8, MaxTokens: 48, RetryAfter: 100 * time.Millisecond,
		})
		if err != nil {
			return nil, nil, err
		}
		models[name] = m
		weight := 1.0
		if i == 0 {
			weight = 2
		}
		deps = append(deps, router.Deployment{Name: name, Client: m, Weight: weight, Tags: []string{"sim"}})
	}
	r, err := router.New(router.Config{
		Deployments: deps, Observer: watch,
		Cooldown: 300 * time.Millisecond, MaxCooldown: 2 * time.Second,
	})
	return r, models, err
}

// routeWatch counts, per deployment, the attempts that answered and those
// that failed, and the cooldowns started, since the last snapshot.
type routeWatch struct {
	mu        sync.Mutex
	ok, fail  map[string]int
	cooldowns int
}

func (w *routeWatch) Observe(_ context.Context, ev llm.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ok == nil {
		w.ok, w.fail = map[string]int{}, map[string]int{}
	}
	switch {
	case ev.Kind == llm.EventRoute && ev.Reason == "ok":
		w.ok[ev.Source]++
	case ev.Kind == llm.EventRoute:
		w.fail[ev.Source]++
	case ev.Kind == llm.EventCooldown && ev.Delay > 0:
		w.cooldowns++
	}
}

// routeStats is one phase's routing.
type routeStats struct {
	phase     string
	ok, fail  map[string]int
	cooldowns int
}

// snapshot returns the counts since the last snapshot and starts over.
func (w *routeWatch) snapshot(phase string) routeStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := routeStats{phase: phase, ok: w.ok, fail: w.fail, cooldowns: w.cooldowns}
	if s.ok == nil {
		s.ok, s.fail = map[string]int{}, map[string]int{}
	}
	w.ok, w.fail, w.cooldowns = nil, nil, 0
	return s
}

// printRoutes shows where the router sent the calls in each phase: the
// answers per deployment, with its failed attempts in brackets.
func printRoutes(w io.Writer, stats []routeStats) {
	fmt.Fprintln(w, "Router: answers per deployment [failed attempts] by phase")
	for _, s := range stats {
		var parts []string
		for _, name := range deploymentNames {
			parts = append(parts, fmt.Sprintf("%s=%d [%d]", name, s.ok[name], s.fail[name]))
		}
		fmt.Fprintf(w, "  routes %-9s %s  cooldowns=%d\n", s.phase, strings.Join(parts, " "), s.cooldowns)
	}
}
