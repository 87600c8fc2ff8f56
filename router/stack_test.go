package router_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/resilience"
	"github.com/llmkit/llmkit/router"
	"github.com/llmkit/llmkit/stack"
)

// In the default stack the router takes the provider's place, under
// resilience: a dead deployment is tried once, cools, and the calls are
// answered by the others; retry and router together make no more
// attempts than the router alone.
func TestInsideStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dead := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
		ok1, ok2 := &llmtest.Fake{}, &llmtest.Fake{}
		r := mustNew(t, router.Config{Cooldown: time.Minute, Deployments: []router.Deployment{
			{Name: "dead", Client: dead, Weight: 10}, {Name: "east", Client: ok1, Weight: 1}, {Name: "west", Client: ok2, Weight: 1},
		}})
		rc := resilience.DefaultConfig()
		st, err := stack.New(r, stack.Config{
			Registry: prometheus.NewRegistry(), NoCache: true, Resilience: &rc,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for range 30 {
			resp, err := st.Generate(context.Background(), llm.Prompt("hello"))
			if err != nil || resp.Degraded {
				t.Fatalf("through the stack: %v (degraded %v)", err, resp != nil && resp.Degraded)
			}
		}
		if dead.Calls() != 1 || ok1.Calls()+ok2.Calls() != 30 {
			t.Fatalf("calls dead=%d east=%d west=%d; want the dead one tried once, 30 answers from the others",
				dead.Calls(), ok1.Calls(), ok2.Calls())
		}
	})
}
