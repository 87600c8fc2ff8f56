package openai_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// server translates the OpenAI chat completions wire format to an upstream
// llm.Client (an llmtest.Fake) and back: JSON bodies, SSE streams ending in
// "data: [DONE]", and {"error": {...}} bodies with the statuses and headers
// OpenAI sends.
type server struct {
	upstream llm.Client
	// compat leaves out what some OpenAI-compatible servers leave out: ids,
	// created, usage, and the usage chunk of a stream.
	compat bool
	// headers are added to every response (x-ratelimit-*, say).
	headers http.Header

	requests atomic.Int64
	mu       sync.Mutex
	bodies   []map[string]json.RawMessage
}

func handler(upstream llm.Client) http.Handler { return &server{upstream: upstream} }

// lastBody returns the JSON body of the latest request.
func (s *server) lastBody(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bodies) == 0 {
		t.Fatal("the server received no request")
	}
	return s.bodies[len(s.bodies)-1]
}

type wireMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type wireRequest struct {
	Model               string          `json:"model"`
	Messages            []wireMessage   `json:"messages"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MaxTokens           *int            `json:"max_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

var knownFields = map[string]bool{
	"model": true, "messages": true, "max_completion_tokens": true, "max_tokens": true,
	"temperature": true, "top_p": true, "seed": true, "stop": true, "stream": true, "stream_options": true,
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	for k, v := range s.headers {
		w.Header()[k] = v
	}
	if r.Method != http.MethodPost || r.URL.Path != "/chat/completions" {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "no route "+r.URL.Path, 0)
		return
	}
	var all map[string]json.RawMessage
	var wr wireRequest
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&all); err != nil {
		writeError(w, 400, "invalid_request_error", "", "body is not JSON: "+err.Error(), 0)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, all)
	s.mu.Unlock()
	raw, _ := json.Marshal(all)
	if err := json.Unmarshal(raw, &wr); err != nil {
		writeError(w, 400, "invalid_request_error", "", "bad field: "+err.Error(), 0)
		return
	}

	req := &llm.Request{Model: wr.Model, Temperature: wr.Temperature, TopP: wr.TopP, Seed: wr.Seed}
	msgs := wr.Messages
	if len(msgs) > 0 && msgs[0].Role == "system" {
		req.System = msgs[0].Content
		msgs = msgs[1:]
	}
	for _, m := range msgs {
		req.Messages = append(req.Messages, llm.Message{Role: llm.Role(m.Role), Content: m.Content})
	}
	switch {
	case wr.MaxCompletionTokens != nil:
		req.MaxTokens = *wr.MaxCompletionTokens
	case wr.MaxTokens != nil:
		req.MaxTokens = *wr.MaxTokens
	}
	if len(wr.Stop) > 0 {
		if err := json.Unmarshal(wr.Stop, &req.Stop); err != nil {
			var one string
			if json.Unmarshal(wr.Stop, &one) == nil {
				req.Stop = []string{one}
			}
		}
	}
	for k, v := range all {
		if !knownFields[k] {
			if req.Extra == nil {
				req.Extra = map[string]any{}
			}
			var x any
			_ = json.Unmarshal(v, &x)
			req.Extra[k] = x
		}
	}

	id, created := "chatcmpl-test123", time.Now().Unix()
	if s.compat {
		id, created = "", 0
	}
	if !wr.Stream {
		resp, err := s.upstream.Generate(r.Context(), req)
		if err != nil {
			writeLLMError(w, err)
			return
		}
		writeQuota(w, resp.Quota)
		w.Header().Set("Content-Type", "application/json")
		body := map[string]any{
			"object": "chat.completion", "model": resp.Model,
			"choices": []any{map[string]any{
				"index":         0,
				"message":       map[string]any{"role": "assistant", "content": resp.Text, "refusal": nil},
				"logprobs":      nil,
				"finish_reason": string(resp.FinishReason),
			}},
		}
		if !s.compat {
			body["id"], body["created"] = id, created
			body["usage"] = wireUsage(resp.Usage)
		}
		_ = json.NewEncoder(w).Encode(body)
		return
	}

	flusher := w.(http.Flusher)
	started := false
	start := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
		}
	}
	event := func(v any) error {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		c := map[string]any{
			"object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
		if !s.compat {
			c["id"], c["created"] = id, created
		}
		return c
	}
	req.Stream = func(c llm.Chunk) error {
		first := !started
		start()
		delta := map[string]any{"content": c.Text}
		if first {
			delta["role"] = "assistant"
		}
		return event(chunk(delta, nil))
	}
	resp, err := s.upstream.Generate(r.Context(), req)
	if err != nil {
		if !started {
			writeLLMError(w, err)
			return
		}
		if llm.KindOf(err) == llm.KindStreamCut {
			return // the body ends: no finish reason, no [DONE]
		}
		e := wireErrorOf(err)
		_ = event(map[string]any{"error": map[string]any{"message": e.message, "type": e.typ, "code": e.code}})
		return
	}
	start()
	_ = event(chunk(map[string]any{}, string(resp.FinishReason)))
	if wr.StreamOptions != nil && wr.StreamOptions.IncludeUsage && !s.compat {
		_ = event(map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": resp.Model,
			"choices": []any{}, "usage": wireUsage(resp.Usage),
		})
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
	flusher.Flush()
}

