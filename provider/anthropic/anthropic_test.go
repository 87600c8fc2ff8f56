package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "sk-ant-test-0123456789abcdef"

// serve starts h on a loopback server closed at the end of the test.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// sdkClient builds an SDK client for srv. It keeps the SDK's default
// retries (2), as a user's client would: the adapter must turn them off.
func sdkClient(srv *httptest.Server, opts ...option.RequestOption) *sdk.Client {
	c := sdk.NewClient(append([]option.RequestOption{
		option.WithAPIKey(testKey), option.WithBaseURL(srv.URL), option.WithHTTPClient(srv.Client()),
	}, opts...)...)
	return &c
}

func newAdapter(t testing.TB, srv *httptest.Server, opts ...Option) *Client {
	c, err := New(sdkClient(srv), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	// content_filter is left out: Anthropic has no content-filter error, a
	// refusal is a successful answer with stop_reason "refusal"
	// (FinishContentFilter); TestRefusal checks that mapping.
	var kinds []llm.Kind
	for _, k := range llmtest.DefaultErrorKinds {
		if k != llm.KindContentFilter {
			kinds = append(kinds, k)
		}
	}
	llmtest.Run(t, func(t *testing.T, upstream llm.Client) llm.Client {
		return newAdapter(t, serve(t, handler(upstream)))
	}, llmtest.ErrorKinds(kinds...))
}

func TestRefusal(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			up := &llmtest.Fake{Default: llmtest.Step{Text: "I can't help with that.",
				Response: &llm.Response{FinishReason: llm.FinishContentFilter}}}
			c := newAdapter(t, serve(t, handler(up)))
			req := llm.Prompt("something refused")
			if stream {
				req.Stream = func(llm.Chunk) error { return nil }
			}
			resp, err := c.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.FinishReason != llm.FinishContentFilter || resp.FinishReason.Complete() {
				t.Fatalf("FinishReason = %q, want content_filter", resp.FinishReason)
			}
			if resp.Text != "I can't help with that." {
				t.Fatalf("Text = %q", resp.Text)
			}
		})
	}
}

// lastBody returns the fields of the last request the translator got.
func (tr *translator) lastBody(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.last == nil {
		t.Fatal("no request reached the server")
	}
	return tr.last
}

