package openai_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/provider/openai"
	"github.com/openai/openai-go/v3/option"
)

// sent runs req through the adapter and returns the JSON body the server
// received, plus the request the upstream fake saw.
func sent(t *testing.T, req *llm.Request, opts ...openai.Option) (map[string]json.RawMessage, llm.Request) {
	t.Helper()
	up := &llmtest.Fake{}
	s := &server{upstream: up}
	c := newTestClient(t, s, opts...)
	if _, err := c.Generate(context.Background(), req); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return s.lastBody(t), up.Requests()[0]
}

func TestMappingOptionalFields(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(*llm.Request)
		field string
		want  string // "" means the field must be absent
	}{
		{"temperature unset", func(*llm.Request) {}, "temperature", ""},
		{"temperature zero", func(r *llm.Request) { r.Temperature = llm.Ptr(0.0) }, "temperature", "0"},
		{"temperature set", func(r *llm.Request) { r.Temperature = llm.Ptr(0.7) }, "temperature", "0.7"},
		{"top_p unset", func(*llm.Request) {}, "top_p", ""},
		{"top_p zero", func(r *llm.Request) { r.TopP = llm.Ptr(0.0) }, "top_p", "0"},
		{"top_p set", func(r *llm.Request) { r.TopP = llm.Ptr(0.9) }, "top_p", "0.9"},
		{"seed unset", func(*llm.Request) {}, "seed", ""},
		{"seed zero", func(r *llm.Request) { r.Seed = llm.Ptr(int64(0)) }, "seed", "0"},
		{"seed set", func(r *llm.Request) { r.Seed = llm.Ptr(int64(42)) }, "seed", "42"},
		{"max tokens unset", func(*llm.Request) {}, "max_completion_tokens", ""},
		{"max tokens set", func(r *llm.Request) { r.MaxTokens = 64 }, "max_completion_tokens", "64"},
		{"max tokens not legacy", func(r *llm.Request) { r.MaxTokens = 64 }, "max_tokens", ""},
		{"stop unset", func(*llm.Request) {}, "stop", ""},
		{"stop set", func(r *llm.Request) { r.Stop = []string{"END", "\n\n"} }, "stop", `["END","\n\n"]`},
		{"extra", func(r *llm.Request) { r.Extra = map[string]any{"reasoning_effort": "low"} }, "reasoning_effort", `"low"`},
		{"extra absent", func(*llm.Request) {}, "reasoning_effort", ""},
		{"no stream field", func(*llm.Request) {}, "stream", ""},
		{"no stream options", func(*llm.Request) {}, "stream_options", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := llm.Prompt("hi")
			req.Model = "m"
			tc.set(req)
			body, _ := sent(t, req)
			got, ok := body[tc.field]
			if tc.want == "" {
				if ok {
					t.Fatalf("%s = %s, want it absent", tc.field, got)
				}
				return
			}
			if !ok {
				t.Fatalf("%s absent, want %s (body %v)", tc.field, tc.want, body)
			}
			if string(got) != tc.want {
				t.Fatalf("%s = %s, want %s", tc.field, got, tc.want)
			}
		})
	}
}

func TestMappingMessagesAndRoundTrip(t *testing.T) {
	req := &llm.Request{
		Model:  "gpt-test",
		System: "be terse",
		Messages: []llm.Message{
			llm.User("q1"), llm.Assistant("a1"), llm.SystemMessage("mid-system"), llm.User("q2"),
		},
		MaxTokens:   32,
		Temperature: llm.Ptr(0.0),
		TopP:        llm.Ptr(1.0),
		Seed:        llm.Ptr(int64(7)),
		Stop:        []string{"END"},
		Extra:       map[string]any{"user": "u-1"},
	}
	body, seen := sent(t, req)
	var msgs []wireMessage
	if err := json.Unmarshal(body["messages"], &msgs); err != nil {
		t.Fatal(err)
	}
	want := []wireMessage{
		{"system", "be terse"}, {"user", "q1"}, {"assistant", "a1"}, {"system", "mid-system"}, {"user", "q2"},
	}
	if !reflect.DeepEqual(msgs, want) {
		t.Fatalf("messages = %+v, want %+v", msgs, want)
	}
	// What the upstream saw through the wire equals what was asked.
	want2 := *req
	want2.Stream = nil
	if seen.Model != want2.Model || seen.System != want2.System || !reflect.DeepEqual(seen.Messages, want2.Messages) ||
		seen.MaxTokens != 32 || *seen.Temperature != 0 || *seen.TopP != 1 || *seen.Seed != 7 ||
		!reflect.DeepEqual(seen.Stop, want2.Stop) || seen.Extra["user"] != "u-1" {
		t.Fatalf("upstream saw %+v, want %+v", seen, want2)
	}
}