func wireUsage(u llm.Usage) map[string]any {
	return map[string]any{
		"prompt_tokens": u.InputTokens, "completion_tokens": u.OutputTokens, "total_tokens": u.Total(),
		"prompt_tokens_details":     map[string]any{"cached_tokens": u.CachedInputTokens, "audio_tokens": 0},
		"completion_tokens_details": map[string]any{"reasoning_tokens": 0},
	}
}

func writeQuota(w http.ResponseWriter, q *llm.Quota) {
	if q == nil {
		return
	}
	h := w.Header()
	set := func(k string, v int64) {
		if v >= 0 {
			h.Set(k, strconv.FormatInt(v, 10))
		}
	}
	set("x-ratelimit-limit-requests", q.LimitRequests)
	set("x-ratelimit-remaining-requests", q.RemainingRequests)
	set("x-ratelimit-limit-tokens", q.LimitTokens)
	set("x-ratelimit-remaining-tokens", q.RemainingTokens)
	if q.ResetRequests > 0 {
		h.Set("x-ratelimit-reset-requests", q.ResetRequests.String())
	}
	if q.ResetTokens > 0 {
		h.Set("x-ratelimit-reset-tokens", q.ResetTokens.String())
	}
}

type wireError struct {
	status     int
	typ, code  string
	message    string
	retryAfter time.Duration
}

// wireErrorOf renders an upstream error the way OpenAI would send it.
func wireErrorOf(err error) wireError {
	var e *llm.Error
	if !errors.As(err, &e) {
		return wireError{status: 500, typ: "server_error", message: "upstream: " + err.Error()}
	}
	w := wireError{status: llmtest.StatusFor(e.Kind), message: e.Message, retryAfter: e.RetryAfter}
	switch e.Kind {
	case llm.KindRateLimited:
		w.typ, w.code = "requests", "rate_limit_exceeded"
	case llm.KindContextLength:
		w.typ, w.code = "invalid_request_error", "context_length_exceeded"
	case llm.KindContentFilter:
		w.typ, w.code = "invalid_request_error", "content_filter"
	case llm.KindAuth:
		w.typ, w.code = "invalid_request_error", "invalid_api_key"
	case llm.KindBadRequest:
		w.typ = "invalid_request_error"
	case llm.KindOverloaded:
		w.typ = "overloaded_error"
	case llm.KindTimeout:
		w.typ = "timeout"
	default:
		w.typ = "server_error"
	}
	if w.status == 0 {
		w.status = 500
	}
	return w
}

func writeLLMError(w http.ResponseWriter, err error) {
	if e := (*llm.Error)(nil); errors.As(err, &e) && e.Quota != nil {
		writeQuota(w, e.Quota)
	}
	we := wireErrorOf(err)
	writeError(w, we.status, we.typ, we.code, we.message, we.retryAfter)
}

// writeError writes an OpenAI error body; a RetryAfter becomes a
// retry-after header in whole seconds, rounded up.
func writeError(w http.ResponseWriter, status int, typ, code, message string, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("retry-after", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	var c any
	if code != "" {
		c = code
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"message": message, "type": typ, "param": nil, "code": c},
	})
}

const testKey = "sk-test-0123456789abcdefghij"

// sdkClientFor builds an SDK client for a test server, with its own
// transport so the test's idle connections are closed when it ends.
func sdkClientFor(t testing.TB, url string, opts ...option.RequestOption) *sdk.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	all := append([]option.RequestOption{
		option.WithBaseURL(url),
		option.WithAPIKey(testKey),
		option.WithHTTPClient(&http.Client{Transport: tr}),
	}, opts...)
	c := sdk.NewClient(all...)
	return &c
}
