package openai_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/openai"
	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// The benchmarks compare the adapter with a raw SDK call for the same
// request against the same loopback server, so their ratio is the
// adapter's overhead:
//
//	go test -run '^$' -bench 'RawSDK|Adapter' -benchmem -count 6 ./provider/openai/

const benchCompletion = `{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"The capital of France is Paris.","refusal":null},"logprobs":null,"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":24,"completion_tokens":8,"total_tokens":32,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`

var benchStream = func() string {
	var b strings.Builder
	for i, w := range strings.Fields("The capital of France is Paris.") {
		if i > 0 {
			w = " " + w
		}
		fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", w)
	}
	b.WriteString("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
	b.WriteString("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":24,\"completion_tokens\":8,\"total_tokens\":32}}\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}()

func benchServer(b *testing.B) *sdk.Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Ratelimit-Limit-Requests"] = []string{"10000"}
		h["X-Ratelimit-Remaining-Requests"] = []string{"9999"}
		h["X-Ratelimit-Limit-Tokens"] = []string{"2000000"}
		h["X-Ratelimit-Remaining-Tokens"] = []string{"1999968"}
		h["X-Ratelimit-Reset-Requests"] = []string{"6ms"}
		h["X-Ratelimit-Reset-Tokens"] = []string{"0s"}
		// The SDK sets "stream": true by option, after encoding the
		// params, so look for it in the body.
		var buf [4096]byte
		n, _ := r.Body.Read(buf[:])
		if strings.Contains(string(buf[:n]), `"stream":true`) {
			h["Content-Type"] = []string{"text/event-stream"}
			_, _ = w.Write([]byte(benchStream))
			return
		}
		h["Content-Type"] = []string{"application/json"}
		_, _ = w.Write([]byte(benchCompletion))
	}))
	b.Cleanup(srv.Close)
	return sdkClientFor(b, srv.URL, option.WithMaxRetries(0))
}

const benchPrompt = "What is the capital of France? Answer in one sentence."

func benchRequest() *llm.Request {
	return &llm.Request{
		Model:       "gpt-4o-mini",
		System:      "You are terse.",
		Messages:    []llm.Message{llm.User(benchPrompt)},
		MaxTokens:   64,
		Temperature: llm.Ptr(0.0),
	}
}

func rawParams() sdk.ChatCompletionNewParams {
	return sdk.ChatCompletionNewParams{
		Model:               "gpt-4o-mini",
		Messages:            []sdk.ChatCompletionMessageParamUnion{sdk.SystemMessage("You are terse."), sdk.UserMessage(benchPrompt)},
		MaxCompletionTokens: sdk.Int(64),
		Temperature:         sdk.Float(0),
	}
}

func BenchmarkRawSDK(b *testing.B) {
	client := benchServer(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		comp, err := client.Chat.Completions.New(ctx, rawParams())
		if err != nil || len(comp.Choices) == 0 || comp.Choices[0].Message.Content == "" {
			b.Fatal(err)
		}
	}
}

func BenchmarkAdapter(b *testing.B) {
	client, err := openai.New(benchServer(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Generate(ctx, benchRequest())
		if err != nil || resp.Text == "" || resp.Quota == nil {
			b.Fatal(resp, err)
		}
	}
}

func BenchmarkRawSDKStream(b *testing.B) {
	client := benchServer(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		params := rawParams()
		params.StreamOptions.IncludeUsage = sdk.Bool(true)
		s := client.Chat.Completions.NewStreaming(ctx, params)
		var text strings.Builder
		for s.Next() {
			for _, c := range s.Current().Choices {
				text.WriteString(c.Delta.Content)
			}
		}
		if s.Err() != nil || text.Len() == 0 {
			b.Fatal(s.Err())
		}
		s.Close()
	}
}

func BenchmarkAdapterStream(b *testing.B) {
	client, err := openai.New(benchServer(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req := benchRequest()
		req.Stream = func(llm.Chunk) error { return nil }
		resp, err := client.Generate(ctx, req)
		if err != nil || resp.Text == "" {
			b.Fatal(resp, err)
		}
	}
}

// BenchmarkAdapterParallel is the adapter on the shared hot path: one
// client, many goroutines.
func BenchmarkAdapterParallel(b *testing.B) {
	client, err := openai.New(benchServer(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Generate(context.Background(), benchRequest()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOverhead interleaves a raw SDK call and an adapter call for the
// same request in every iteration, so that load from other processes hits
// both alike, and reports adapter time / raw time as "ratio" (target
// ≤ 1.05). ns/op is the pair.
func BenchmarkOverhead(b *testing.B) {
	for _, stream := range []bool{false, true} {
		name := "Generate"
		if stream {
			name = "Stream"
		}
		b.Run(name, func(b *testing.B) {
			sdkClient := benchServer(b)
			client, err := openai.New(sdkClient)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var raw, adapter time.Duration
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				if stream {
					params := rawParams()
					params.StreamOptions.IncludeUsage = sdk.Bool(true)
					s := sdkClient.Chat.Completions.NewStreaming(ctx, params)
					var text strings.Builder
					for s.Next() {
						for _, c := range s.Current().Choices {
							text.WriteString(c.Delta.Content)
						}
					}
					if s.Err() != nil || text.Len() == 0 {
						b.Fatal(s.Err())
					}
					s.Close()
				} else {
					comp, err := sdkClient.Chat.Completions.New(ctx, rawParams())
					if err != nil || comp.Choices[0].Message.Content == "" {
						b.Fatal(err)
					}
				}
				t1 := time.Now()
				req := benchRequest()
				if stream {
					req.Stream = func(llm.Chunk) error { return nil }
				}
				if resp, err := client.Generate(ctx, req); err != nil || resp.Text == "" {
					b.Fatal(err)
				}
				t2 := time.Now()
				raw += t1.Sub(t0)
				adapter += t2.Sub(t1)
			}
			b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(adapter.Nanoseconds())/float64(b.N), "adapter-ns/op")
			b.ReportMetric(float64(adapter)/float64(raw), "ratio")
		})
	}
}
