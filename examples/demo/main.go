// Command demo runs llmkit's recommended stack around a router over three
// deployments of the simulated model (no network, no API key) through a
// short workload: one deployment failing (the router moves its traffic to
// the others), then an outage of all of them, and prints what happened:
// per phase, and as the metrics, traces, logs and health an operator would
// see.
//
//	go run ./examples/demo
//
// Flags shorten or lengthen it; the defaults finish in about twelve seconds.
//
// With OPENAI_API_KEY and/or OPENAI_BASE_URL set (any OpenAI-compatible
// server: OpenAI, vLLM, Ollama, LM Studio), or ANTHROPIC_API_KEY, it instead
// sends a handful of calls through the same stack to that endpoint;
// LLMKIT_MODEL picks the model.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/llmkit/llmkit/examples/internal/fromenv"
)

func main() {
	phase := flag.Duration("phase", 3*time.Second, "length of each of the four workload phases")
	workers := flag.Int("workers", 32, "concurrent callers")
	flag.Parse()
	opts := options{phase: *phase, workers: *workers, slow: 250 * time.Millisecond, captureEvery: 2 * time.Second, getenv: os.Getenv}
	if err := run(context.Background(), os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// options are the demo's knobs.
type options struct {
	phase   time.Duration // length of each workload phase
	workers int           // concurrent callers
	// slow is the slow-call capture threshold and captureEvery its rate
	// limit; slow 0 leaves capture out (the runtime's tracer cannot start
	// inside a testing/synctest bubble, where the demo's test runs).
	slow, captureEvery time.Duration
	// getenv reads the environment that may name a real endpoint
	// (fromenv.Provider): os.Getenv from main; nil (tests) means the
	// simulated model whatever the environment says.
	getenv func(string) string
}

func run(ctx context.Context, w io.Writer, o options) error {
	phase, workers := o.phase, o.workers
	if phase <= 0 || workers <= 0 {
		return fmt.Errorf("-phase and -workers must be positive")
	}
	if o.getenv != nil {
		if provider, providerName, model, ok, err := fromenv.Provider(o.getenv); err != nil {
			return err
		} else if ok {
			return runReal(ctx, w, provider, providerName, model, o)
		}
	}
	st, err := newSimStack(o)
	if err != nil {
		return err
	}
	defer st.close()
	fmt.Fprintf(w, "llmkit demo: %d callers, %d phases of %v, simulated model %q in %d deployments\n",
		workers, len(phases), phase, st.modelName, len(deploymentNames))
	fmt.Fprintln(w, "stack: otel → prometheus → log → health → pprof labels → slow-call capture → cache → resilience → router → deployments")
	fmt.Fprintln(w)

	var results []*phaseStats
	var routes []routeStats
	for _, p := range phases {
		for name, m := range st.models {
			errs := p.errors
			if p.only != "" && name != p.only {
				errs = nil
			}
			if err := m.SetErrors(errs); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "phase %-9s %s\n", p.name, p.about)
		results = append(results, runPhase(ctx, st.built, p.name, phase, workers))
		routes = append(routes, st.routes.snapshot(p.name))
	}
	fmt.Fprintln(w)
	printPhases(w, results)
	fmt.Fprintln(w)
	printRoutes(w, routes)
	fmt.Fprintln(w)
	return printObservability(w, st)
}
