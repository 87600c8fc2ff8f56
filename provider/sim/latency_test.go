package sim_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
)

func TestLatencyExact(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg          sim.Config
		ttft, perTok time.Duration
	}{
		"configured": {sim.Config{TTFT: 120 * time.Millisecond, PerToken: 7 * time.Millisecond, Jitter: -1}, 120 * time.Millisecond, 7 * time.Millisecond},
		"defaults":   {sim.Config{Jitter: -1}, sim.DefaultTTFT, sim.DefaultPerToken},
		"no ttft":    {sim.Config{TTFT: -1, PerToken: 3 * time.Millisecond, Jitter: -1}, 0, 3 * time.Millisecond},
		"instant":    {sim.Config{TTFT: -1, PerToken: -1}, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newModel(t, tc.cfg)
				for i := range 20 {
					resp, took, err := timed(t.Context(), m, llm.Prompt(fmt.Sprint("latency ", i)))
					if err != nil {
						t.Fatal(err)
					}
					if want := tc.ttft + time.Duration(resp.Usage.OutputTokens)*tc.perTok; took != want {
						t.Fatalf("call %d (%d tokens) took %v, want %v", i, resp.Usage.OutputTokens, took, want)
					}
				}
			})
		})
	}
}

func TestJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const j = 0.5
		ttft, perTok := 100*time.Millisecond, 10*time.Millisecond
		m := newModel(t, sim.Config{Seed: 3, TTFT: ttft, PerToken: perTok, Jitter: j})
		lowest, highest := 2.0, 0.0
		for i := range 500 {
			resp, took, err := timed(t.Context(), m, llm.Prompt("same prompt every time"))
			if err != nil {
				t.Fatal(err)
			}
			n := resp.Usage.OutputTokens
			nominal := ttft + time.Duration(n)*perTok
			// Each of TTFT and PerToken is scaled and truncated to the
			// nanosecond, so allow n+1 ns below the bound.
			lo := time.Duration((1-j)*float64(nominal)) - time.Duration(n+1)
			hi := time.Duration((1 + j) * float64(nominal))
			if took < lo || took > hi {
				t.Fatalf("call %d took %v, want within [%v, %v]", i, took, lo, hi)
			}
			ratio := float64(took) / float64(nominal)
			lowest, highest = min(lowest, ratio), max(highest, ratio)
		}
		if lowest > 0.6 || highest < 1.4 {
			t.Fatalf("latency ratios span [%.3f, %.3f]; with jitter %v they should reach near 0.5 and 1.5", lowest, highest, j)
		}
	})
}

func TestSetLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, sim.Config{TTFT: -1, PerToken: -1, Jitter: -1})
		check := func(ttft, perTok time.Duration) {
			t.Helper()
			resp, took, err := timed(t.Context(), m, llm.Prompt("slow down"))
			if err != nil {
				t.Fatal(err)
			}
			if want := ttft + time.Duration(resp.Usage.OutputTokens)*perTok; took != want {
				t.Fatalf("took %v, want %v", took, want)
			}
		}
		check(0, 0)
		m.SetLatency(2*time.Second, 40*time.Millisecond)
		check(2*time.Second, 40*time.Millisecond)
		m.SetLatency(0, 0)
		check(sim.DefaultTTFT, sim.DefaultPerToken)
		m.SetLatency(-1, time.Millisecond)
		check(0, time.Millisecond)
	})
}

func TestCancelDuringWait(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newModel(t, sim.Config{TTFT: time.Hour})
				ctx, cancel := context.WithCancel(t.Context())
				req := llm.Prompt("never answered")
				chunks := 0
				if stream {
					req.Stream = func(llm.Chunk) error { chunks++; return nil }
				}
				var (
					err  error
					took time.Duration
				)
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, took, err = timed(ctx, m, req)
				}()
				synctest.Wait() // the call is blocked on its timer
				cancel()
				synctest.Wait() // and has returned without any time passing
				select {
				case <-done:
				default:
					t.Fatal("Generate did not return after its context was canceled")
				}
				if llm.KindOf(err) != llm.KindCanceled || !errors.Is(err, context.Canceled) || took != 0 || chunks != 0 {
					t.Fatalf("err %v after %v and %d chunks; want canceled at once", err, took, chunks)
				}
			})
		})
	}
}

func TestCancelMidStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, sim.Config{TTFT: 10 * time.Millisecond, PerToken: time.Millisecond, Jitter: -1, MinTokens: 10})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req := llm.Prompt("stop me")
		chunks := 0
		req.Stream = func(c llm.Chunk) error {
			chunks++
			if c.Index == 2 {
				cancel()
			}
			return nil
		}
		resp, took, err := timed(ctx, m, req)
		if resp != nil || llm.KindOf(err) != llm.KindCanceled {
			t.Fatalf("Generate = %v, %v; want canceled", resp, err)
		}
		if chunks != 3 || took != 12*time.Millisecond {
			t.Fatalf("%d chunks in %v; want 3 in 12ms", chunks, took)
		}
	})
}

func TestDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, sim.Config{TTFT: time.Second})
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		resp, took, err := timed(ctx, m, llm.Prompt("too slow"))
		if resp != nil || llm.KindOf(err) != llm.KindTimeout || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Generate = %v, %v; want a timeout", resp, err)
		}
		if took != 20*time.Millisecond {
			t.Fatalf("returned after %v, want at the deadline, 20ms", took)
		}
	})
}

func TestCanceledBeforeCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, sim.Config{Errors: map[llm.Kind]float64{llm.KindAuth: 1}})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		resp, took, err := timed(ctx, m, llm.Prompt("late"))
		var e *llm.Error
		if resp != nil || !errors.As(err, &e) || e.Kind != llm.KindCanceled || e.Provider != sim.Provider || took != 0 {
			t.Fatalf("Generate = %v, %v after %v; want canceled at once", resp, err, took)
		}
	})
}
