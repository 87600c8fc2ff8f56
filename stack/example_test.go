package stack_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/stack"
)

// The recommended stack around a provider, in one call.
func ExampleNew() {
	provider := &llmtest.Fake{Default: llmtest.Step{Text: "Rayleigh scattering."}}
	st, err := stack.New(provider, stack.Config{Registry: prometheus.NewRegistry(), Models: []string{"gpt-4o-mini"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer st.Close()

	resp, err := st.Generate(context.Background(), &llm.Request{
		Model:       "gpt-4o-mini",
		Messages:    []llm.Message{llm.User("Why is the sky blue?")},
		Temperature: llm.Ptr(0.0), // unset means the provider's default, and is not cached
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text)
	// Output:
	// Rayleigh scattering.
}

// CostBudget is a complete third-party decorator: it refuses the calls of
// a tenant that has spent its budget of tokens, and counts what each
// answer cost (a cached answer costs nothing). It knows only Client,
// Middleware, Request and Response, the error kinds and Emit.
func CostBudget(tokens int) llm.Middleware {
	var mu sync.Mutex
	spent := map[string]int{}
	return func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			mu.Lock()
			over := spent[req.Tenant] >= tokens
			mu.Unlock()
			if over {
				llm.Emit(ctx, llm.Event{Kind: llm.EventRejected, Request: req, Reason: "cost_budget"})
				return nil, &llm.Error{Kind: llm.KindRateLimited, Provider: "cost_budget", Message: "tenant spent its token budget"}
			}
			resp, err := next.Generate(ctx, req)
			if err == nil && !resp.Cached {
				mu.Lock()
				spent[req.Tenant] += resp.Usage.InputTokens + resp.Usage.OutputTokens
				mu.Unlock()
			}
			return resp, err
		})
	}
}

// A decorator of one's own runs inside the default stack: the metrics,
// logs and traces see what it does, and what the cache answers reaches it
// marked Cached.
func Example_costBudget() {
	provider := &llmtest.Fake{Default: llmtest.Step{Text: "ok", Response: &llm.Response{Usage: llm.Usage{InputTokens: 60, OutputTokens: 40}}}}
	st, err := stack.New(provider, stack.Config{
		Registry:    prometheus.NewRegistry(),
		Logger:      slog.New(slog.DiscardHandler),
		Middlewares: []llm.Middleware{CostBudget(150)},
	})
	if err != nil {
		panic(err)
	}
	defer st.Close()

	ask := func(tenant, prompt string) {
		req := &llm.Request{Messages: []llm.Message{llm.User(prompt)}, Temperature: llm.Ptr(0.0), Tenant: tenant}
		resp, err := st.Generate(context.Background(), req)
		switch {
		case errors.Is(err, llm.ErrRateLimited):
			fmt.Println(tenant, prompt, "->", "refused:", llm.KindOf(err))
		case err != nil:
			fmt.Println(tenant, prompt, "->", err)
		default:
			fmt.Println(tenant, prompt, "->", resp.Text, "cached:", resp.Cached)
		}
	}
	ask("acme", "one")   // 100 tokens
	ask("acme", "two")   // 200 tokens
	ask("acme", "three") // over budget
	ask("zeta", "three") // another tenant
	// Output:
	// acme one -> ok cached: false
	// acme two -> ok cached: false
	// acme three -> refused: rate_limited
	// zeta three -> ok cached: false
}
