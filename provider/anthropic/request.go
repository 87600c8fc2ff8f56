package anthropic

import (
	"strconv"
	"strings"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/packages/param"

	"github.com/llmkit/llmkit/llm"
)

// maxTemperature is the top of Anthropic's temperature range; llm.Request
// allows up to 2 (OpenAI's range).
const maxTemperature = 1.0

// params maps req onto the Messages API's parameters. Only what req sets is
// sent. req has been validated. Seed is not sent: the Messages API has no
// seed, and a fallback chain may send one request to several providers.
func (c *Client) params(req *llm.Request) (sdk.MessageNewParams, error) {
	p := sdk.MessageNewParams{Model: c.model, MaxTokens: c.maxTokens}
	if req.Model != "" {
		p.Model = sdk.Model(req.Model)
	}
	if req.MaxTokens > 0 {
		p.MaxTokens = int64(req.MaxTokens)
	}
	if t := req.Temperature; t != nil {
		if *t > maxTemperature {
			return p, &llm.Error{Kind: llm.KindBadRequest, Provider: c.provider,
				Message: "temperature " + strconv.FormatFloat(*t, 'g', -1, 64) + " is out of Anthropic's range [0, 1]"}
		}
		p.Temperature = param.NewOpt(*t)
	}
	if tp := req.TopP; tp != nil {
		p.TopP = param.NewOpt(*tp)
	}
	if len(req.Stop) > 0 {
		p.StopSequences = req.Stop // read only by the SDK
	}

	// System messages in the list fold into the system parameter, after
	// Request.System, in order; the others become turns. The content
	// blocks of all turns share two allocations.
	system, turns := req.System, 0
	nsys := 0
	for i := range req.Messages {
		if req.Messages[i].Role == llm.RoleSystem {
			nsys++
		} else {
			turns++
		}
	}
	if nsys > 0 {
		system = foldSystem(req)
	}
	if system != "" {
		p.System = []sdk.TextBlockParam{{Text: system}}
	}
	msgs := make([]sdk.MessageParam, 0, turns)
	blocks := make([]sdk.ContentBlockParamUnion, turns)
	texts := make([]sdk.TextBlockParam, turns)
	j := 0
	for i := range req.Messages {
		m := &req.Messages[i]
		role := sdk.MessageParamRoleUser
		switch m.Role {
		case llm.RoleSystem:
			continue
		case llm.RoleAssistant:
			role = sdk.MessageParamRoleAssistant
		}
		texts[j].Text = m.Content
		blocks[j].OfText = &texts[j]
		msgs = append(msgs, sdk.MessageParam{Role: role, Content: blocks[j : j+1 : j+1]})
		j++
	}
	p.Messages = msgs
	return p, nil
}

// foldSystem joins Request.System and the system messages, blank line
// separated, skipping empty parts.
func foldSystem(req *llm.Request) string {
	var b strings.Builder
	add := func(s string) {
		if s == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(s)
	}
	add(req.System)
	for i := range req.Messages {
		if req.Messages[i].Role == llm.RoleSystem {
			add(req.Messages[i].Content)
		}
	}
	return b.String()
}
