package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/openai"
)

// newAdapterHandler is the reference for what llmkit's stack adds: POST
// /generate decoded as the service decodes it, one call through the bare
// OpenAI adapter (the SDK, its JSON and its transport, no decorator), and
// the answer written as JSON. The service's cost minus this one is the
// stack's and the service's own.
func newAdapterHandler(upstream string) (http.Handler, error) {
	client, err := openai.NewFromConfig("sk-bench-not-a-real-key", upstream+"/v1", openai.WithModel("gpt-4o-mini"))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("POST /generate", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Prompt string `json:"prompt"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, "invalid JSON body", http.StatusBadRequest)
			return
		}
		resp, err := client.Generate(r.Context(), &llm.Request{Messages: []llm.Message{llm.User(in.Prompt)}})
		if err != nil {
			http.Error(w, llm.KindOf(err).String(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"text": resp.Text, "model": resp.Model})
	})
	return mux, nil
}

// runAdapter serves newAdapterHandler on listen until ctx is done.
func runAdapter(ctx context.Context, listen, upstream string) error {
	if err := loopbackOnly(listen); err != nil {
		return err
	}
	h, err := newAdapterHandler(upstream)
	if err != nil {
		return fmt.Errorf("adapter: %w", err)
	}
	return serve(ctx, listen, h)
}

// serve runs h on listen until ctx is done, then shuts down.
func serve(ctx context.Context, listen string, h http.Handler) error {
	srv := &http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