func TestMappingModel(t *testing.T) {
	t.Run("default used when unset", func(t *testing.T) {
		body, _ := sent(t, llm.Prompt("hi"), openai.WithModel("default-model"))
		if string(body["model"]) != `"default-model"` {
			t.Fatalf("model = %s", body["model"])
		}
	})
	t.Run("request wins", func(t *testing.T) {
		req := llm.Prompt("hi")
		req.Model = "asked"
		body, _ := sent(t, req, openai.WithModel("default-model"))
		if string(body["model"]) != `"asked"` {
			t.Fatalf("model = %s", body["model"])
		}
	})
	t.Run("none at all is omitted", func(t *testing.T) {
		body, _ := sent(t, llm.Prompt("hi"))
		if m, ok := body["model"]; ok {
			t.Fatalf("model = %s, want it absent", m)
		}
	})
}

func TestMappingLegacyMaxTokens(t *testing.T) {
	req := llm.Prompt("hi")
	req.MaxTokens = 10
	body, seen := sent(t, req, openai.WithLegacyMaxTokens())
	if string(body["max_tokens"]) != "10" {
		t.Fatalf("max_tokens = %s, want 10", body["max_tokens"])
	}
	if _, ok := body["max_completion_tokens"]; ok {
		t.Fatal("max_completion_tokens sent with WithLegacyMaxTokens")
	}
	if seen.MaxTokens != 10 {
		t.Fatalf("upstream saw MaxTokens %d", seen.MaxTokens)
	}
}

func TestMappingStreamOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []openai.Option
		want string
	}{
		{"include_usage by default", nil, `{"include_usage":true}`},
		{"WithoutStreamUsage", []openai.Option{openai.WithoutStreamUsage()}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := llm.Prompt("hi")
			req.Stream = func(llm.Chunk) error { return nil }
			body, _ := sent(t, req, tc.opts...)
			if string(body["stream"]) != "true" {
				t.Fatalf("stream = %s, want true", body["stream"])
			}
			got, ok := body["stream_options"]
			if tc.want == "" && ok {
				t.Fatalf("stream_options = %s, want absent", got)
			}
			if tc.want != "" && string(got) != tc.want {
				t.Fatalf("stream_options = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestResponseMapping(t *testing.T) {
	for _, stream := range []bool{false, true} {
		for _, fr := range []llm.FinishReason{llm.FinishStop, llm.FinishLength, llm.FinishContentFilter, llm.FinishToolCalls} {
			t.Run(string(fr)+map[bool]string{false: "", true: "/stream"}[stream], func(t *testing.T) {
				up := &llmtest.Fake{Default: llmtest.Step{
					Chunks: []string{"Hello", ", ", "", "world"},
					Response: &llm.Response{Model: "gpt-resolved-2025", FinishReason: fr,
						Usage: llm.Usage{InputTokens: 11, OutputTokens: 3, CachedInputTokens: 8}},
				}}
				c := newTestClient(t, &server{upstream: up})
				req := llm.Prompt("hi")
				var chunks []llm.Chunk
				if stream {
					req.Stream = func(ch llm.Chunk) error { chunks = append(chunks, ch); return nil }
				}
				resp, err := c.Generate(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				want := llm.Response{ID: "chatcmpl-test123", Text: "Hello, world", Model: "gpt-resolved-2025", FinishReason: fr,
					Usage: llm.Usage{InputTokens: 11, OutputTokens: 3, CachedInputTokens: 8}}
				if !reflect.DeepEqual(*resp, want) {
					t.Fatalf("response = %+v, want %+v", *resp, want)
				}
				if stream {
					// The empty delta is skipped; indexes stay dense.
					wantChunks := []llm.Chunk{{Index: 0, Text: "Hello"}, {Index: 1, Text: ", "}, {Index: 2, Text: "world"}}
					if !reflect.DeepEqual(chunks, wantChunks) {
						t.Fatalf("chunks = %+v, want %+v", chunks, wantChunks)
					}
				}
			})
		}
	}
}

func TestCompatServerWithoutUsageOrIDs(t *testing.T) {
	for _, stream := range []bool{false, true} {
		up := &llmtest.Fake{Default: llmtest.Step{Text: "local answer",
			Response: &llm.Response{Model: "llama3.2", Usage: llm.Usage{InputTokens: 5, OutputTokens: 2}}}}
		c := newTestClient(t, &server{upstream: up, compat: true}, openai.WithModel("llama3.2"))
		req := llm.Prompt("hi")
		if stream {
			req.Stream = func(llm.Chunk) error { return nil }
		}
		resp, err := c.Generate(context.Background(), req)
		if err != nil {
			t.Fatalf("stream=%v: %v", stream, err)
		}
		if resp.Text != "local answer" || resp.ID != "" || resp.Usage != (llm.Usage{}) || resp.FinishReason != llm.FinishStop || resp.Quota != nil {
			t.Fatalf("stream=%v: response = %+v", stream, resp)
		}
	}
}

func TestRequestOptionsReachServer(t *testing.T) {
	got := make(chan string, 1)
	c := rawClient(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-Tenant-Route")
		writeCompletion(w, "ok")
	}, openai.WithRequestOptions(nil, option.WithHeader("X-Tenant-Route", "blue")))
	if _, err := c.Generate(context.Background(), llm.Prompt("hi")); err != nil {
		t.Fatal(err)
	}
	if h := <-got; h != "blue" {
		t.Fatalf("header = %q, want blue", h)
	}
}