func TestRequestMapping(t *testing.T) {
	up := &llmtest.Fake{}
	tr := handler(up)
	c := newAdapter(t, serve(t, tr), WithModel("claude-default"), WithMaxTokens(333))

	t.Run("full", func(t *testing.T) {
		req := &llm.Request{
			Model:  "claude-x",
			System: "Be terse.",
			Messages: []llm.Message{
				llm.SystemMessage("Answer in French."), llm.User("hi"), llm.Assistant("salut"),
				llm.SystemMessage(""), llm.User("again"),
			},
			MaxTokens:   77,
			Temperature: llm.Ptr(0.5),
			TopP:        llm.Ptr(0.9),
			Seed:        llm.Ptr(int64(42)),
			Stop:        []string{"END", "STOP"},
			Extra:       map[string]any{"top_k": 5, "metadata": map[string]any{"user_id": "u1"}, "a.b": true},
		}
		if _, err := c.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		body := tr.lastBody(t)
		want := map[string]string{
			"model":          `"claude-x"`,
			"max_tokens":     `77`,
			"system":         `[{"text":"Be terse.\n\nAnswer in French.","type":"text"}]`,
			"messages":       `[{"content":[{"text":"hi","type":"text"}],"role":"user"},{"content":[{"text":"salut","type":"text"}],"role":"assistant"},{"content":[{"text":"again","type":"text"}],"role":"user"}]`,
			"temperature":    `0.5`,
			"top_p":          `0.9`,
			"stop_sequences": `["END","STOP"]`,
			"top_k":          `5`,
			"metadata":       `{"user_id":"u1"}`,
			"a.b":            `true`,
		}
		for k, v := range want {
			if got := compact(t, body[k]); got != v {
				t.Errorf("%s = %s, want %s", k, got, v)
			}
		}
		for k := range body {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected field %s = %s (seed must not be sent)", k, body[k])
			}
		}
	})

	t.Run("defaults and unset", func(t *testing.T) {
		if _, err := c.Generate(context.Background(), llm.Prompt("hello")); err != nil {
			t.Fatal(err)
		}
		body := tr.lastBody(t)
		if got := compact(t, body["model"]); got != `"claude-default"` {
			t.Errorf("model = %s, want the WithModel default", got)
		}
		if got := compact(t, body["max_tokens"]); got != `333` {
			t.Errorf("max_tokens = %s, want the WithMaxTokens default", got)
		}
		for _, k := range []string{"system", "temperature", "top_p", "stop_sequences", "stream", "seed"} {
			if v, ok := body[k]; ok {
				t.Errorf("%s sent (%s) though the request did not set it", k, v)
			}
		}
	})

	t.Run("temperature zero is sent", func(t *testing.T) {
		req := llm.Prompt("t0")
		req.Temperature = llm.Ptr(0.0)
		if _, err := c.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if got := compact(t, tr.lastBody(t)["temperature"]); got != "0" {
			t.Fatalf("temperature = %q, want 0", got)
		}
	})

	t.Run("stream flag", func(t *testing.T) {
		req := llm.Prompt("s")
		req.Stream = func(llm.Chunk) error { return nil }
		if _, err := c.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if got := compact(t, tr.lastBody(t)["stream"]); got != "true" {
			t.Fatalf("stream = %q, want true", got)
		}
	})
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if raw == nil {
		return "<absent>"
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRejectedBeforeCall(t *testing.T) {
	tr := handler(&llmtest.Fake{})
	c := newAdapter(t, serve(t, tr))
	cases := map[string]*llm.Request{
		"temperature above 1": {Messages: []llm.Message{llm.User("x")}, Temperature: llm.Ptr(1.5)},
		"invalid request":     {Messages: []llm.Message{llm.Assistant("no user turn")}},
		"nil request":         nil,
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			resp, err := c.Generate(context.Background(), req)
			if resp != nil || !errors.Is(err, llm.ErrBadRequest) {
				t.Fatalf("got %v, %v; want a bad_request error", resp, err)
			}
		})
	}
	if n := tr.calls.Load(); n != 0 {
		t.Fatalf("%d requests reached the server, want 0", n)
	}
	_, err := c.Generate(context.Background(), cases["temperature above 1"])
	if !strings.Contains(err.Error(), "[0, 1]") || !strings.Contains(err.Error(), "anthropic") {
		t.Fatalf("message %q does not say the range and the provider", err)
	}
}

// rawServer answers every request with status, headers and body as given.
func rawServer(t *testing.T, status int, headers map[string]string, body string) (*httptest.Server, *int64) {
	var n int64
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	return srv, &n
}

