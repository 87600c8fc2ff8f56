package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmkit/llmkit/llm"
	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// maxMessage bounds the provider message kept in an error.
const maxMessage = 512

// maxErrorBody bounds how much of an error body the adapter reads.
const maxErrorBody = 64 << 10

// APIError is the part of an OpenAI-style error body the adapter uses.
type APIError struct {
	Message string
	Type    string
	Code    string
}

// ParseErrorBody reads an error body in the shapes OpenAI and compatible
// servers send: {"error": {"message", "type", "code"}} (OpenAI, Ollama,
// LM Studio), {"error": "text"}, a top-level {"message", "type", "code"}
// object (vLLM), {"detail": "text"} (FastAPI servers), or plain text. A
// numeric or null code is kept as text. It never fails: an unreadable body
// gives its first bytes as the message.
func ParseErrorBody(body []byte) APIError {
	var doc struct {
		Error   json.RawMessage `json:"error"`
		Message json.RawMessage `json:"message"`
		Type    json.RawMessage `json:"type"`
		Code    json.RawMessage `json:"code"`
		Detail  json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return APIError{Message: strings.TrimSpace(truncate(string(body), maxMessage))}
	}
	if len(doc.Error) > 0 && doc.Error[0] == '{' {
		var inner struct {
			Message json.RawMessage `json:"message"`
			Type    json.RawMessage `json:"type"`
			Code    json.RawMessage `json:"code"`
		}
		if json.Unmarshal(doc.Error, &inner) == nil {
			return APIError{Message: jsonText(inner.Message), Type: jsonText(inner.Type), Code: jsonText(inner.Code)}
		}
	}
	e := APIError{Message: jsonText(doc.Message), Type: jsonText(doc.Type), Code: jsonText(doc.Code)}
	if e.Message == "" {
		e.Message = jsonText(doc.Error)
	}
	if e.Message == "" {
		e.Message = jsonText(doc.Detail)
	}
	return e
}

// jsonText renders a JSON scalar as text: strings unquoted, numbers and
// booleans as written, null and objects as "".
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	case '{', '[', 'n':
		return ""
	}
	return string(raw)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// kindFor classifies a provider error by its code and type first (they are
// more specific than the status: a context-length error is a 400), then by
// HTTP status. Status 0 means the error arrived inside a 200 stream.
func kindFor(status int, e APIError) llm.Kind {
	for _, c := range [...]string{e.Code, e.Type} {
		switch c {
		case "context_length_exceeded", "string_above_max_length":
			return llm.KindContextLength
		case "content_filter", "content_policy_violation":
			return llm.KindContentFilter
		}
	}
	switch k := llm.KindForStatus(status); {
	case status == http.StatusConflict: // OpenAI: a transient conflict; the SDK retries it
		return llm.KindUnavailable
	case k == llm.KindBadRequest:
		// vLLM and some other servers report an oversized prompt as a plain
		// 400 without a code; their message is the only signal.
		if strings.Contains(strings.ToLower(e.Message), "maximum context length") {
			return llm.KindContextLength
		}
		return k
	case k != llm.KindUnknown:
		return k
	}
	// An error event inside a stream: classify by type.
	switch e.Type {
	case "rate_limit_exceeded", "rate_limit_error", "tokens", "requests":
		return llm.KindRateLimited
	case "server_error", "api_error", "service_unavailable":
		return llm.KindUnavailable
	case "overloaded_error":
		return llm.KindOverloaded
	case "timeout":
		return llm.KindTimeout
	case "invalid_request_error":
		return llm.KindBadRequest
	}
	return llm.KindUnknown
}

// scrub removes the request's own credentials from provider text (a server
// or proxy may echo the Authorization header back), then applies
// llm.Redact for every other secret shape.
func scrub(s string, req *http.Request) string {
	if req != nil {
		for _, k := range [...]string{"Authorization", "Api-Key", "X-Api-Key"} {
			v := header(req.Header, k)
			if k == "Authorization" {
				if i := strings.IndexByte(v, ' '); i >= 0 {
					v = strings.TrimSpace(v[i+1:])
				}
			}
			if len(v) >= 4 {
				s = strings.ReplaceAll(s, v, llm.Redacted)
			}
		}
	}
	return llm.Redact(s)
}

