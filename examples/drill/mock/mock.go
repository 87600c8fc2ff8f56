package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// mock is an OpenAI-compatible chat completions endpoint whose behaviour
// is switched over HTTP:
//
//	POST /v1/chat/completions   the provider API (JSON, or SSE with "stream": true)
//	POST /fault?mode=...        switch the fault (see parseFault)
//	GET  /fault                 the current fault
//	GET  /stats                 calls answered per outcome since start
//
// It answers from a fixed text, so its own cost is JSON and HTTP only.
type mock struct {
	mux   *http.ServeMux
	fault atomic.Pointer[fault]
	// Calls per outcome, for /stats.
	ok, unavailable, rateLimited, canceled atomic.Int64
}

// answer is the text every successful completion carries.
const answer = "This is the mock provider's answer: short, fixed, and the same for every prompt."

// answerWords is answer split for streaming, one chunk per word.
var answerWords = splitWords(answer)

func newMock() *mock {
	m := &mock{mux: http.NewServeMux()}
	m.fault.Store(&fault{Mode: modeOK})
	m.mux.HandleFunc("POST /v1/chat/completions", m.complete)
	m.mux.HandleFunc("POST /fault", m.setFault)
	m.mux.HandleFunc("GET /fault", m.getFault)
	m.mux.HandleFunc("GET /stats", m.stats)
	return m
}

func (m *mock) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }

func (m *mock) setFault(w http.ResponseWriter, r *http.Request) {
	f, err := parseFault(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m.fault.Store(&f)
	writeJSON(w, http.StatusOK, f)
}

func (m *mock) getFault(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, m.fault.Load())
}

func (m *mock) stats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int64{
		"ok": m.ok.Load(), "unavailable": m.unavailable.Load(),
		"ratelimited": m.rateLimited.Load(), "canceled": m.canceled.Load(),
	})
}

// chatRequest is the part of a chat completion request the mock reads.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (m *mock) complete(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&req); err != nil || len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "the body is not a chat completion request with messages")
		return
	}
	f := m.fault.Load()
	switch f.Mode {
	case modeUnavailable:
		m.unavailable.Add(1)
		writeError(w, http.StatusServiceUnavailable, "server_error", "", "The mock provider is unavailable (drill outage).")
		return
	case modeRateLimited:
		m.rateLimited.Add(1)
		w.Header().Set("Retry-After", f.retryAfterHeader())
		w.Header().Set("X-Ratelimit-Remaining-Requests", "0")
		w.Header().Set("X-Ratelimit-Reset-Requests", f.RetryAfter.String())
		writeError(w, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "Rate limit reached (drill quota).")
		return
	case modeSlow:
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			m.canceled.Add(1)
			return
		}
	}
	m.ok.Add(1)
	if req.Model == "" {
		req.Model = "mock"
	}
	input := 0
	for _, msg := range req.Messages {
		input += len(msg.Content)/4 + 1 // about four bytes a token
	}
	u := usage{Prompt: input, Completion: len(answerWords), Total: input + len(answerWords)}
	if req.Stream {
		m.stream(w, r, req, u)
		return
	}
	writeJSON(w, http.StatusOK, completion{
		ID: "chatcmpl-mock", Object: "chat.completion", Created: time.Now().Unix(), Model: req.Model,
		Choices: []choice{{Message: &message{Role: "assistant", Content: answer}, FinishReason: "stop"}},
		Usage:   &u,
	})
}

// stream sends the answer as chat.completion.chunk events, one word each,
// then the finish reason, the usage when asked for, and "[DONE]".
func (m *mock) stream(w http.ResponseWriter, r *http.Request, req chatRequest, u usage) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	created := time.Now().Unix()
	chunk := func(c completion) bool {
		c.ID, c.Object, c.Created, c.Model = "chatcmpl-mock", "chat.completion.chunk", created, req.Model
		b, _ := json.Marshal(c)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return r.Context().Err() == nil
	}
	for i, word := range answerWords {
		d := &message{Content: word}
		if i == 0 {
			d.Role = "assistant"
		}
		if !chunk(completion{Choices: []choice{{Delta: d}}}) {
			m.canceled.Add(1)
			return
		}
	}
	chunk(completion{Choices: []choice{{Delta: &message{}, FinishReason: "stop"}}})
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		chunk(completion{Choices: []choice{}, Usage: &u})
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
}

type completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
}

type choice struct {
	Index        int      `json:"index"`
	Message      *message `json:"message,omitempty"`
	Delta        *message `json:"delta,omitempty"`
	FinishReason string   `json:"finish_reason,omitempty"`
}

type message struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

type usage struct {
	Prompt     int `json:"prompt_tokens"`
	Completion int `json:"completion_tokens"`
	Total      int `json:"total_tokens"`
}

// writeError writes an OpenAI error body.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	body := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if code != "" {
		body["code"] = code
	}
	writeJSON(w, status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// splitWords splits s after each space, keeping the spaces, so the
// chunks concatenate back to s.
func splitWords(s string) []string {
	var words []string
	start := 0
	for i, r := range s {
		if r == ' ' {
			words = append(words, s[start:i+utf8.RuneLen(r)])
			start = i + utf8.RuneLen(r)
		}
	}
	if start < len(s) {
		words = append(words, s[start:])
	}
	return words
}
