// Package openai adapts the official OpenAI Go SDK
// (github.com/openai/openai-go/v3) to llm.Client, using the chat completions
// API, both non-streaming and streaming.
//
// Wrap the SDK client a service already has:
//
//	sdkClient := sdk.NewClient(option.WithAPIKey(key))
//	client, err := openai.New(&sdkClient, openai.WithModel("gpt-4o-mini"))
//
// or let the package build one, for OpenAI or any OpenAI-compatible server
// (vLLM, Ollama, LM Studio, llama.cpp):
//
//	client, err := openai.NewFromConfig(key, "http://localhost:11434/v1", openai.WithModel("llama3.2"))
//
// # Mapping
//
// Request.System becomes a leading system message; messages keep their
// roles; MaxTokens becomes max_completion_tokens (max_tokens with
// WithLegacyMaxTokens); Temperature, TopP, Seed and Stop are sent only when
// set; Extra entries are merged into the JSON body. The answer's text,
// model, id, finish reason, usage (cached prompt tokens included) and the
// x-ratelimit-* headers (as Response.Quota) come back.
//
// # Retries
//
// The SDK retries 408, 409, 429 and 5xx twice by default. llmkit's
// resilience package owns retries, so the adapter sends
// option.WithMaxRetries(0) with every request: one Generate is one HTTP
// request. A caller who wants the SDK to retry anyway passes
// WithRequestOptions(option.WithMaxRetries(n)), which comes later and wins.
//
// # Streams
//
// When Request.Stream is set the adapter streams with stream_options
// include_usage, calls Stream once per non-empty content delta from the
// calling goroutine, and returns the aggregated Response. The SDK's
// ssestream.Stream hides the "data: [DONE]" marker (it ends iteration the
// same way for [DONE] and for a connection that simply closed), so the
// adapter feeds the SDK stream through a thin decoder that records the
// marker. A stream that ends without [DONE], or without a finish reason, is
// an *llm.Error of KindStreamCut, never a clean short answer.
//
// # Errors
//
// Every failure is an *llm.Error with Provider "openai" (see WithProvider):
// 429 rate_limited (RetryAfter from retry-after-ms or retry-after, seconds or
// an HTTP date), 408 timeout, 401/403 auth, 5xx unavailable, 529 overloaded,
// the context_length_exceeded and string_above_max_length codes
// context_length, the content_filter and content_policy_violation codes
// content_filter, other 4xx bad_request, a canceled context canceled, a
// passed deadline timeout, connection failures unavailable. Message is the
// provider's message with the request's own credentials removed and
// llm.Redact applied; Quota carries the x-ratelimit-* headers of the error
// response. Err is the SDK's *openai.Error (or the transport error), so
// errors.As still reaches it.
package openai
