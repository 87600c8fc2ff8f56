package router_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/router"
)

// twoOnOneScript builds a router whose two deployments share one scripted
// fake, so that the script runs in call order whichever deployment the
// draw picks; each sends its own model, so the fake's records tell them
// apart.
func twoOnOneScript(t *testing.T, steps ...llmtest.Step) (*router.Router, *llmtest.Fake) {
	up := &llmtest.Fake{Steps: steps}
	return mustNew(t, router.Config{Deployments: []router.Deployment{
		{Name: "a", Client: up, Model: "model-a", Weight: 1},
		{Name: "b", Client: up, Model: "model-b", Weight: 1},
	}}), up
}

func streamed(t *testing.T, r llm.Client) (chunks []llm.Chunk, resp *llm.Response, err error) {
	req := llm.Prompt("stream me")
	req.Stream = func(ch llm.Chunk) error {
		chunks = append(chunks, ch)
		return nil
	}
	resp, err = r.Generate(context.Background(), req)
	return chunks, resp, err
}

// A stream whose deployment fails before its first chunk moves to the
// next deployment; the caller sees that one's chunks only, numbered from 0.
func TestStreamFailsOverBeforeFirstChunk(t *testing.T) {
	for _, first := range []llmtest.Step{
		{Err: llmtest.Error(llm.KindUnavailable)},
		{Err: llmtest.Error(llm.KindOverloaded)},
		{Err: &llm.Error{Kind: llm.KindStreamCut, Message: "connection closed before any chunk"}},
	} {
		r, up := twoOnOneScript(t, first, llmtest.Step{Chunks: []string{"fresh", " answer"}})
		chunks, resp, err := streamed(t, r)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		var b strings.Builder
		for i, ch := range chunks {
			if ch.Index != i {
				t.Fatalf("chunk %d has Index %d", i, ch.Index)
			}
			b.WriteString(ch.Text)
		}
		if b.String() != "fresh answer" || resp.Text != "fresh answer" {
			t.Fatalf("streamed %q, Text %q; want the second deployment's answer only", b.String(), resp.Text)
		}
		reqs := up.Requests()
		if len(reqs) != 2 || reqs[0].Model == reqs[1].Model {
			t.Fatalf("upstream saw %d calls; want one per deployment", len(reqs))
		}
	}
}

// Once a chunk reached the caller, a failure is returned as it is: a cut
// stays stream_cut, and no other deployment is asked (which would repeat
// text the caller already has).
func TestStreamNeverFailsOverAfterFirstChunk(t *testing.T) {
	r, up := twoOnOneScript(t,
		llmtest.Step{Chunks: []string{"one", " two", " three"}, CutAfter: 2},
		llmtest.Step{Chunks: []string{"duplicate"}})
	chunks, resp, err := streamed(t, r)
	if resp != nil || llm.KindOf(err) != llm.KindStreamCut {
		t.Fatalf("cut stream: resp %v err %v, want stream_cut", resp, err)
	}
	if len(chunks) != 2 || chunks[0].Text+chunks[1].Text != "one two" || up.Calls() != 1 {
		t.Fatalf("chunks %v after %d upstream calls; want \"one two\" from one call", chunks, up.Calls())
	}
	// An unavailable error after output is not failed over either.
	r, up = twoOnOneScript(t,
		llmtest.Step{Chunks: []string{"one", " two"}, CutAfter: 1, Err: llmtest.Error(llm.KindUnavailable)},
		llmtest.Step{Chunks: []string{"duplicate"}})
	if _, _, err := streamed(t, r); llm.KindOf(err) != llm.KindUnavailable || up.Calls() != 1 {
		t.Fatalf("failure after output: %v after %d calls, want unavailable after 1", err, up.Calls())
	}
}

// A caller's own stream error stops the call: nothing else is tried.
func TestStreamCallbackErrorStops(t *testing.T) {
	r, up := twoOnOneScript(t, llmtest.Step{Chunks: []string{"a", "b"}})
	req := llm.Prompt("x")
	req.Stream = func(llm.Chunk) error { return context.Canceled }
	if _, err := r.Generate(context.Background(), req); err != context.Canceled || up.Calls() != 1 {
		t.Fatalf("callback error: %v after %d calls, want the callback's error after 1", err, up.Calls())
	}
}

// AttemptTimeout bounds a stream's wait for its first chunk only: a slow
// stream that started in time is not cut.
func TestAttemptTimeoutFirstChunkOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := &llmtest.Fake{Default: llmtest.Step{Latency: 500 * time.Millisecond, ChunkDelay: 2 * time.Second, Chunks: []string{"a", "b", "c"}}}
		r := mustNew(t, router.Config{AttemptTimeout: time.Second, Deployments: []router.Deployment{{Name: "s", Client: slow, Weight: 1}}})
		chunks, resp, err := streamed(t, r)
		if err != nil || len(chunks) != 3 || resp.Text != "abc" {
			t.Fatalf("slow stream: %v, %d chunks; want all three", err, len(chunks))
		}
	})
}
