package llm_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/llmkit/llmkit/llm"
)

// tag returns a middleware that prints when a call enters and leaves it.
func tag(name string) llm.Middleware {
	return func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			fmt.Println(name, "in")
			resp, err := next.Generate(ctx, req)
			fmt.Println(name, "out")
			return resp, err
		})
	}
}

// The first middleware given to Chain is the outermost: it sees the call
// first and the answer last.
func ExampleChain() {
	provider := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		fmt.Println("provider")
		return &llm.Response{Text: "hi"}, nil
	})
	client := llm.Chain(tag("metrics"), tag("cache"), tag("retry"))(provider)
	resp, _ := client.Generate(context.Background(), llm.Prompt("hello"))
	fmt.Println(resp.Text)
	// Output:
	// metrics in
	// cache in
	// retry in
	// provider
	// retry out
	// cache out
	// metrics out
	// hi
}

// Wrap is Chain applied to a client at once.
func ExampleWrap() {
	provider := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		return &llm.Response{Text: "answer to " + req.PromptText()}, nil
	})
	client := llm.Wrap(provider, tag("outer"), tag("inner"))
	resp, _ := client.Generate(context.Background(), llm.Prompt("q"))
	fmt.Println(resp.Text)
	// Output:
	// outer in
	// inner in
	// inner out
	// outer out
	// answer to q
}

// Errors are classified by kind, never by their text.
func ExampleKindOf() {
	err := fmt.Errorf("calling summarizer: %w", &llm.Error{Kind: llm.KindRateLimited, Status: 429, Provider: "openai"})
	fmt.Println(llm.KindOf(err), errors.Is(err, llm.ErrRateLimited), llm.Retryable(err))
	fmt.Println(llm.KindOf(context.Canceled), llm.Retryable(context.Canceled))
	// Output:
	// rate_limited true true
	// canceled false
}

// Validation says what is wrong, with a bad_request error.
func ExampleRequest_Validate() {
	req := llm.Prompt("hello")
	req.Temperature = llm.Ptr(3.0)
	err := req.Validate()
	fmt.Println(llm.KindOf(err))
	fmt.Println(err)
	// Output:
	// bad_request
	// llm: llmkit: bad_request: temperature out of range [0, 2]
}

// Redact removes secrets from text before it is logged or returned.
func ExampleRedact() {
	fmt.Println(llm.Redact(`upstream said 401: Authorization: Bearer sk-abcdefghijklmnopqrstuvwx`))
	fmt.Println(llm.Redact(`GET https://example.invalid/v1/models?key=AIzaSyA1234567890abcdefghijklmnopqrstu&alt=json`))
	// Output:
	// upstream said 401: Authorization: Bearer [REDACTED]
	// GET https://example.invalid/v1/models?key=[REDACTED]&alt=json
}

// An observer registered on the context sees what inner decorators report.
func ExampleEmit() {
	retrying := func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			llm.Emit(ctx, llm.Event{Kind: llm.EventRetry, Request: req, Attempt: 1})
			return next.Generate(ctx, req)
		})
	}
	provider := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		return &llm.Response{Text: "ok"}, nil
	})
	client := llm.Wrap(provider, retrying)
	ctx := llm.WithObserver(context.Background(), llm.ObserverFunc(func(ctx context.Context, ev llm.Event) {
		fmt.Println("saw", ev.Kind, "after attempt", ev.Attempt)
	}))
	_, _ = client.Generate(ctx, llm.Prompt("x"))
	// Output:
	// saw retry after attempt 1
}
