package anthropic

import (
	"strings"

	sdk "github.com/anthropics/anthropic-sdk-go"

	"github.com/llmkit/llmkit/llm"
)

// toResponse maps a Message: the text blocks concatenated in order, the
// other blocks (thinking, tool use) left out.
func toResponse(m *sdk.Message) *llm.Response {
	resp := &llm.Response{
		ID:           m.ID,
		Model:        string(m.Model),
		FinishReason: finishReason(m.StopReason),
		Usage: usage{
			input:      m.Usage.InputTokens,
			output:     m.Usage.OutputTokens,
			cacheRead:  m.Usage.CacheReadInputTokens,
			cacheWrite: m.Usage.CacheCreationInputTokens,
		}.llm(),
	}
	n, first := 0, -1
	for i := range m.Content {
		if m.Content[i].Type == "text" {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	switch {
	case n == 1:
		resp.Text = m.Content[first].Text
	case n > 1:
		var b strings.Builder
		for i := range m.Content {
			if m.Content[i].Type == "text" {
				b.WriteString(m.Content[i].Text)
			}
		}
		resp.Text = b.String()
	}
	return resp
}

// finishReason maps stop_reason. Values llmkit has no name for (pause_turn,
// and any the API adds later) pass through unchanged.
func finishReason(r sdk.StopReason) llm.FinishReason {
	switch r {
	case sdk.StopReasonEndTurn, sdk.StopReasonStopSequence:
		return llm.FinishStop
	case sdk.StopReasonMaxTokens, sdk.StopReasonModelContextWindowExceeded:
		return llm.FinishLength
	case sdk.StopReasonToolUse:
		return llm.FinishToolCalls
	case sdk.StopReasonRefusal:
		return llm.FinishContentFilter
	}
	return llm.FinishReason(r)
}

// usage is Anthropic's token accounting. Its input_tokens counts only the
// tokens after the last cache breakpoint; the cache reads and writes are
// counted apart.
type usage struct {
	input, output, cacheRead, cacheWrite int64
}

// llm converts to llm.Usage, whose InputTokens is the whole prompt (so that
// CachedInputTokens is a part of it, as the llm package defines and as
// OpenAI reports): input + cache reads + cache writes.
func (u usage) llm() llm.Usage {
	return llm.Usage{
		InputTokens:       int(u.input + u.cacheRead + u.cacheWrite),
		OutputTokens:      int(u.output),
		CachedInputTokens: int(u.cacheRead),
	}
}
