// Package fromenv picks the real endpoint the example programs talk to,
// from the environment, when one is named.
package fromenv

import (
	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/anthropic"
	"github.com/llmkit/llmkit/provider/openai"
)

// Provider returns the real endpoint the environment (read through
// getenv: os.Getenv in the programs, a map in tests) names, if any:
// OPENAI_API_KEY and/or OPENAI_BASE_URL (OpenAI or any OpenAI-compatible
// server) first, then ANTHROPIC_API_KEY. LLMKIT_MODEL picks the model. ok
// is false when none is set.
func Provider(getenv func(string) string) (client llm.Client, provider, model string, ok bool, err error) {
	model = getenv("LLMKIT_MODEL")
	if getenv("OPENAI_API_KEY") != "" || getenv("OPENAI_BASE_URL") != "" {
		if model == "" {
			model = "gpt-4o-mini"
		}
		c, err := openai.NewFromConfig(getenv("OPENAI_API_KEY"), getenv("OPENAI_BASE_URL"), openai.WithModel(model))
		return c, "openai", model, err == nil, err
	}
	if key := getenv(anthropic.EnvAPIKey); key != "" {
		if model == "" {
			model = anthropic.DefaultModel
		}
		c, err := anthropic.NewFromConfig(key, "", anthropic.WithModel(model))
		return c, "anthropic", model, err == nil, err
	}
	return nil, "", "", false, nil
}
