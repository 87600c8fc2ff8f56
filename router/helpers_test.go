package router_test

import (
	"context"
	"testing"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/router"
)

func mustNew(t *testing.T, cfg router.Config) *router.Router {
	t.Helper()
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// call makes one non-streamed call and fails the test on an error.
func call(t *testing.T, ctx context.Context, c llm.Client) *llm.Response {
	t.Helper()
	resp, err := c.Generate(ctx, llm.Prompt("hello"))
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return resp
}

// answer is a client that answers at once with its name.
func answer(name string) llm.Client {
	return llm.ClientFunc(func(_ context.Context, req *llm.Request) (*llm.Response, error) {
		return &llm.Response{Text: name, Model: req.Model}, nil
	})
}

func status(r *router.Router, name string) router.Status {
	for _, s := range r.Status() {
		if s.Name == name {
			return s
		}
	}
	return router.Status{}
}
