package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/metrics"
)

// canary is a secret that must never be seen outside the request.
const canary = "sk-canaryCANARYcanary0123456789"

// A canary secret in an Authorization header pasted into the prompt, in an
// api_key field of the prompt, and in an upstream error message appears 0
// times in the log output, span attributes, span events, span status and
// metric labels — with prompt logging and content capture both opted in.
func TestSecretsNeverLeak(t *testing.T) {
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	k := newOTelKit(t)
	reg := prometheus.NewRegistry()
	prom := must(metrics.NewPrometheus(reg))
	logMW := must(metrics.Log(logger, metrics.WithPromptLogging(1000)))
	upstreamErr := &llm.Error{Kind: llm.KindAuth, Status: 401, Provider: "fake",
		Message: "invalid key: Authorization: Bearer " + canary,
		Err:     fmt.Errorf("GET https://api.example.com/v1?key=%s failed", canary)}
	fake := &llmtest.Fake{Steps: []llmtest.Step{
		{Text: "echo: x-api-key: " + canary},
		{Err: upstreamErr},
	}}
	c := llm.Wrap(fake,
		k.middleware(t, metrics.WithContentCapture(1000)),
		prom.Middleware(),
		logMW,
		reporting(prom, llm.Event{Kind: llm.EventRetry, Attempt: 1, Err: upstreamErr}, llm.Event{Kind: llm.EventFallback, Reason: canary, Source: canary},
			llm.Event{Kind: llm.EventBreakerState, Source: canary}, llm.Event{Kind: llm.EventRejected, Reason: canary}),
	)
	prompt := "Please debug this request:\nAuthorization: Bearer " + canary + "\n{\"api_key\": \"" + canary + "\"}"
	for range 2 {
		_, err := c.Generate(context.Background(), &llm.Request{Model: canary, Endpoint: canary, Tenant: canary, Messages: []llm.Message{llm.User(prompt)}})
		if err != nil && strings.Contains(err.Error(), "canary") {
			t.Errorf("returned error holds the canary: %v", err)
		}
	}

	if n := strings.Count(logBuf.String(), "canary"); n != 0 {
		t.Errorf("log output holds the canary %d times:\n%s", n, logBuf.String())
	}
	if !strings.Contains(logBuf.String(), llm.Redacted) {
		t.Error("log output shows no redaction: the test did not exercise the prompt")
	}
	for _, s := range k.spans.Ended() {
		var all strings.Builder
		for _, a := range s.Attributes() {
			all.WriteString(string(a.Key) + "=" + a.Value.String() + "\n")
		}
		for _, ev := range s.Events() {
			for _, a := range ev.Attributes {
				all.WriteString(string(a.Key) + "=" + a.Value.String() + "\n")
			}
		}
		all.WriteString(s.Name() + "\n" + s.Status().Description)
		if strings.Contains(all.String(), "canary") {
			t.Errorf("span %q leaks the canary:\n%s", s.Name(), all.String())
		}
	}
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n == 0 {
		t.Fatalf("gather: %d, %v", n, err)
	}
	for _, mf := range must(reg.Gather()) {
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if strings.Contains(lp.GetValue(), "canary") {
					t.Errorf("%s label %s=%q", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}
