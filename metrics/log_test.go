package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/metrics"
)

func jsonLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

var discardLogger = slog.New(slog.DiscardHandler)

func TestLogConformance(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, up llm.Client) llm.Client {
		return must(metrics.Log(slog.New(slog.NewJSONHandler(io.Discard, nil))))(up)
	})
}

func TestLogLineAndLevels(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := &llmtest.Fake{Steps: []llmtest.Step{
		{Response: &llm.Response{Usage: llm.Usage{InputTokens: 9, OutputTokens: 4}}},
		{Err: llmtest.Error(llm.KindBadRequest)},
		{Err: llmtest.Error(llm.KindUnavailable)},
		{Response: &llm.Response{Degraded: true, DegradedReason: llm.KindTimeout}},
		{Chunks: []string{"x", " y"}},
	}}
	// The events reach the log's per-call observer on the context.
	c := must(metrics.Log(logger, metrics.WithSuccessLevel(slog.LevelDebug)))(reporting(nil,
		llm.Event{Kind: llm.EventAttempt, Attempt: 1, Err: llmtest.Error(llm.KindRateLimited)},
		llm.Event{Kind: llm.EventRetry, Attempt: 1},
		llm.Event{Kind: llm.EventAttempt, Attempt: 2},
		llm.Event{Kind: llm.EventCacheMiss},
	)(fake))
	ctx := context.Background()
	_, _ = c.Generate(ctx, &llm.Request{Model: "gpt-a", Endpoint: "summarize", Messages: []llm.Message{llm.User("do not log me")}})
	_, _ = c.Generate(ctx, &llm.Request{Model: "gpt-a", Endpoint: "summarize"})
	_, _ = c.Generate(ctx, &llm.Request{Model: "gpt-a", Endpoint: "summarize"})
	_, _ = c.Generate(ctx, &llm.Request{Model: "gpt-a", Endpoint: "summarize"})
	_, _ = c.Generate(ctx, &llm.Request{Model: "gpt-a", Endpoint: "chat", Stream: func(llm.Chunk) error { return nil }})

	lines := jsonLines(t, &buf)
	if len(lines) != 5 {
		t.Fatalf("%d lines, want one per call:\n%s", len(lines), buf.String())
	}
	wantLevels := []string{"DEBUG", "WARN", "ERROR", "WARN", "DEBUG"}
	wantStatus := []string{"ok", "bad_request", "unavailable", "degraded", "ok"}
	for i, l := range lines {
		if l["level"] != wantLevels[i] || l["status"] != wantStatus[i] {
			t.Errorf("line %d: level %v status %v, want %s %s", i, l["level"], l["status"], wantLevels[i], wantStatus[i])
		}
		if l["attempts"] != 2.0 || l["retries"] != 1.0 || l["cache"] != "miss" {
			t.Errorf("line %d: attempts %v retries %v cache %v, want 2 1 miss", i, l["attempts"], l["retries"], l["cache"])
		}
	}
	first := lines[0]
	if first["endpoint"] != "summarize" || first["model"] != "gpt-a" || first["input_tokens"] != 9.0 || first["output_tokens"] != 4.0 {
		t.Errorf("first line %v", first)
	}
	if _, ok := first["prompt"]; ok || strings.Contains(buf.String(), "do not log me") {
		t.Error("prompt logged without WithPromptLogging")
	}
	if lines[2]["http_status"] != 503.0 || !strings.Contains(lines[2]["error"].(string), "unavailable") {
		t.Errorf("failure line %v", lines[2])
	}
	if lines[3]["degraded"] != true || lines[3]["degraded_reason"] != "timeout" {
		t.Errorf("degraded line %v", lines[3])
	}
	if _, ok := lines[4]["ttft"]; !ok {
		t.Errorf("stream line has no ttft: %v", lines[4])
	}
}

// At Info, a Debug success writes nothing but failures still do.
func TestLogSuccessBelowLevel(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	c := must(metrics.Log(logger, metrics.WithSuccessLevel(slog.LevelDebug), metrics.WithPromptLogging(6)))(&llmtest.Fake{Steps: []llmtest.Step{
		{}, {Err: llmtest.Error(llm.KindTimeout)},
	}})
	_, _ = c.Generate(context.Background(), llm.Prompt("prompt text"))
	_, _ = c.Generate(context.Background(), llm.Prompt("prompt text"))
	lines := jsonLines(t, &buf)
	if len(lines) != 1 || lines[0]["status"] != "timeout" || lines[0]["prompt"] != "prompt" {
		t.Fatalf("want only the failure, with the prompt cut to 6 bytes: %s", buf.String())
	}
}

func TestLogDisabledAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation pins run without -race")
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	c := must(metrics.Log(logger))(okClient)
	req := &llm.Request{Model: "m"}
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.Generate(context.Background(), req) }); n != 0 {
		t.Errorf("disabled logger: %v allocs per call, want 0", n)
	}
}
