package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// runReal sends a few calls, one of them streamed and one repeated (a
// cache hit), through the stack to a real endpoint and prints each result
// and what the operator would see.
func runReal(ctx context.Context, w io.Writer, provider llm.Client, providerName, model string, o options) error {
	st, err := newStack(provider, providerName, model, o)
	if err != nil {
		return err
	}
	defer st.close()
	fmt.Fprintf(w, "llmkit demo against %s, model %q\n\n", providerName, model)
	ask := func(q string, stream bool) {
		req := &llm.Request{
			Model: model, Messages: []llm.Message{llm.User(q)},
			Temperature: llm.Ptr(0.0), MaxTokens: 64, Endpoint: "chat",
		}
		if stream {
			fmt.Fprint(w, "  streamed: ")
			req.Stream = func(c llm.Chunk) error { _, err := io.WriteString(w, c.Text); return err }
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		began := time.Now()
		resp, err := st.built.Generate(ctx, req)
		if stream {
			fmt.Fprintln(w)
		}
		if err != nil {
			fmt.Fprintf(w, "  %-44q error %v (kind %s)\n", q, err, llm.KindOf(err))
			return
		}
		fmt.Fprintf(w, "  %-44q %6v cached=%-5v degraded=%-5v tokens=%d+%d\n", q,
			round(time.Since(began)), resp.Cached, resp.Degraded, resp.Usage.InputTokens, resp.Usage.OutputTokens)
		// ristretto applies writes asynchronously; let this one land so the
		// repeated question below finds it.
		st.store.Wait()
	}
	ask("Say hello in five words.", false)
	ask("Say hello in five words.", false) // the same question again: a cache hit
	ask("Name three prime numbers.", true)
	fmt.Fprintln(w)
	return printObservability(w, st)
}
