package resilience

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestFallbackChainOrder(t *testing.T) {
	down := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
	other := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindOverloaded)}}
	staleCalls := 0
	stale := func(ctx context.Context, req *llm.Request) (*llm.Response, bool) {
		staleCalls++
		return &llm.Response{Text: "from the stale cache"}, staleCalls == 1
	}
	c := wrap(t, Config{Fallback: &FallbackConfig{Clients: []llm.Client{other}, Models: []string{"small"}, Stale: stale}}, down)
	ctx, rec := observed()

	resp, err := c.Generate(ctx, llm.Prompt("x"))
	if err != nil || resp.Text != "from the stale cache" || !resp.Degraded || resp.DegradedReason != llm.KindUnavailable {
		t.Fatalf("resp %+v err %v, want the stale answer marked degraded", resp, err)
	}
	if other.Calls() != 1 || down.Calls() != 2 || down.Requests()[1].Model != "small" {
		t.Fatalf("the other client (%d calls) and the model fallback (%v) were not tried first", other.Calls(), down.Requests())
	}
	resp, err = c.Generate(ctx, llm.Prompt("x"))
	if err != nil || resp.Text != DefaultErrorMessage || !resp.Degraded {
		t.Fatalf("resp %+v err %v, want the static message", resp, err)
	}
	ev := rec.Events(llm.EventFallback)
	if len(ev) != 2 || ev[0].Source != "stale" || ev[1].Source != "static" || ev[0].Reason != "unavailable" {
		t.Fatalf("fallback events %+v", ev)
	}
}

func TestFallbackClientAnswers(t *testing.T) {
	down := &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindRateLimited)}}
	backup := &llmtest.Fake{Default: llmtest.Step{Text: "backup"}}
	c := wrap(t, Config{Fallback: &FallbackConfig{Clients: []llm.Client{backup}}}, down)
	ctx, rec := observed()
	resp, err := c.Generate(ctx, llm.Prompt("x"))
	if err != nil || resp.Text != "backup" || !resp.Degraded || resp.DegradedReason != llm.KindRateLimited {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if ev := rec.Events(llm.EventFallback); len(ev) != 1 || ev[0].Source != "client" || ev[0].Reason != "rate_limited" {
		t.Fatalf("events %+v", ev)
	}
}

func TestFallbackTimeoutMessageAndStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := wrap(t, Config{Fallback: &FallbackConfig{}, Timeout: TimeoutConfig{Attempt: time.Second}},
			&llmtest.Fake{Default: llmtest.Step{Hang: true}})
		var got strings.Builder
		req := llm.Prompt("x")
		req.Stream = func(ch llm.Chunk) error { got.WriteString(ch.Text); return nil }
		resp, err := c.Generate(context.Background(), req)
		if err != nil || resp.Text != DefaultTimeoutMessage || resp.DegradedReason != llm.KindTimeout {
			t.Fatalf("resp %+v err %v", resp, err)
		}
		if got.String() != DefaultTimeoutMessage {
			t.Fatalf("streamed %q", got.String())
		}
	})
}

func TestFallbackNeverOnBadRequestOrCancel(t *testing.T) {
	c := wrap(t, Config{Fallback: &FallbackConfig{}}, &llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindBadRequest)}})
	if _, err := c.Generate(context.Background(), llm.Prompt("x")); llm.KindOf(err) != llm.KindBadRequest {
		t.Fatalf("bad request fell back: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Generate(ctx, llm.Prompt("x")); llm.KindOf(err) != llm.KindCanceled {
		t.Fatalf("cancel fell back: %v", err)
	}
}

func TestBreakerOpenFallsBack(t *testing.T) {
	b := breaker(t, BreakerConfig{FailureThreshold: 1})
	force(b, true)
	fake := &llmtest.Fake{}
	c := wrap(t, Config{Fallback: &FallbackConfig{}, SharedBreaker: b}, fake)
	resp, err := c.Generate(context.Background(), llm.Prompt("x"))
	if err != nil || resp.DegradedReason != llm.KindCircuitOpen || fake.Calls() != 0 {
		t.Fatalf("resp %+v err %v calls %d", resp, err, fake.Calls())
	}
}
