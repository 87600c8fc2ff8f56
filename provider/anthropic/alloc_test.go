package anthropic

import (
	"net/http"
	"testing"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go"

	"github.com/llmkit/llmkit/llm"
)

// The adapter's own per-call work, pinned so that a change that adds
// allocations to the hot path fails here and not only in a benchmark.
func TestAllocationBudget(t *testing.T) {
	c, err := New(&sdk.Client{})
	if err != nil {
		t.Fatal(err)
	}
	req := &llm.Request{System: "Be terse.", Messages: []llm.Message{llm.User("a"), llm.Assistant("b"), llm.User("c")},
		Temperature: llm.Ptr(0.2), TopP: llm.Ptr(0.9), Stop: []string{"END"}}
	msg := &sdk.Message{ID: "msg_1", Model: "claude-x", StopReason: sdk.StopReasonEndTurn,
		Content: []sdk.ContentBlockUnion{{Type: "text", Text: "hello"}}}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	h := quotaHeaders(now)
	var raw *http.Response
	budgets := []struct {
		name string
		max  float64
		f    func()
	}{
		// messages, their content blocks, their text blocks, the system block.
		{"params", 4, func() { _, _ = c.params(req) }},
		// the options slice and WithResponseInto's closure.
		{"callOptions", 2, func() { _ = c.callOptions(req, &raw) }},
		{"toResponse", 1, func() { _ = toResponse(msg) }},
		{"parseQuota", 1, func() { _ = parseQuota(h, now) }},
		{"Validate", 0, func() { _ = req.Validate() }},
	}
	for _, b := range budgets {
		got := testing.AllocsPerRun(200, b.f)
		t.Logf("%s: %v", b.name, got)
		if got > b.max {
			t.Errorf("%s: %v allocs per call, budget %v", b.name, got, b.max)
		}
	}
}
