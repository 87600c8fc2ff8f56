package router_test

import (
	"context"
	"fmt"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/router"
)

// Two API keys of one model: the first is revoked (401), so the call
// rotates to the second, and the first cools down.
func Example() {
	revoked := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindAuth)}}
	valid := &llmtest.Fake{Default: llmtest.Step{Text: "hello from key 2"}}
	r, err := router.New(router.Config{Deployments: []router.Deployment{
		{Name: "key-1", Client: revoked, Model: "gpt-4o-mini", Weight: 1000},
		{Name: "key-2", Client: valid, Model: "gpt-4o-mini", Weight: 1},
	}})
	if err != nil {
		panic(err)
	}
	for range 3 {
		resp, err := r.Generate(context.Background(), llm.Prompt("hi"))
		if err != nil {
			panic(err)
		}
		fmt.Println(resp.Text)
	}
	fmt.Println("key-1 tried", revoked.Calls(), "time; cooling:", r.Status()[0].CoolingFor > 0)
	// Output:
	// hello from key 2
	// hello from key 2
	// hello from key 2
	// key-1 tried 1 time; cooling: true
}
