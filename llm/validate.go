package llm

import (
	"context"
	"math"
	"strconv"
)

// Limits bound what Validate accepts.
type Limits struct {
	// MaxContentBytes caps the text a request carries: system prompt,
	// messages, stop sequences and Extra (its names and values, sized as
	// their JSON would be; see Request.ContentBytes) together. Default
	// 1 MiB.
	MaxContentBytes int
	// MaxMessages caps the number of messages. Default 10,000.
	MaxMessages int
	// MaxStop caps the number of stop sequences. Default 16.
	MaxStop int
}

// DefaultLimits are the limits Request.Validate applies.
var DefaultLimits = Limits{MaxContentBytes: 1 << 20, MaxMessages: 10_000, MaxStop: 16}

// Validate checks r against DefaultLimits. See ValidateLimits.
func (r *Request) Validate() error { return r.ValidateLimits(DefaultLimits) }

// ValidateLimits reports the first thing wrong with r as an *Error of
// KindBadRequest, or nil. It looks at sizes before content, so an oversized
// prompt is rejected before anything hashes or logs it. Zero fields of lim
// take the defaults. It does not allocate when r is valid.
func (r *Request) ValidateLimits(lim Limits) error {
	if r == nil {
		return BadRequest("nil request")
	}
	if lim.MaxContentBytes <= 0 {
		lim.MaxContentBytes = DefaultLimits.MaxContentBytes
	}
	if lim.MaxMessages <= 0 {
		lim.MaxMessages = DefaultLimits.MaxMessages
	}
	if lim.MaxStop <= 0 {
		lim.MaxStop = DefaultLimits.MaxStop
	}
	if len(r.Messages) > lim.MaxMessages {
		return BadRequest("too many messages: " + strconv.Itoa(len(r.Messages)) + " > " + strconv.Itoa(lim.MaxMessages))
	}
	if len(r.Stop) > lim.MaxStop {
		return BadRequest("too many stop sequences: " + strconv.Itoa(len(r.Stop)) + " > " + strconv.Itoa(lim.MaxStop))
	}
	// One pass over Extra: its size counts toward the limit, and an empty
	// name is remembered for after the size checks.
	n, emptyExtra := r.contentBytes(lim.MaxContentBytes)
	if n > lim.MaxContentBytes {
		return BadRequest("request content too large: over " + strconv.Itoa(lim.MaxContentBytes) + " bytes")
	}
	hasUser := false
	for i := range r.Messages {
		m := &r.Messages[i]
		switch m.Role {
		case RoleUser:
			if !blank(m.Content) {
				hasUser = true
			}
		case RoleAssistant, RoleSystem:
		default:
			return BadRequest("message " + strconv.Itoa(i) + ": unknown role")
		}
	}
	if !hasUser {
		return BadRequest("empty prompt: no user message with content")
	}
	if r.MaxTokens < 0 {
		return BadRequest("max tokens is negative")
	}
	if t := r.Temperature; t != nil && (math.IsNaN(*t) || *t < 0 || *t > 2) {
		return BadRequest("temperature out of range [0, 2]")
	}
	if p := r.TopP; p != nil && (math.IsNaN(*p) || *p < 0 || *p > 1) {
		return BadRequest("top-p out of range [0, 1]")
	}
	for i, s := range r.Stop {
		if s == "" {
			return BadRequest("stop sequence " + strconv.Itoa(i) + " is empty")
		}
	}
	if emptyExtra {
		return BadRequest("extra parameter with an empty name")
	}
	return nil
}

func blank(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return false
		}
	}
	return true
}

// Validate returns a middleware that rejects invalid requests with a
// KindBadRequest error before they reach next. Zero limits take the
// defaults. Place it inside the metrics middlewares (so bad requests are
// counted) and outside the cache (so nothing oversized is hashed).
func Validate(lim Limits) Middleware {
	return func(next Client) Client {
		return ClientFunc(func(ctx context.Context, req *Request) (*Response, error) {
			if err := req.ValidateLimits(lim); err != nil {
				return nil, err
			}
			return next.Generate(ctx, req)
		})
	}
}
