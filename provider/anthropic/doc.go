// Package anthropic adapts the official Anthropic Go SDK
// (github.com/anthropics/anthropic-sdk-go) to llm.Client, over the Messages
// API, streamed and not.
//
// Wrap a client you already have with New, or let NewFromConfig build one
// from an API key (ANTHROPIC_API_KEY when none is given):
//
//	sc := sdk.NewClient()                      // your client, your options
//	client, err := anthropic.New(&sc, anthropic.WithModel("claude-sonnet-5-5"))
//
// The SDK's own retries are off on every request the adapter makes
// (option.WithMaxRetries(0)): retries belong to the resilience package,
// which sees every attempt. So a 5xx costs exactly one HTTP request.
//
// # Mapping
//
// Request.System and any RoleSystem messages become the system parameter;
// user and assistant messages become turns. MaxTokens 0 sends the default
// (WithMaxTokens, 1024), since the API requires max_tokens. Temperature
// above 1 (Anthropic's maximum; llm allows 2) is a bad_request from the
// adapter, before any call. Seed is ignored: the API has none. Extra
// entries are set as top-level JSON fields and win over the typed fields.
//
// Text blocks of the answer are concatenated. stop_reason end_turn and
// stop_sequence map to FinishStop, max_tokens to FinishLength, tool_use to
// FinishToolCalls, refusal to FinishContentFilter (a refusal is an answer,
// not an error). Usage.InputTokens is the whole prompt: input_tokens plus
// cache reads and writes; CachedInputTokens is cache_read_input_tokens.
//
// # Errors
//
// Every failure is an *llm.Error with Provider "anthropic": the error type
// of the body decides the Kind (rate_limit_error → rate_limited with
// RetryAfter, overloaded_error → overloaded, api_error → unavailable,
// authentication/permission/billing → auth, invalid_request_error →
// bad_request, or context_length when the prompt is too long), then the
// status. Messages are redacted and never quote the SDK's error text. The
// anthropic-ratelimit-* headers fill Response.Quota and Error.Quota.
package anthropic
