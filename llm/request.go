package llm

import (
	"math"
	"reflect"
	"unicode/utf8"
)

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
// size of Extra's values, estimated as their JSON encoding would be:
// strings and byte slices by their length, containers (slices, arrays,
// maps, structs, of any type) by their elements plus a byte or two of
// punctuation each, anything else as 8 bytes.
// It walks every value; ValidateLimits stops walking once the count passes
// its limit.
func (r *Request) ContentBytes() int {
	n, _ := r.contentBytes(maxCount)
	return n
}

// maxCount is the largest limit contentBytes takes, so that counting past
// it cannot overflow.
const maxCount = math.MaxInt / 4

// contentBytes is ContentBytes, stopping as soon as the count passes limit
// (at most maxCount; it then returns some count > limit); it also reports
// whether an Extra name is empty. Every container counts at least one
// byte, so the walk ends after at most about limit steps, however the
// values nest or share their parts.
func (r *Request) contentBytes(limit int) (n int, emptyExtra bool) {
	limit = min(limit, maxCount)
	n = r.textBytes()
	if len(r.Extra) == 0 { // ranging over even an empty map costs an iterator setup
		return n, false
	}
	for k, v := range r.Extra {
		emptyExtra = emptyExtra || k == ""
		n = extraBytes(v, n+len(k), limit, 0)
		if n > limit {
			break
		}
	}
	return n, emptyExtra
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

// maxExtraDepth is the deepest nesting of Extra values counted; deeper
// counts as past any limit, so that it is rejected.
const maxExtraDepth = 32

// extraBytes returns n plus the estimated size of an Extra value, or some
// count > limit once it passes limit. The types JSON decodes into are
// counted without reflection (and without allocating); any other value is
// walked by reflection.
func extraBytes(v any, n, limit, depth int) int {
	if depth > maxExtraDepth || n > limit {
		return limit + 1
	}
	switch v := v.(type) {
	case nil:
		return n + 4
	case string:
		return n + len(v) + 2
	case []byte:
		return n + len(v) + 2
	case []string:
		n += 2
		for _, s := range v {
			if n += len(s) + 3; n > limit {
				return n
			}
		}
		return n
	case []any:
		n += 2
		for _, e := range v {
			if n = extraBytes(e, n+1, limit, depth+1); n > limit {
				return n
			}
		}
		return n
	case map[string]any:
		n += 2
		for k, e := range v {
			if n = extraBytes(e, n+len(k)+4, limit, depth+1); n > limit {
				return n
			}
		}
		return n
	case bool, float64, float32, int, int64, int32, uint, uint64, uint32:
		return n + 8
	}
	return reflectBytes(reflect.ValueOf(v), n, limit, depth)
}

// reflectBytes is extraBytes for a value of any other type.
func reflectBytes(v reflect.Value, n, limit, depth int) int {
	if depth > maxExtraDepth || n > limit {
		return limit + 1
	}
	switch v.Kind() {
	case reflect.Invalid:
		return n + 4
	case reflect.String:
		return n + v.Len() + 2
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return n + 4
		}
		return reflectBytes(v.Elem(), n, limit, depth+1)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 { // bytes: JSON's base64
			return n + v.Len()*4/3 + 2
		}
		n += 2
		for i := range v.Len() {
			if n = reflectBytes(v.Index(i), n+1, limit, depth+1); n > limit {
				return n
			}
		}
		return n
	case reflect.Map:
		n += 2
		for it := v.MapRange(); it.Next(); {
			if n = reflectBytes(it.Key(), n+2, limit, depth+1); n > limit {
				return n
			}
			if n = reflectBytes(it.Value(), n, limit, depth+1); n > limit {
				return n
			}
		}
		return n
	case reflect.Struct:
		n += 2
		for i := range v.NumField() {
			n += len(v.Type().Field(i).Name) + 4
			if n = reflectBytes(v.Field(i), n, limit, depth+1); n > limit {
				return n
			}
		}
		return n
	}
	return n + 8
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