func TestResponseMapping(t *testing.T) {
	body := `{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
	"content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"Hello"},
	{"type":"tool_use","id":"toolu_1","name":"get","input":{}},{"type":"text","text":", world"}],
	"stop_reason":"%s","stop_sequence":null,
	"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":100,"output_tokens":7}}`
	reasons := map[string]llm.FinishReason{
		"end_turn": llm.FinishStop, "stop_sequence": llm.FinishStop, "max_tokens": llm.FinishLength,
		"model_context_window_exceeded": llm.FinishLength, "tool_use": llm.FinishToolCalls,
		"refusal": llm.FinishContentFilter, "pause_turn": "pause_turn",
	}
	for wire, want := range reasons {
		t.Run(wire, func(t *testing.T) {
			srv, _ := rawServer(t, 200, nil, fmt.Sprintf(body, wire))
			resp, err := newAdapter(t, srv).Generate(context.Background(), llm.Prompt("hi"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.FinishReason != want {
				t.Errorf("FinishReason = %q, want %q", resp.FinishReason, want)
			}
			if resp.Text != "Hello, world" {
				t.Errorf("Text = %q, want the text blocks joined", resp.Text)
			}
			if resp.ID != "msg_01XFDUDYJgAACzvnptvVoYEL" || resp.Model != "claude-sonnet-4-5-20250929" {
				t.Errorf("ID, Model = %q, %q", resp.ID, resp.Model)
			}
			if want := (llm.Usage{InputTokens: 115, OutputTokens: 7, CachedInputTokens: 100}); resp.Usage != want {
				t.Errorf("Usage = %+v, want %+v (input includes cache reads and writes)", resp.Usage, want)
			}
			if resp.Quota != nil {
				t.Errorf("Quota = %+v, want nil without headers", resp.Quota)
			}
		})
	}
}

func TestStreamMapping(t *testing.T) {
	events := []string{
		`event: message_start` + "\n" + `data: {"type":"message_start","message":{"id":"msg_s1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":50,"output_tokens":1}}}`,
		`event: content_block_start` + "\n" + `data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`,
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"let me see"}}`,
		`event: content_block_stop` + "\n" + `data: {"type":"content_block_stop","index":0}`,
		`event: ping` + "\n" + `data: {"type": "ping"}`,
		`event: content_block_start` + "\n" + `data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`,
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hel"}}`,
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":""}}`,
		`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"lo"}}`,
		`event: content_block_stop` + "\n" + `data: {"type":"content_block_stop","index":1}`,
		`event: message_delta` + "\n" + `data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":15}}`,
		`event: message_stop` + "\n" + `data: {"type":"message_stop"}`,
	}
	srv, _ := rawServer(t, 200, map[string]string{"Content-Type": "text/event-stream"}, strings.Join(events, "\n\n")+"\n\n")
	var chunks []llm.Chunk
	req := llm.Prompt("hi")
	req.Stream = func(c llm.Chunk) error { chunks = append(chunks, c); return nil }
	resp, err := newAdapter(t, srv).Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := []llm.Chunk{{Index: 0, Text: "Hel"}, {Index: 1, Text: "lo"}}; fmt.Sprint(chunks) != fmt.Sprint(want) {
		t.Fatalf("chunks = %v, want %v (text deltas only, empty ones skipped, Index from 0)", chunks, want)
	}
	want := llm.Response{ID: "msg_s1", Text: "Hello", Model: "claude-haiku-4-5", FinishReason: llm.FinishLength,
		Usage: llm.Usage{InputTokens: 70, OutputTokens: 15, CachedInputTokens: 50}}
	if *resp != want {
		t.Fatalf("resp = %+v\nwant   %+v", *resp, want)
	}
}

func TestErrorMapping(t *testing.T) {
	env := func(typ, msg string) string {
		return `{"type":"error","error":{"type":"` + typ + `","message":"` + msg + `"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}`
	}
	cases := []struct {
		name    string
		status  int
		headers map[string]string
		body    string
		kind    llm.Kind
		retry   time.Duration
		message string
	}{
		{"rate limit", 429, map[string]string{"Retry-After": "7"}, env("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
			llm.KindRateLimited, 7 * time.Second, "per-minute rate limit"},
		{"overloaded", 529, nil, env("overloaded_error", "Overloaded"), llm.KindOverloaded, 0, "Overloaded"},
		{"overloaded with retry-after", 529, map[string]string{"Retry-After": "2"}, env("overloaded_error", "Overloaded"), llm.KindOverloaded, 2 * time.Second, "Overloaded"},
		{"api error", 500, nil, env("api_error", "Internal server error"), llm.KindUnavailable, 0, "Internal server error"},
		{"503 html", 503, map[string]string{"Content-Type": "text/html"}, "<html>upstream connect error</html>", llm.KindUnavailable, 0, "Service Unavailable"},
		{"504 empty", 504, nil, "", llm.KindUnavailable, 0, "Gateway Timeout"},
		{"408", 408, nil, env("timeout_error", "Request timeout"), llm.KindTimeout, 0, "Request timeout"},
		{"408 without body", 408, nil, "", llm.KindTimeout, 0, "Request Timeout"},
		{"401", 401, nil, env("authentication_error", "invalid x-api-key"), llm.KindAuth, 0, "invalid"},
		{"403", 403, nil, env("permission_error", "Your API key does not have permission to use the specified resource."), llm.KindAuth, 0, "permission"},
		{"402 billing", 402, nil, env("billing_error", "Your credit balance is too low"), llm.KindAuth, 0, "credit balance"},
		{"400", 400, nil, env("invalid_request_error", "messages: at least one message is required"), llm.KindBadRequest, 0, "at least one message"},
		{"prompt too long", 400, nil, env("invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"), llm.KindContextLength, 0, "prompt is too long"},
		{"context limit", 400, nil, env("invalid_request_error", "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000, decrease input length or `max_tokens` and try again"), llm.KindContextLength, 0, "exceed context limit"},
		{"404 model", 404, nil, env("not_found_error", "model: claude-nope"), llm.KindBadRequest, 0, "claude-nope"},
		{"413", 413, nil, env("request_too_large", "Request exceeds the maximum allowed number of bytes."), llm.KindBadRequest, 0, "maximum allowed"},
		{"413 from a proxy", 413, map[string]string{"Content-Type": "text/plain"}, "too big", llm.KindBadRequest, 0, "Request Entity Too Large"},
		{"unknown type, status decides", 429, map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, env("brand_new_error", "slow down"), llm.KindRateLimited, 0, "slow down"},
	}
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tc.name, stream), func(t *testing.T) {
				srv, n := rawServer(t, tc.status, tc.headers, tc.body)
				req := llm.Prompt("hi")
				if stream {
					req.Stream = func(llm.Chunk) error { t.Error("chunk from an error response"); return nil }
				}
				resp, err := newAdapter(t, srv).Generate(context.Background(), req)
				var e *llm.Error
				if resp != nil || !errors.As(err, &e) {
					t.Fatalf("got %v, %v; want an *llm.Error", resp, err)
				}
				if e.Kind != tc.kind || e.Status != tc.status || e.Provider != "anthropic" || e.RetryAfter != tc.retry {
					t.Errorf("kind %v status %d provider %q retry %v; want %v %d anthropic %v",
						e.Kind, e.Status, e.Provider, e.RetryAfter, tc.kind, tc.status, tc.retry)
				}
				if !strings.Contains(e.Message, tc.message) {
					t.Errorf("Message = %q, want it to contain %q", e.Message, tc.message)
				}
				if *n != 1 {
					t.Errorf("%d HTTP requests, want exactly 1", *n)
				}
				var aerr *sdk.Error
				if strings.HasPrefix(tc.body, "{") && !errors.As(err, &aerr) {
					t.Errorf("errors.As does not reach the SDK's error")
				}
			})
		}
	}
}

