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

func TestHedgeFirstSuccessWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: 10 * time.Second, Text: "slow"},
			{Latency: time.Second, Text: "fast"},
		}}
		c := wrap(t, Config{Hedge: &HedgeConfig{Delay: time.Second}}, fake)
		ctx, rec := observed()
		start := time.Now()
		resp, err := c.Generate(ctx, llm.Prompt("x"))
		if err != nil || resp.Text != "fast" || resp.Attempts != 2 {
			t.Fatalf("resp %+v err %v", resp, err)
		}
		if time.Since(start) != 2*time.Second {
			t.Fatalf("took %v, want 2s (hedge at 1s + 1s)", time.Since(start))
		}
		if ev := rec.Events(llm.EventHedge); len(ev) != 1 || ev[0].Attempt != 2 {
			t.Fatalf("hedge events %+v", ev)
		}
		if fake.InFlight() != 0 {
			t.Fatal("the losing attempt was not canceled and waited for")
		}
	})
}

func TestHedgedStreamNoDuplicateTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The primary's first chunk comes late; the hedge streams first and
		// wins, and the primary is canceled before any chunk of it is seen.
		fake := &llmtest.Fake{Steps: []llmtest.Step{
			{Latency: 5 * time.Second, Chunks: []string{"P1", "P2"}},
			{Latency: time.Second, Chunks: []string{"H1", "H2", "H3"}, ChunkDelay: 3 * time.Second},
		}}
		c := wrap(t, Config{Hedge: &HedgeConfig{Delay: time.Second}, Retry: exactRetry(3)}, fake)
		var got []string
		req := llm.Prompt("x")
		req.Stream = func(ch llm.Chunk) error { got = append(got, ch.Text); return nil }
		resp, err := c.Generate(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != "H1,H2,H3" || resp.Text != "H1H2H3" {
			t.Fatalf("caller saw %q, response %q: want the hedge's chunks only, once each", got, resp.Text)
		}
		if fake.Calls() != 2 {
			t.Fatalf("calls %d", fake.Calls())
		}
	})
}

func TestHedgedStreamCutIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &llmtest.Fake{Steps: []llmtest.Step{{Chunks: []string{"a", "b"}, CutAfter: 1}}}
		c := wrap(t, Config{Hedge: &HedgeConfig{Delay: time.Second}, Retry: exactRetry(3)}, fake)
		var got []string
		req := llm.Prompt("x")
		req.Stream = func(ch llm.Chunk) error { got = append(got, ch.Text); return nil }
		_, err := c.Generate(context.Background(), req)
		if llm.KindOf(err) != llm.KindStreamCut || len(got) != 1 || fake.Calls() != 1 {
			t.Fatalf("err %v chunks %q calls %d", err, got, fake.Calls())
		}
	})
}

func TestHedgeQuantileDelay(t *testing.T) {
	h, err := newHedger(HedgeConfig{Delay: time.Second, Quantile: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 32; i++ {
		h.observe(time.Duration(i) * time.Millisecond)
	}
	if d := h.currentDelay(); d < 27*time.Millisecond || d > 30*time.Millisecond {
		t.Fatalf("p90 delay %v", d)
	}
}
