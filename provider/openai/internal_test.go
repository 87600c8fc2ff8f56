package openai

import (
	"net/http"
	"strings"
	"testing"

	"github.com/llmkit/llmkit/llm"
	sdk "github.com/openai/openai-go/v3"
)

// FuzzScrub: the credential a request carried never survives in the
// message built from provider text, whatever surrounds it.
func FuzzScrub(f *testing.F) {
	f.Add("Incorrect API key provided: ", "sk-canary-0123456789abcdef", ". See docs.")
	f.Add("", "plainlocaltoken", "")
	f.Add("Authorization: Bearer ", "tok3n-xyz", "\n")
	f.Fuzz(func(t *testing.T, before, key, after string) {
		// Keys are made of the characters API keys use; anything else
		// (spaces, controls) a real header would not carry intact.
		if len(key) < 4 || strings.IndexFunc(key, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
		}) >= 0 {
			return
		}
		req, _ := http.NewRequest("POST", "http://example.invalid/", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		msg := message(APIError{Message: before + key + after}, req)
		if len(before+key+after) <= maxMessage && strings.Contains(msg, key) {
			t.Fatalf("key %q survived in %q", key, msg)
		}
	})
}

func TestKindForStreamErrorTypes(t *testing.T) {
	for typ, want := range map[string]llm.Kind{
		"server_error": llm.KindUnavailable, "rate_limit_exceeded": llm.KindRateLimited, "tokens": llm.KindRateLimited,
		"overloaded_error": llm.KindOverloaded, "invalid_request_error": llm.KindBadRequest, "who_knows": llm.KindUnknown,
	} {
		if got := kindFor(0, APIError{Type: typ}); got != want {
			t.Errorf("kindFor(0, type %q) = %v, want %v", typ, got, want)
		}
	}
	if got := kindFor(400, APIError{Type: "context_length_exceeded"}); got != llm.KindContextLength {
		t.Errorf("code in the type field: %v", got)
	}
	if got := kindFor(409, APIError{}); got != llm.KindUnavailable {
		t.Errorf("409: %v", got)
	}
}

// TestMappingAllocations pins the adapter's own per-call work: building the
// SDK parameters and mapping the completion back.
func TestMappingAllocations(t *testing.T) {
	c := &Client{model: "m", provider: DefaultProvider}
	req := &llm.Request{System: "s", Messages: []llm.Message{llm.User("hi")}, Temperature: llm.Ptr(0.0), MaxTokens: 5}
	comp := &sdk.ChatCompletion{ID: "x", Model: "m", Choices: []sdk.ChatCompletionChoice{{FinishReason: "stop"}}}
	comp.Choices[0].Message.Content = "hello"
	params := testing.AllocsPerRun(200, func() { _ = c.params(req) })
	if params > 3 {
		t.Errorf("params: %v allocs, want ≤ 3 (the message slice, one per message)", params)
	}
	resp := testing.AllocsPerRun(200, func() { _ = response(comp) })
	if resp > 1 {
		t.Errorf("response: %v allocs, want ≤ 1", resp)
	}
	h := http.Header{"X-Ratelimit-Remaining-Requests": {"5"}, "X-Ratelimit-Reset-Requests": {"1s"}}
	quota := testing.AllocsPerRun(200, func() { _ = ParseQuota(h) })
	if quota > 1 {
		t.Errorf("ParseQuota: %v allocs, want ≤ 1", quota)
	}
}
