package anthropic_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/anthropic"
)

// fakeAPI stands in for api.anthropic.com: it answers every call with
// status and body, as the Messages API would.
func fakeAPI(status int, header map[string]string, body string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
}

// Wrap an SDK client you already have; the adapter turns its retries off.
func ExampleNew() {
	srv := fakeAPI(200, map[string]string{"anthropic-ratelimit-requests-remaining": "49"},
		`{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
		  "content":[{"type":"text","text":"Bonjour !"}],"stop_reason":"end_turn","stop_sequence":null,
		  "usage":{"input_tokens":10,"cache_read_input_tokens":30,"cache_creation_input_tokens":0,"output_tokens":4}}`)
	defer srv.Close()

	sc := sdk.NewClient(option.WithAPIKey("sk-ant-example"), option.WithBaseURL(srv.URL),
		option.WithHTTPClient(srv.Client()))
	client, err := anthropic.New(&sc, anthropic.WithModel("claude-sonnet-4-5"), anthropic.WithMaxTokens(512))
	if err != nil {
		panic(err)
	}
	resp, err := client.Generate(context.Background(), llm.Prompt("Say hello in French."))
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text, resp.FinishReason)
	fmt.Printf("input %d (cached %d), output %d\n", resp.Usage.InputTokens, resp.Usage.CachedInputTokens, resp.Usage.OutputTokens)
	fmt.Println("requests left:", resp.Quota.RemainingRequests)
	// Output:
	// Bonjour ! stop
	// input 40 (cached 30), output 4
	// requests left: 49
}

// An overloaded API is a retryable *llm.Error of kind overloaded, after
// exactly one HTTP request.
func ExampleClient_Generate_overloaded() {
	srv := fakeAPI(529, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	defer srv.Close()

	sc := sdk.NewClient(option.WithAPIKey("sk-ant-example"), option.WithBaseURL(srv.URL),
		option.WithHTTPClient(srv.Client()))
	client, _ := anthropic.New(&sc)
	_, err := client.Generate(context.Background(), llm.Prompt("hi"))
	fmt.Println(errors.Is(err, llm.ErrOverloaded), llm.Retryable(err))
	var e *llm.Error
	errors.As(err, &e)
	fmt.Println(e.Provider, e.Status, e.Message)
	// Output:
	// true true
	// anthropic 529 Overloaded
}
