package openai_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/provider/openai"
	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Wrap an SDK client you already have. The test server stands in for
// api.openai.com and speaks the same wire format.
func Example() {
	quota := llm.NewQuota()
	quota.RemainingRequests, quota.ResetRequests = 4999, 12*time.Millisecond
	srv := httptest.NewServer(handler(&llmtest.Fake{Default: llmtest.Step{
		Chunks: []string{"Hello", ", world"},
		Response: &llm.Response{Model: "gpt-4o-mini-2024-07-18", Quota: &quota,
			Usage: llm.Usage{InputTokens: 12, OutputTokens: 3, CachedInputTokens: 8}},
	}}))
	defer srv.Close()

	sdkClient := sdk.NewClient(option.WithAPIKey("sk-example"), option.WithBaseURL(srv.URL))
	client, err := openai.New(&sdkClient, openai.WithModel("gpt-4o-mini"))
	if err != nil {
		panic(err)
	}

	resp, err := client.Generate(context.Background(), llm.Prompt("Say hello"))
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text, "|", resp.Model, resp.FinishReason)
	fmt.Printf("usage %+v\n", resp.Usage)
	fmt.Println("requests left:", resp.Quota.RemainingRequests, "reset in", resp.Quota.ResetRequests)

	req := llm.Prompt("Say hello")
	req.Stream = func(c llm.Chunk) error {
		fmt.Printf("chunk %d: %q\n", c.Index, c.Text)
		return nil
	}
	resp, err = client.Generate(context.Background(), req)
	if err != nil {
		panic(err)
	}
	fmt.Println("streamed:", resp.Text)
	// Output:
	// Hello, world | gpt-4o-mini-2024-07-18 stop
	// usage {InputTokens:12 OutputTokens:3 CachedInputTokens:8}
	// requests left: 4999 reset in 12ms
	// chunk 0: "Hello"
	// chunk 1: ", world"
	// streamed: Hello, world
}

// Errors come back as *llm.Error: a 429 is rate_limited, retryable, with
// the server's retry-after; the SDK's own retries are off, so the one 429
// reaches the caller (or llmkit's resilience package) at once.
func ExampleClient_Generate_rateLimited() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		w.Header().Set("X-Ratelimit-Remaining-Tokens", "0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"tokens","code":"rate_limit_exceeded"}}`)
	}))
	defer srv.Close()

	client, err := openai.NewFromConfig("sk-example", srv.URL)
	if err != nil {
		panic(err)
	}
	_, err = client.Generate(context.Background(), llm.Prompt("hi"))
	fmt.Println(err)
	fmt.Println("kind:", llm.KindOf(err), "retryable:", llm.Retryable(err), "retry after:", llm.RetryAfterOf(err))
	// Output:
	// llm: openai: rate_limited (status 429): Rate limit reached for gpt-4o-mini (rate_limit_exceeded): OpenAI API error: 429 Too Many Requests
	// kind: rate_limited retryable: true retry after: 2s
}
