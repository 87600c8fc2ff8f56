package openai

import (
	"github.com/llmkit/llmkit/llm"
	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/param"
)

// params maps an llm.Request to the SDK's chat completion parameters. Only
// fields set in the Request are set here; the SDK omits the rest.
func (c *Client) params(req *llm.Request) sdk.ChatCompletionNewParams {
	var p sdk.ChatCompletionNewParams
	p.Model = req.Model
	if p.Model == "" {
		p.Model = c.model
	}
	n := len(req.Messages)
	if req.System != "" {
		n++
	}
	p.Messages = make([]sdk.ChatCompletionMessageParamUnion, 0, n)
	if req.System != "" {
		p.Messages = append(p.Messages, sdk.SystemMessage(req.System))
	}
	for i := range req.Messages {
		m := &req.Messages[i]
		switch m.Role {
		case llm.RoleSystem:
			p.Messages = append(p.Messages, sdk.SystemMessage(m.Content))
		case llm.RoleAssistant:
			p.Messages = append(p.Messages, sdk.AssistantMessage(m.Content))
		default: // Validate allows only user beyond these two.
			p.Messages = append(p.Messages, sdk.UserMessage(m.Content))
		}
	}
	if req.MaxTokens > 0 {
		if c.legacyMaxTokens {
			p.MaxTokens = param.NewOpt(int64(req.MaxTokens))
		} else {
			p.MaxCompletionTokens = param.NewOpt(int64(req.MaxTokens))
		}
	}
	if req.Temperature != nil {
		p.Temperature = param.NewOpt(*req.Temperature)
	}
	if req.TopP != nil {
		p.TopP = param.NewOpt(*req.TopP)
	}
	if req.Seed != nil {
		p.Seed = param.NewOpt(*req.Seed)
	}
	if len(req.Stop) > 0 {
		p.Stop.OfStringArray = req.Stop
	}
	if len(req.Extra) > 0 {
		// The SDK only reads the map while encoding; it is shared, not
		// copied, and never written.
		p.SetExtraFields(req.Extra)
	}
	return p
}

// response maps a completion with at least one choice back.
func response(comp *sdk.ChatCompletion) *llm.Response {
	choice := &comp.Choices[0]
	return &llm.Response{
		ID:           comp.ID,
		Text:         choice.Message.Content,
		Model:        comp.Model,
		FinishReason: finishReason(choice.FinishReason),
		Usage:        usage(&comp.Usage),
	}
}

func usage(u *sdk.CompletionUsage) llm.Usage {
	return llm.Usage{
		InputTokens:       int(u.PromptTokens),
		OutputTokens:      int(u.CompletionTokens),
		CachedInputTokens: int(u.PromptTokensDetails.CachedTokens),
	}
}

// finishReason maps OpenAI's finish reasons; the legacy "function_call" is
// a tool call, anything unknown passes through unchanged.
func finishReason(s string) llm.FinishReason {
	switch s {
	case "stop":
		return llm.FinishStop
	case "length":
		return llm.FinishLength
	case "content_filter":
		return llm.FinishContentFilter
	case "tool_calls", "function_call":
		return llm.FinishToolCalls
	}
	return llm.FinishReason(s)
}
