package sim_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
)

type seen struct {
	chunk llm.Chunk
	at    time.Duration
}

// record returns a Stream callback that keeps every chunk and when it came.
func record(got *[]seen) func(llm.Chunk) error {
	start := time.Now()
	return func(c llm.Chunk) error {
		*got = append(*got, seen{c, time.Since(start)})
		return nil
	}
}

func TestStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttft, perTok = 40 * time.Millisecond, 5 * time.Millisecond
		m := newModel(t, sim.Config{TTFT: ttft, PerToken: perTok, Jitter: -1})
		for i := range 10 {
			plain := llm.Prompt(fmt.Sprint("stream ", i))
			want, err := m.Generate(t.Context(), plain)
			if err != nil {
				t.Fatal(err)
			}

			var got []seen
			req := llm.Prompt(fmt.Sprint("stream ", i))
			req.Stream = record(&got)
			resp, took, err := timed(t.Context(), m, req)
			if err != nil {
				t.Fatal(err)
			}
			n := resp.Usage.OutputTokens
			if resp.Text != want.Text || len(got) != n {
				t.Fatalf("streamed %q in %d chunks for %d tokens; want %q unstreamed", resp.Text, len(got), n, want.Text)
			}
			var b strings.Builder
			for j, s := range got {
				if s.chunk.Index != j {
					t.Fatalf("chunk %d has Index %d", j, s.chunk.Index)
				}
				if at := ttft + time.Duration(j)*perTok; s.at != at {
					t.Fatalf("chunk %d came at %v, want %v", j, s.at, at)
				}
				word := strings.TrimPrefix(s.chunk.Text, " ")
				if (j > 0) != (word != s.chunk.Text) || word == "" || strings.Contains(word, " ") {
					t.Fatalf("chunk %d is %q, want one word with a space before all but the first", j, s.chunk.Text)
				}
				b.WriteString(s.chunk.Text)
			}
			if b.String() != resp.Text {
				t.Fatalf("chunks join to %q, Text is %q", b.String(), resp.Text)
			}
			if want := ttft + time.Duration(n)*perTok; took != want {
				t.Fatalf("stream of %d took %v, want %v, as long as the plain call", n, took, want)
			}
		}
	})
}

func TestStreamMaxTokens(t *testing.T) {
	m := newModel(t, instant)
	var got []seen
	req := llm.Prompt("long story")
	req.MaxTokens = 3
	req.Stream = record(&got)
	resp := generate(t, m, req)
	if len(got) != 3 || resp.Usage.OutputTokens != 3 || resp.FinishReason != llm.FinishLength {
		t.Fatalf("%d chunks, %d tokens, finish %q; want 3, 3, length", len(got), resp.Usage.OutputTokens, resp.FinishReason)
	}
}

func TestStreamCallbackError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttft, perTok = 40 * time.Millisecond, 5 * time.Millisecond
		m := newModel(t, sim.Config{TTFT: ttft, PerToken: perTok, Jitter: -1, MinTokens: 10})
		stop := errors.New("reader went away")
		calls := 0
		req := llm.Prompt("talk to me")
		req.Stream = func(c llm.Chunk) error {
			calls++
			if c.Index == 3 {
				return stop
			}
			return nil
		}
		resp, took, err := timed(t.Context(), m, req)
		if resp != nil || err != stop {
			t.Fatalf("Generate = %v, %v; want the callback's error as is", resp, err)
		}
		if calls != 4 || took != ttft+3*perTok {
			t.Fatalf("%d callbacks in %v; want 4, ending at once at %v", calls, took, ttft+3*perTok)
		}
	})
}

func TestStreamCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttft, perTok = 40 * time.Millisecond, 5 * time.Millisecond
		cfg := sim.Config{TTFT: ttft, PerToken: perTok, Jitter: -1}
		healthy := newModel(t, cfg)
		cfg.Errors = map[llm.Kind]float64{llm.KindStreamCut: 1}
		cutting := newModel(t, cfg)
		cuts := map[int]bool{}
		for i := range 30 {
			full, err := healthy.Generate(t.Context(), llm.Prompt(fmt.Sprint("cut ", i)))
			if err != nil {
				t.Fatal(err)
			}
			var got []seen
			req := llm.Prompt(fmt.Sprint("cut ", i))
			req.Stream = record(&got)
			resp, took, err := timed(t.Context(), cutting, req)
			if resp != nil || !errors.Is(err, llm.ErrStreamCut) || llm.KindOf(err) != llm.KindStreamCut {
				t.Fatalf("Generate = %v, %v; want a stream_cut error", resp, err)
			}
			k := len(got)
			if k < 1 || k >= full.Usage.OutputTokens {
				t.Fatalf("cut after %d of %d chunks, want some but not all", k, full.Usage.OutputTokens)
			}
			var b strings.Builder
			for _, s := range got {
				b.WriteString(s.chunk.Text)
			}
			if !strings.HasPrefix(full.Text, b.String()+" ") {
				t.Fatalf("chunks before the cut %q are not the start of %q", b.String(), full.Text)
			}
			if took != ttft+time.Duration(k)*perTok {
				t.Fatalf("cut after %d chunks at %v, want when chunk %d was due, %v", k, took, k, ttft+time.Duration(k)*perTok)
			}
			cuts[k] = true
		}
		if len(cuts) < 3 {
			t.Fatalf("streams were cut after %v chunks only; want the place to vary", cuts)
		}

		// A call that does not stream fails before any output.
		resp, took, err := timed(t.Context(), cutting, llm.Prompt("plain"))
		if resp != nil || !errors.Is(err, llm.ErrStreamCut) || took != ttft {
			t.Fatalf("unstreamed cut: %v, %v after %v; want stream_cut after %v", resp, err, took, ttft)
		}
	})
}

func TestStreamCutOneWord(t *testing.T) {
	m := newModel(t, sim.Config{TTFT: -1, PerToken: -1, MinTokens: 1, MaxTokens: 1, Errors: map[llm.Kind]float64{llm.KindStreamCut: 1}})
	chunks := 0
	req := llm.Prompt("one")
	req.Stream = func(llm.Chunk) error { chunks++; return nil }
	if _, err := m.Generate(t.Context(), req); !errors.Is(err, llm.ErrStreamCut) || chunks != 0 {
		t.Fatalf("%v after %d chunks; a one-word answer has nothing to deliver before the cut", err, chunks)
	}
}