func TestServerErrorCostsOneRequest(t *testing.T) {
	for _, status := range []int{500, 502, 503, 529, 429} {
		srv, n := rawServer(t, status, map[string]string{"Retry-After": "0"}, `{"type":"error","error":{"type":"api_error","message":"x"}}`)
		builds := map[string]func() *Client{
			"New": func() *Client { return newAdapter(t, srv) },
			"NewFromConfig": func() *Client {
				c, err := NewFromConfig(testKey, srv.URL, WithRequestOptions(option.WithHTTPClient(srv.Client())))
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
		}
		for name, build := range builds {
			c := build()
			for _, stream := range []bool{false, true} {
				*n = 0
				req := llm.Prompt("hi")
				if stream {
					req.Stream = func(llm.Chunk) error { return nil }
				}
				if _, err := c.Generate(context.Background(), req); err == nil {
					t.Fatalf("%d: no error", status)
				}
				if *n != 1 {
					t.Errorf("%s, status %d, stream=%v: %d HTTP requests per Generate, want 1", name, status, stream, *n)
				}
			}
		}
	}
}

func TestQuota(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	want := &llm.Quota{LimitRequests: 4000, RemainingRequests: 3999, LimitTokens: 400000, RemainingTokens: 399000,
		ResetRequests: 15 * time.Second, ResetTokens: 2 * time.Second}
	up := &llmtest.Fake{Steps: []llmtest.Step{{}, {}, {Err: llmtest.Error(llm.KindRateLimited)}, {Chunks: []string{"a"}, CutAfter: 1}}}
	tr := handler(up)
	tr.headers = quotaHeaders(base)
	c := newAdapter(t, serve(t, tr))
	c.now = func() time.Time { return base }

	resp, err := c.Generate(context.Background(), llm.Prompt("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Quota == nil || *resp.Quota != *want {
		t.Fatalf("Quota = %+v, want %+v", resp.Quota, want)
	}
	req := llm.Prompt("stream")
	req.Stream = func(llm.Chunk) error { return nil }
	if resp, err = c.Generate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if resp.Quota == nil || *resp.Quota != *want {
		t.Fatalf("streamed: Quota = %+v, want %+v", resp.Quota, want)
	}
	for _, name := range []string{"error response", "cut stream"} {
		req := llm.Prompt(name)
		if name == "cut stream" {
			req.Stream = func(llm.Chunk) error { return nil }
		}
		_, err = c.Generate(context.Background(), req)
		var e *llm.Error
		if !errors.As(err, &e) || e.Quota == nil || *e.Quota != *want {
			t.Fatalf("%s: %v: Quota = %+v, want %+v", name, err, e, want)
		}
	}
}

func TestStreamErrorEvent(t *testing.T) {
	up := &llmtest.Fake{Default: llmtest.Step{Chunks: []string{"one", " two", " three"}, CutAfter: 2,
		Err: llmtest.Error(llm.KindOverloaded)}}
	c := newAdapter(t, serve(t, handler(up)))
	var got []string
	req := llm.Prompt("hi")
	req.Stream = func(ch llm.Chunk) error { got = append(got, ch.Text); return nil }
	resp, err := c.Generate(context.Background(), req)
	var e *llm.Error
	if resp != nil || !errors.As(err, &e) || e.Kind != llm.KindOverloaded || !llm.Retryable(err) {
		t.Fatalf("got %v, %v; want an overloaded error", resp, err)
	}
	if e.Status != 0 || e.Message != "Overloaded" {
		t.Errorf("Status %d Message %q: an error event has no status of its own", e.Status, e.Message)
	}
	if strings.Join(got, "") != "one two" {
		t.Errorf("chunks before the error = %q", got)
	}
}

func TestStreamBroken(t *testing.T) {
	head := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"par\"}}\n\n"
	cases := map[string]struct {
		write func(w http.ResponseWriter)
		kind  llm.Kind
	}{
		"connection dropped": {func(w http.ResponseWriter) {
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, llm.KindStreamCut},
		"clean end without message_stop": {func(http.ResponseWriter) {}, llm.KindStreamCut},
		"undecodable event": {func(w http.ResponseWriter) {
			_, _ = w.Write([]byte("event: content_block_delta\ndata: {not json\n\n"))
		}, llm.KindUnknown},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = w.Write([]byte(head))
				tc.write(w)
			}))
			var got string
			req := llm.Prompt("hi")
			req.Stream = func(ch llm.Chunk) error { got += ch.Text; return nil }
			resp, err := newAdapter(t, srv).Generate(context.Background(), req)
			if resp != nil || llm.KindOf(err) != tc.kind {
				t.Fatalf("got %v, %v; want kind %v", resp, err, tc.kind)
			}
			if got != "par" {
				t.Fatalf("chunks = %q", got)
			}
		})
	}
}

