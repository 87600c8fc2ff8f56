package llm

import "unicode/utf8"

// Role is the author of a Message.
type Role string

// The roles a Message may have. The system prompt usually goes in
// Request.System; RoleSystem exists for callers that keep it in the message
// list, as the OpenAI chat format allows.
const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleSystem    Role = "system"
)

// Message is one turn of a conversation.
type Message struct {
	Role    Role
	Content string
}

// User returns a user message.
func User(text string) Message { return Message{Role: RoleUser, Content: text} }

// Assistant returns an assistant message, for earlier turns of a conversation.
func Assistant(text string) Message { return Message{Role: RoleAssistant, Content: text} }

// SystemMessage returns a system message for callers that keep the system
// prompt inside the message list.
func SystemMessage(text string) Message { return Message{Role: RoleSystem, Content: text} }

// CacheMode lets one request opt out of caching. The zero value uses the
// cache normally.
type CacheMode uint8

const (
	// CacheSkipRead makes the call go to the provider even when a cached
	// answer exists; the fresh answer may still be stored.
	CacheSkipRead CacheMode = 1 << iota
	// CacheSkipStore keeps the answer to this request out of the cache.
	CacheSkipStore
	// CacheBypass is CacheSkipRead|CacheSkipStore: the cache is not involved.
	CacheBypass = CacheSkipRead | CacheSkipStore
)

// Request is one call to a model.
//
// The fields above the line change the output and so are part of a cache
// key; the ones below are caller metadata that decorators read. Optional
// sampling parameters are pointers so that "unset" (use the provider's
// default) is told apart from zero: use Ptr to set them.
type Request struct {
	// Model names the model; empty means the adapter's default.
	Model string
	// System is the system prompt.
	System string
	// Messages is the conversation, oldest first.
	Messages []Message
	// MaxTokens caps the output; 0 means the provider's default.
	MaxTokens int
	// Temperature is in [0, 2]; nil means the provider's default (1.0 for
	// the major providers, so output is not deterministic).
	Temperature *float64
	// TopP is in [0, 1]; nil means the provider's default.
	TopP *float64
	// Seed asks providers that support it for reproducible sampling.
	Seed *int64
	// Stop holds stop sequences.
	Stop []string
	// Extra holds provider-specific parameters (for example
	// "reasoning_effort"), passed through by adapters that know them. Values
	// must be JSON-encodable.
	Extra map[string]any

	// ---- caller metadata: not sent to the model, not part of a cache key.

	// Endpoint names the feature of the caller's service that made the call
	// ("summarize", "chat"). It becomes a bounded metric label.
	Endpoint string
	// Tenant scopes the cache and per-tenant limits. It never becomes a
	// metric label or a raw cache key.
	Tenant string
	// Cache lets this request skip reading or storing cached answers.
	Cache CacheMode
	// Stream, when set, asks for a streamed answer: it is called once per
	// chunk, in order, from the goroutine that called Generate. Returning an
	// error cancels the call.
	Stream func(Chunk) error
}

// Prompt returns a request with one user message, the one-line case.
func Prompt(text string) *Request {
	return &Request{Messages: []Message{User(text)}}
}

// Ptr returns a pointer to v, for the optional Request fields:
//
//	req.Temperature = llm.Ptr(0.0)
func Ptr[T any](v T) *T { return &v }

// Clone returns a shallow copy of r. Slices, the Extra map and pointed-to
// values are shared, so a decorator that changes only top-level fields (the
// usual case: Stream, Model) may do so on the copy without touching the
// caller's request. Clone of nil is nil.
func (r *Request) Clone() *Request {
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

// PromptText returns the text of the last user message, or "" when there is
// none. Decorators that capture prompt text on opt-in use it.
func (r *Request) PromptText() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == RoleUser {
			return r.Messages[i].Content
		}
	}
	return ""
}

// ContentBytes returns the number of bytes of text the request carries:
// the system prompt, every message, every stop sequence, and the names and
// text of Extra (strings and byte slices, also inside nested []any and
// map[string]any values, as JSON decodes them; other values count 8 bytes).
func (r *Request) ContentBytes() int {
	n := r.textBytes()
	for k, v := range r.Extra {
		n += len(k) + extraBytes(v, 0)
	}
	return n
}

// textBytes counts the system prompt, messages and stop sequences.
func (r *Request) textBytes() int {
	n := len(r.System)
	for i := range r.Messages {
		n += len(r.Messages[i].Content)
	}
	for _, s := range r.Stop {
		n += len(s)
	}
	return n
}

// extraBytes estimates the size of an Extra value without encoding it.
// Nesting deeper than 32 levels counts as huge, so that it is rejected.
func extraBytes(v any, depth int) int {
	if depth > 32 {
		return 1 << 30
	}
	switch v := v.(type) {
	case string:
		return len(v)
	case []byte:
		return len(v)
	case []string:
		n := 0
		for _, s := range v {
			n += len(s)
		}
		return n
	case []any:
		n := 0
		for _, e := range v {
			n += extraBytes(e, depth+1)
		}
		return n
	case map[string]any:
		n := 0
		for k, e := range v {
			n += len(k) + extraBytes(e, depth+1)
		}
		return n
	}
	return 8
}

// EstimateInputTokens estimates the prompt's size in tokens without a
// tokenizer: about four bytes of English per token, and one token per
// character for scripts whose characters take several bytes (CJK), plus a
// few tokens of framing per message. Rate limiters reserve this before the
// call and reconcile with Usage after it.
func (r *Request) EstimateInputTokens() int {
	n := estimateText(r.System)
	for i := range r.Messages {
		n += 4 + estimateText(r.Messages[i].Content)
	}
	return n
}

func estimateText(s string) int {
	ascii, other := 0, 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			ascii++
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		other++
		i += size
	}
	return (ascii+3)/4 + other
}