func message(e APIError, req *http.Request) string {
	m := truncate(e.Message, maxMessage)
	if e.Code != "" {
		if m == "" {
			m = e.Code
		} else {
			m += " (" + truncate(e.Code, 64) + ")"
		}
	}
	return scrub(m, req)
}

// classify turns an SDK call's error into an *llm.Error. raw is the HTTP
// response the SDK handed back, nil when there was none.
func (c *Client) classify(ctx context.Context, err error, raw *http.Response) error {
	var hdr http.Header
	var req *http.Request
	if raw != nil {
		hdr, req = raw.Header, raw.Request
	}
	if ctx.Err() != nil {
		// The SDK returns the bare context error; FromContext keeps a
		// decorator's cause (an attempt timeout, say).
		e := llm.FromContext(ctx, c.provider)
		if le, ok := e.(*llm.Error); ok && hdr != nil {
			le.Quota = ParseQuota(hdr)
		}
		return e
	}

	var apiErr *sdk.Error
	switch {
	case errors.As(err, &apiErr):
		if apiErr.Response != nil {
			hdr = apiErr.Response.Header
		}
		if apiErr.Request != nil {
			req = apiErr.Request
		}
		body := APIError{Message: apiErr.Message, Type: apiErr.Type, Code: apiErr.Code}
		if body == (APIError{}) && apiErr.Response != nil {
			// The body had no {"error": {...}} object (a compatible server
			// or a proxy with its own shape): the SDK left the fields
			// empty, so parse the body here.
			body = ParseErrorBody(rereadBody(apiErr.Response))
		}
		return c.httpError(apiErr.StatusCode, body, hdr, req, err)
	case raw != nil && raw.StatusCode >= 400:
		// The SDK could not decode the body as {"error": {...}} (a
		// compatible server or a proxy with its own shape); read it here.
		return c.httpError(raw.StatusCode, ParseErrorBody(rereadBody(raw)), hdr, req, nil)
	}
	return c.transportError(err, hdr, req)
}

// rereadBody reads up to maxErrorBody bytes of an error response's body
// (which the SDK has already buffered) and puts them back, so that the
// SDK error's DumpResponse still shows them.
func rereadBody(res *http.Response) []byte {
	if res.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	res.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

func (c *Client) httpError(status int, body APIError, hdr http.Header, req *http.Request, cause error) *llm.Error {
	e := &llm.Error{
		Kind:     kindFor(status, body),
		Status:   status,
		Provider: c.provider,
		Message:  message(body, req),
		Quota:    ParseQuota(hdr),
		Err:      cause,
	}
	if e.Kind == llm.KindRateLimited || e.Kind == llm.KindOverloaded || e.Kind == llm.KindUnavailable {
		e.RetryAfter = ParseRetryAfter(hdr, time.Now())
		if e.RetryAfter == 0 && e.Kind == llm.KindRateLimited {
			e.RetryAfter = quotaWait(e.Quota)
		}
	}
	return e
}

// transportError classifies failures without an HTTP error status:
// connection errors, error events inside a stream, undecodable bodies.
func (c *Client) transportError(err error, hdr http.Header, req *http.Request) *llm.Error {
	var se *ssestream.StreamError
	if errors.As(err, &se) {
		body := ParseErrorBody(se.Event.Data)
		return &llm.Error{Kind: kindFor(0, body), Provider: c.provider,
			Message: "error event in stream: " + message(body, req), Quota: ParseQuota(hdr)}
	}
	kind := llm.KindOf(err)
	msg := "request failed"
	if kind == llm.KindUnknown {
		msg = "unexpected response"
	}
	// The cause's text (a *url.Error names the URL) is redacted by
	// llm.Error.Error.
	return &llm.Error{Kind: kind, Provider: c.provider, Message: msg, Quota: ParseQuota(hdr), Err: err}
}

// streamCut is the error for a stream that ended without its end marker.
func (c *Client) streamCut(chunks int, sawDone, sawFinish bool, hdr http.Header) *llm.Error {
	what := "[DONE]"
	if sawDone {
		what = "a finish reason"
	} else if !sawFinish {
		what = "a finish reason or [DONE]"
	}
	return &llm.Error{Kind: llm.KindStreamCut, Provider: c.provider,
		Message: "stream ended after " + strconv.Itoa(chunks) + " chunks without " + what,
		Quota:   ParseQuota(hdr)}
}