func TestStreamCallbackErrorStopsServer(t *testing.T) {
	// The callback's error is returned as is and the request is canceled:
	// the server sees its request context end.
	serverDone := make(chan error, 1)
	up := llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
		for i := 0; ; i++ {
			if err := req.Stream(llm.Chunk{Index: i, Text: "x"}); err != nil {
				serverDone <- err
				return nil, err
			}
			if i == 1 {
				<-ctx.Done() // wait until the client has gone
			}
		}
	})
	c := newAdapter(t, serve(t, handler(up)))
	stop := errors.New("enough")
	req := llm.Prompt("hi")
	req.Stream = func(ch llm.Chunk) error {
		if ch.Index == 1 {
			return stop
		}
		return nil
	}
	_, err := c.Generate(context.Background(), req)
	if err != stop {
		t.Fatalf("err = %v, want the callback's error itself", err)
	}
	if err := <-serverDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("server saw %v, want its request canceled", err)
	}
}

func TestTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := NewFromConfig(testKey, "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Generate(context.Background(), llm.Prompt("hi"))
	if llm.KindOf(err) != llm.KindUnavailable || !llm.Retryable(err) {
		t.Fatalf("connection refused: %v, want unavailable", err)
	}

	hang := make(chan struct{})
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hang:
		}
	}))
	defer close(hang)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = newAdapter(t, srv).Generate(ctx, llm.Prompt("hi"))
	var e *llm.Error
	if !errors.As(err, &e) || e.Kind != llm.KindTimeout || e.Provider != "anthropic" {
		t.Fatalf("deadline: %v, want an anthropic timeout", err)
	}
}
