package stack

import (
	"os"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/anthropic"
	"github.com/llmkit/llmkit/llm/openai"
)

// ProviderFromEnv returns the real endpoint the environment names, if any:
// OPENAI_API_KEY and/or OPENAI_BASE_URL (OpenAI or any OpenAI-compatible
// server) first, then ANTHROPIC_API_KEY. LLMKIT_MODEL picks the model. ok
// is false when none is set.
func ProviderFromEnv() (client llm.Client, provider, model string, ok bool, err error) {
	model = os.Getenv("LLMKIT_MODEL")
	if os.Getenv("OPENAI_API_KEY") != "" || os.Getenv("OPENAI_BASE_URL") != "" {
		if model == "" {
			model = "gpt-4o-mini"
		}
		c, err := openai.NewFromConfig(os.Getenv("OPENAI_API_KEY"), os.Getenv("OPENAI_BASE_URL"), openai.WithModel(model))
		return c, "openai", model, err == nil, err
	}
	if os.Getenv(anthropic.EnvAPIKey) != "" {
		if model == "" {
			model = anthropic.DefaultModel
		}
		c, err := anthropic.NewFromConfig("", "", anthropic.WithModel(model))
		return c, "anthropic", model, err == nil, err
	}
	return nil, "", "", false, nil
}
