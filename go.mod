module github.com/llmkit/llmkit

go 1.25
