package llmtest_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A ClientFunc that forwards to upstream is the smallest conforming client.
func TestConformanceClientFunc(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, upstream llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			return upstream.Generate(ctx, req)
		})
	})
}

// The fake itself conforms, so tests built on it test the code under test.
func TestConformanceFake(t *testing.T) {
	llmtest.Run(t, func(t *testing.T, upstream llm.Client) llm.Client { return upstream })
}

func TestFakeScript(t *testing.T) {
	f := &llmtest.Fake{Steps: []llmtest.Step{
		{Err: llmtest.Error(llm.KindRateLimited)},
		{Text: "second"},
	}}
	_, err := f.Generate(context.Background(), llm.Prompt("a"))
	if !errors.Is(err, llm.ErrRateLimited) || llm.RetryAfterOf(err) != time.Second {
		t.Fatalf("step 0: %v", err)
	}
	resp, err := f.Generate(context.Background(), llm.Prompt("b"))
	if err != nil || resp.Text != "second" {
		t.Fatalf("step 1: %v %v", resp, err)
	}
	resp, err = f.Generate(context.Background(), llm.Prompt("c"))
	if err != nil || resp.Text != "ok" {
		t.Fatalf("default: %v %v", resp, err)
	}
	if f.Calls() != 3 {
		t.Fatalf("Calls = %d", f.Calls())
	}
	reqs := f.Requests()
	if len(reqs) != 3 || reqs[2].Messages[0].Content != "c" {
		t.Fatalf("Requests = %+v", reqs)
	}
}

func TestFakeLatencyAndPeak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &llmtest.Fake{Default: llmtest.Step{Latency: time.Second}}
		start := time.Now()
		done := make(chan struct{})
		for range 10 {
			go func() {
				_, _ = f.Generate(context.Background(), llm.Prompt("x"))
				done <- struct{}{}
			}()
		}
		for range 10 {
			<-done
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("10 concurrent calls of 1s latency took %v of fake time, want 1s", d)
		}
		if f.PeakConcurrency() != 10 {
			t.Fatalf("PeakConcurrency = %d, want 10", f.PeakConcurrency())
		}
		if f.InFlight() != 0 {
			t.Fatalf("InFlight = %d after all returned", f.InFlight())
		}
	})
}

func TestFakeHangUntilDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &llmtest.Fake{Default: llmtest.Step{Hang: true}}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		_, err := f.Generate(ctx, llm.Prompt("x"))
		if !errors.Is(err, llm.ErrTimeout) {
			t.Fatalf("hang past deadline: %v, want timeout", err)
		}
		if time.Since(start) != 3*time.Second {
			t.Fatalf("returned after %v, want the 3s deadline", time.Since(start))
		}
	})
}

func TestFakeStreamCutAndPanic(t *testing.T) {
	f := &llmtest.Fake{Steps: []llmtest.Step{
		{Text: "a b c d", CutAfter: 3},
		{Panic: "boom"},
	}}
	var got []string
	req := llm.Prompt("x")
	req.Stream = func(c llm.Chunk) error { got = append(got, c.Text); return nil }
	_, err := f.Generate(context.Background(), req)
	if !errors.Is(err, llm.ErrStreamCut) || len(got) != 3 {
		t.Fatalf("cut: err=%v chunks=%q", err, got)
	}
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v, want boom", r)
		}
	}()
	_, _ = f.Generate(context.Background(), llm.Prompt("y"))
	t.Fatal("the panic step did not panic")
}

func TestSplitWords(t *testing.T) {
	for _, s := range []string{"", "one", "one two  three", " lead", "trail "} {
		parts := llmtest.SplitWords(s)
		joined := ""
		for _, p := range parts {
			joined += p
		}
		if joined != s {
			t.Fatalf("SplitWords(%q) = %q joins to %q", s, parts, joined)
		}
	}
	if n := len(llmtest.SplitWords("a b c")); n != 3 {
		t.Fatalf("SplitWords(a b c) has %d parts", n)
	}
}
