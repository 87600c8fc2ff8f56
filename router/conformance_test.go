package router_test

import (
	"testing"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/router"
)

// A router over one deployment keeps the llm.Client contract, with the
// deployment's model set on a copy of the request.
func TestConformance(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, upstream llm.Client) llm.Client {
		r, err := router.New(router.Config{Deployments: []router.Deployment{
			{Name: "only", Client: upstream, Model: "deployment-model", Weight: 1},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}
