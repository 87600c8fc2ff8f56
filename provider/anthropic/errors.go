package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	sdk "github.com/anthropics/anthropic-sdk-go"

	"github.com/llmkit/llmkit/llm"
)

// maxMessageBytes bounds the provider text an *llm.Error carries.
const maxMessageBytes = 256

// mapError turns what the SDK returned into an *llm.Error. raw is the HTTP
// response when one arrived.
func (c *Client) mapError(ctx context.Context, err error, raw *http.Response) error {
	if ctx.Err() != nil {
		return llm.FromContext(ctx, c.provider)
	}
	var aerr *sdk.Error
	if errors.As(err, &aerr) {
		return c.apiError(aerr)
	}
	kind, msg := llm.KindOf(err), "request failed"
	if raw == nil && kind == llm.KindUnknown && strings.Contains(err.Error(), "streaming is required") {
		// The SDK refuses, before sending, a non-streamed call whose
		// max_tokens could take more than ten minutes (about 21,000
		// tokens). It has no error type for it, so its text is the only
		// sign.
		kind, msg = llm.KindBadRequest, "max tokens too large for a non-streamed call: stream it or lower max tokens"
	}
	var ute *json.UnsupportedTypeError
	var uve *json.UnsupportedValueError
	if raw == nil && (errors.As(err, &ute) || errors.As(err, &uve)) {
		kind, msg = llm.KindBadRequest, "an Extra parameter is not JSON-encodable"
	}
	e := &llm.Error{Kind: kind, Provider: c.provider, Message: msg, Err: err}
	if raw != nil {
		e.Quota = parseQuota(raw.Header, c.now())
	}
	return e
}

// mapStreamError is mapError for a stream: a read error after the response
// began is a cut stream, and an undecodable event a protocol error.
func (c *Client) mapStreamError(ctx context.Context, err error, raw *http.Response) error {
	if ctx.Err() != nil {
		return llm.FromContext(ctx, c.provider)
	}
	var aerr *sdk.Error
	if errors.As(err, &aerr) || raw == nil || raw.StatusCode >= 400 {
		return c.mapError(ctx, err, raw)
	}
	kind, msg := llm.KindStreamCut, "stream broke before message_stop"
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) {
		kind, msg = llm.KindUnknown, "undecodable stream event"
	}
	return &llm.Error{Kind: kind, Provider: c.provider, Message: msg, Err: err,
		Quota: parseQuota(raw.Header, c.now())}
}

// apiError maps an error response, or an error event in a stream (whose
// HTTP status is the stream's 200, so the status is not reported).
func (c *Client) apiError(aerr *sdk.Error) *llm.Error {
	typ, msg := parseErrorBody(aerr.RawJSON())
	status := aerr.StatusCode
	if status < 400 {
		status = 0
	}
	e := &llm.Error{
		Kind:     classify(status, typ, msg),
		Status:   status,
		Provider: c.provider,
		Message:  msg,
		Err:      &apiErrorCause{typ: typ, requestID: aerr.RequestID, err: aerr},
	}
	if e.Message == "" {
		e.Message = typ
	}
	if e.Message == "" && status != 0 {
		e.Message = http.StatusText(status)
	}
	if aerr.Response != nil {
		now := c.now()
		e.Quota = parseQuota(aerr.Response.Header, now)
		e.RetryAfter = parseRetryAfter(aerr.Response.Header, now)
	}
	return e
}

// apiErrorCause is the Err of an API failure. Its text is ours (the error
// type and request id), never the SDK error's, which quotes the URL and the
// raw body; errors.As still reaches the *sdk.Error through Unwrap.
type apiErrorCause struct {
	typ, requestID string
	err            *sdk.Error
}

func (e *apiErrorCause) Error() string {
	s := "anthropic api error"
	if e.typ != "" {
		s += " " + e.typ
	}
	if id := e.requestID; isRequestID(id) {
		s += " (request-id " + id + ")"
	}
	return s
}

func (e *apiErrorCause) Unwrap() error { return e.err }

// classify maps an error type, or failing that an HTTP status, to a Kind.
// The type decides first: an error event inside a stream has no status of
// its own.
func classify(status int, typ, msg string) llm.Kind {
	switch typ {
	case "rate_limit_error":
		return llm.KindRateLimited
	case "overloaded_error":
		return llm.KindOverloaded
	case "api_error":
		return llm.KindUnavailable
	case "timeout_error":
		return llm.KindTimeout
	case "authentication_error", "permission_error", "billing_error":
		return llm.KindAuth
	case "invalid_request_error":
		if tooLong(msg) {
			return llm.KindContextLength
		}
		return llm.KindBadRequest
	case "not_found_error", "request_too_large":
		return llm.KindBadRequest
	}
	if status == http.StatusBadRequest && tooLong(msg) {
		return llm.KindContextLength
	}
	return llm.KindForStatus(status)
}

// tooLong reports whether an invalid_request_error says the prompt does not
// fit the model's context window. Anthropic says so only in the message:
// "prompt is too long: 215000 tokens > 200000 maximum", or "input length
// and `max_tokens` exceed context limit: ...".
func tooLong(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "prompt is too long") || strings.Contains(m, "exceed context limit")
}

// parseErrorBody reads Anthropic's error envelope,
// {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}},
// and returns the error type (empty unless it is a plain identifier) and
// the message, redacted and cut to maxMessageBytes. A body that is not the
// envelope gives empty strings: its text is never quoted, since a proxy's
// error page may echo anything.
func parseErrorBody(body string) (typ, msg string) {
	if body == "" {
		return "", ""
	}
	var env struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(body), &env) != nil {
		return "", ""
	}
	typ = env.Error.Type
	if len(typ) > 64 || !isToken(typ) {
		typ = ""
	}
	return typ, cleanMessage(env.Error.Message)
}

// cleanMessage redacts secrets, then drops control characters and cuts the
// text to maxMessageBytes on a rune boundary. Redacting before cutting means
// a key is never cut in a way that hides its shape.
func cleanMessage(s string) string {
	s = llm.Redact(s)
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexFunc(s, isControl) >= 0 {
		s = strings.Map(func(r rune) rune {
			if isControl(r) {
				return ' '
			}
			return r
		}, s)
	}
	if len(s) > maxMessageBytes {
		cut := maxMessageBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// isRequestID reports whether id looks like Anthropic's request ids
// ("req_" and letters and digits), the only shape quoted: a header is
// echoed by whatever answered, and a proxy may put anything there.
func isRequestID(id string) bool {
	if len(id) > 64 || !strings.HasPrefix(id, "req_") || len(id) == len("req_") {
		return false
	}
	for i := len("req_"); i < len(id); i++ {
		b := id[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9') {
			return false
		}
	}
	return true
}

// isToken reports whether s holds only letters, digits, '_', '-' and '.'.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-' || b == '.') {
			return false
		}
	}
	return true
}
