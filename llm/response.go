package llm

import "time"

// FinishReason says why the model stopped. Adapters map provider values to
// these; a value they do not know is passed through unchanged.
type FinishReason string

// The finish reasons llmkit knows. FinishLength and FinishContentFilter mean
// the answer is unfinished: the cache does not store such answers by default.
const (
	FinishStop          FinishReason = "stop"
	FinishLength        FinishReason = "length"
	FinishContentFilter FinishReason = "content_filter"
	FinishToolCalls     FinishReason = "tool_calls"
)

// Complete reports whether the reason marks a finished answer (stop, or a
// tool call the caller asked for).
func (f FinishReason) Complete() bool { return f == FinishStop || f == FinishToolCalls }

// Chunk is one piece of a streamed answer.
type Chunk struct {
	// Index counts chunks from 0 within one call.
	Index int
	// Text is the new text this chunk adds.
	Text string
}

// Usage counts tokens as the provider reports them.
type Usage struct {
	InputTokens int
	// OutputTokens includes reasoning tokens where the provider counts them.
	OutputTokens int
	// CachedInputTokens is the part of InputTokens served from the
	// provider's prompt cache.
	CachedInputTokens int
}

// Total returns input plus output tokens.
func (u Usage) Total() int { return u.InputTokens + u.OutputTokens }

// QuotaUnknown marks a Quota field the provider did not report.
const QuotaUnknown = -1

// Quota is what the provider's rate-limit headers said about the caller's
// remaining allowance (x-ratelimit-* for OpenAI, anthropic-ratelimit-* for
// Anthropic). Fields the provider did not send are QuotaUnknown (or 0 for
// the reset durations); a zero count is a real, exhausted quota.
type Quota struct {
	LimitRequests     int64
	RemainingRequests int64
	LimitTokens       int64
	RemainingTokens   int64
	// ResetRequests and ResetTokens are how long until the window resets.
	ResetRequests time.Duration
	ResetTokens   time.Duration
}

// NewQuota returns a Quota whose counts are all QuotaUnknown.
func NewQuota() Quota {
	return Quota{
		LimitRequests: QuotaUnknown, RemainingRequests: QuotaUnknown,
		LimitTokens: QuotaUnknown, RemainingTokens: QuotaUnknown,
	}
}

// Known reports whether any count was reported.
func (q Quota) Known() bool {
	return q.LimitRequests >= 0 || q.RemainingRequests >= 0 || q.LimitTokens >= 0 || q.RemainingTokens >= 0
}

// Response is a model's answer.
type Response struct {
	// ID is the provider's response id, when it sends one.
	ID string
	// Text is the whole answer; for a streamed call, the concatenation of
	// every chunk in order.
	Text string
	// Model is the model that answered, as the provider resolved it.
	Model string
	// FinishReason says why the model stopped.
	FinishReason FinishReason
	// Usage counts tokens.
	Usage Usage
	// Quota is the provider's remaining allowance, or nil when it did not
	// report one.
	Quota *Quota

	// ---- what the decorators did.

	// Cached is set when the answer came from a cache, not the provider.
	Cached bool
	// Degraded is set when a fallback produced the answer; DegradedReason
	// says why (the Kind of the error that triggered it).
	Degraded       bool
	DegradedReason Kind
	// Attempts counts provider attempts, retries and hedges included, when
	// a decorator made more than one. 0 means one attempt (or none counted):
	// the common single-attempt answer is passed through untouched instead
	// of being copied only to record a 1.
	Attempts int
}

// Clone returns a copy of r whose Quota is its own. Decorators that change
// fields of a Response they did not create (a cache hit marked Cached, say)
// change a clone.
func (r *Response) Clone() *Response {
	if r == nil {
		return nil
	}
	c := *r
	if r.Quota != nil {
		q := *r.Quota
		c.Quota = &q
	}
	return &c
}
