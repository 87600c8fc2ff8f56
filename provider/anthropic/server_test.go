package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

// translator is an httptest handler that speaks the Messages API wire
// format (JSON bodies, SSE streams, error envelopes) and answers with what
// its upstream llm.Client says: llmtest's Fake, in the tests.
type translator struct {
	upstream llm.Client
	// headers are added to every response (the quota headers, say).
	headers http.Header
	// echoKey makes auth errors quote the x-api-key they got, as a careless
	// proxy might: the canary test checks that it never reaches our errors.
	echoKey bool

	calls atomic.Int64
	mu    sync.Mutex
	last  map[string]json.RawMessage // the last request body, by field
}

func handler(upstream llm.Client) *translator { return &translator{upstream: upstream} }

// wireRequest is the part of a Messages request the translator reads.
type wireRequest struct {
	Model         string          `json:"model"`
	MaxTokens     int             `json:"max_tokens"`
	System        json.RawMessage `json:"system"`
	Messages      []wireMessage   `json:"messages"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	StopSequences []string        `json:"stop_sequences"`
	Stream        bool            `json:"stream"`
}

type wireMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

var knownFields = map[string]bool{"model": true, "max_tokens": true, "system": true, "messages": true,
	"temperature": true, "top_p": true, "stop_sequences": true, "stream": true}

// textOf reads content that is a string or a list of text blocks.
func textOf(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", err
	}
	for _, b := range blocks {
		if b.Type != "text" {
			return "", errors.New("unexpected block type " + b.Type)
		}
		s += b.Text
	}
	return s, nil
}

func (tr *translator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tr.calls.Add(1)
	for k, vs := range tr.headers {
		w.Header()[k] = vs
	}
	w.Header().Set("Request-Id", "req_test_0001")
	if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
		writeError(w, http.StatusNotFound, "not_found_error", "Not found: "+r.URL.Path)
		return
	}
	key := r.Header.Get("X-Api-Key")
	if key == "" {
		writeError(w, http.StatusUnauthorized, "authentication_error", "x-api-key header is required")
		return
	}
	var fields map[string]json.RawMessage
	var wr wireRequest
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&fields); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "malformed JSON")
		return
	}
	tr.mu.Lock()
	tr.last = fields
	tr.mu.Unlock()
	b, _ := json.Marshal(fields)
	if err := json.Unmarshal(b, &wr); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	req := &llm.Request{Model: wr.Model, MaxTokens: wr.MaxTokens, Temperature: wr.Temperature,
		TopP: wr.TopP, Stop: wr.StopSequences}
	var err error
	if req.System, err = textOf(wr.System); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "system: "+err.Error())
		return
	}
	for i, m := range wr.Messages {
		text, err := textOf(m.Content)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("messages.%d: %v", i, err))
			return
		}
		req.Messages = append(req.Messages, llm.Message{Role: llm.Role(m.Role), Content: text})
	}
	for k, v := range fields {
		if knownFields[k] {
			continue
		}
		var x any
		_ = json.Unmarshal(v, &x)
		if req.Extra == nil {
			req.Extra = map[string]any{}
		}
		req.Extra[k] = x
	}

	if !wr.Stream {
		resp, err := tr.upstream.Generate(r.Context(), req)
		if err != nil {
			tr.writeLLMError(w, err, key)
			return
		}
		writeJSON(w, http.StatusOK, wireMessageBody(resp, wr.Model))
		return
	}

	fl := w.(http.Flusher)
	started := false
	start := func() {
		started = true
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		writeEvent(w, "message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": "msg_stream_01", "type": "message", "role": "assistant", "model": wr.Model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": req.EstimateInputTokens(), "output_tokens": 1,
				"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
		}})
		writeEvent(w, "content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "text", "text": ""}})
		writeEvent(w, "ping", map[string]any{"type": "ping"})
		fl.Flush()
	}
	req.Stream = func(c llm.Chunk) error {
		if !started {
			start()
		}
		writeEvent(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": c.Text}})
		fl.Flush()
		return r.Context().Err()
	}
	resp, err := tr.upstream.Generate(r.Context(), req)
	if err != nil {
		if !started {
			tr.writeLLMError(w, err, key)
			return
		}
		switch llm.KindOf(err) {
		case llm.KindStreamCut, llm.KindCanceled:
			return // the body ends without message_stop
		}
		status, typ, msg := errorFor(err, key, tr.echoKey)
		_ = status
		writeEvent(w, "error", map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
		return
	}
	if !started {
		start()
	}
	writeEvent(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	writeEvent(w, "message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": stopReasonOf(resp.FinishReason), "stop_sequence": nil},
		"usage": wireUsage(resp.Usage)})
	writeEvent(w, "message_stop", map[string]any{"type": "message_stop"})
	fl.Flush()
}

// wireUsage splits llm.Usage the way Anthropic counts: input_tokens
// excludes cache reads.
func wireUsage(u llm.Usage) map[string]any {
	return map[string]any{"input_tokens": u.InputTokens - u.CachedInputTokens, "output_tokens": u.OutputTokens,
		"cache_creation_input_tokens": 0, "cache_read_input_tokens": u.CachedInputTokens}
}

func wireMessageBody(resp *llm.Response, model string) map[string]any {
	if resp.Model != "" {
		model = resp.Model
	}
	id := resp.ID
	if id == "" {
		id = "msg_01"
	}
	content := []any{}
	if resp.Text != "" {
		content = append(content, map[string]any{"type": "text", "text": resp.Text})
	}
	return map[string]any{"id": id, "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": stopReasonOf(resp.FinishReason), "stop_sequence": nil,
		"usage": wireUsage(resp.Usage)}
}

func stopReasonOf(f llm.FinishReason) string {
	switch f {
	case llm.FinishStop, "":
		return "end_turn"
	case llm.FinishLength:
		return "max_tokens"
	case llm.FinishToolCalls:
		return "tool_use"
	case llm.FinishContentFilter:
		return "refusal"
	}
	return string(f)
}

// errorFor chooses the status, error type and message Anthropic sends for
// an upstream failure.
func errorFor(err error, key string, echoKey bool) (int, string, string) {
	kind := llm.KindOf(err)
	status := llmtest.StatusFor(kind)
	typ, msg := "api_error", "Internal server error"
	switch kind {
	case llm.KindRateLimited:
		typ, msg = "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"
	case llm.KindTimeout:
		typ, msg = "timeout_error", "Request timeout"
	case llm.KindUnavailable:
		typ, msg = "api_error", "Internal server error"
	case llm.KindOverloaded:
		status, typ, msg = 529, "overloaded_error", "Overloaded"
	case llm.KindBadRequest:
		typ, msg = "invalid_request_error", "max_tokens: Field required"
	case llm.KindContextLength:
		typ, msg = "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"
	case llm.KindAuth:
		typ, msg = "authentication_error", "invalid x-api-key"
		if echoKey {
			msg += ": " + key
		}
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	return status, typ, msg
}

func (tr *translator) writeLLMError(w http.ResponseWriter, err error, key string) {
	kind := llm.KindOf(err)
	if kind == llm.KindCanceled {
		return // the client has gone
	}
	if kind == llm.KindContentFilter {
		// Anthropic has no content-filter error: a refusal is a successful
		// answer whose stop_reason is "refusal".
		writeJSON(w, http.StatusOK, wireMessageBody(&llm.Response{FinishReason: llm.FinishContentFilter}, "claude-test"))
		return
	}
	if d := llm.RetryAfterOf(err); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	status, typ, msg := errorFor(err, key, tr.echoKey)
	writeError(w, status, typ, msg)
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeEvent(w http.ResponseWriter, event string, v any) {
	b, _ := json.Marshal(v)
	_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
}

// quotaHeaders are a full set of rate-limit headers, resets measured from
// base.
func quotaHeaders(base time.Time) http.Header {
	h := http.Header{}
	h.Set("anthropic-ratelimit-requests-limit", "4000")
	h.Set("anthropic-ratelimit-requests-remaining", "3999")
	h.Set("anthropic-ratelimit-requests-reset", base.Add(15*time.Second).UTC().Format(time.RFC3339))
	h.Set("anthropic-ratelimit-tokens-limit", "400000")
	h.Set("anthropic-ratelimit-tokens-remaining", "399000")
	h.Set("anthropic-ratelimit-tokens-reset", base.Add(2*time.Second).UTC().Format(time.RFC3339))
	h.Set("anthropic-ratelimit-input-tokens-limit", "300000")
	h.Set("anthropic-ratelimit-input-tokens-remaining", "299500")
	h.Set("anthropic-ratelimit-input-tokens-reset", base.Add(3*time.Second).UTC().Format(time.RFC3339))
	h.Set("anthropic-ratelimit-output-tokens-limit", "100000")
	h.Set("anthropic-ratelimit-output-tokens-remaining", "99500")
	h.Set("anthropic-ratelimit-output-tokens-reset", base.Add(4*time.Second).UTC().Format(time.RFC3339))
	return h
}
