package llmtest

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// Step is the scripted outcome of one call to a Fake.
type Step struct {
	// Latency is waited before the answer, or before the first chunk of a
	// stream. The wait ends early, with a canceled or timeout error, when
	// the call's context is done.
	Latency time.Duration
	// Hang blocks until the call's context is done.
	Hang bool
	// Err is returned after Latency (and after CutAfter chunks of a stream).
	Err error
	// Panic, when non-nil, is raised after Latency.
	Panic any
	// Text is the answer. For a stream it is split into Chunks words unless
	// Chunks is set. Default "ok".
	Text string
	// Chunks, when set, is the exact chunk sequence of a streamed answer;
	// Text is then their concatenation.
	Chunks []string
	// ChunkDelay is waited between chunks.
	ChunkDelay time.Duration
	// CutAfter, when > 0, ends a stream after that many chunks with a
	// KindStreamCut error (or Err, when set).
	CutAfter int
	// Response, when set, is copied into the answer (Text and chunks still
	// come from Text/Chunks when those are set).
	Response *llm.Response
}

// Fake is a scripted llm.Client. Call n (from 0) takes Steps[n], or Func(n,
// req) when Func is set, or Default once Steps run out. The zero Fake
// answers "ok" at once. A Fake is safe for concurrent use and records what
// it saw.
type Fake struct {
	Steps   []Step
	Func    func(n int, req *llm.Request) Step
	Default Step
	// Provider names the fake in the errors it makes. Default "fake".
	Provider string

	calls    atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64

	mu       sync.Mutex
	requests []llm.Request
}

var _ llm.Client = (*Fake)(nil)

// Generate plays the step for this call.
func (f *Fake) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	n := int(f.calls.Add(1) - 1)
	cur := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		p := f.peak.Load()
		if cur <= p || f.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	f.mu.Lock()
	f.requests = append(f.requests, *req)
	f.mu.Unlock()

	step := f.step(n, req)
	provider := f.Provider
	if provider == "" {
		provider = "fake"
	}
	if err := ctx.Err(); err != nil {
		return nil, llm.FromContext(ctx, provider)
	}
	if step.Hang {
		<-ctx.Done()
		return nil, llm.FromContext(ctx, provider)
	}
	if err := wait(ctx, step.Latency); err != nil {
		return nil, llm.FromContext(ctx, provider)
	}
	if step.Panic != nil {
		panic(step.Panic)
	}
	if step.Err != nil && (req.Stream == nil || step.CutAfter == 0) {
		return nil, step.Err
	}

	resp := &llm.Response{}
	if step.Response != nil {
		resp = step.Response.Clone()
	}
	if resp.Model == "" {
		resp.Model = req.Model
	}
	if resp.FinishReason == "" {
		resp.FinishReason = llm.FinishStop
	}
	chunks := step.Chunks
	text := step.Text
	if chunks != nil {
		text = strings.Join(chunks, "")
	} else if text == "" && (step.Response == nil || step.Response.Text == "") {
		text = "ok"
	} else if text == "" {
		text = resp.Text
	}
	resp.Text = text
	if resp.Usage.OutputTokens == 0 {
		resp.Usage.OutputTokens = len(strings.Fields(text))
	}
	if resp.Usage.InputTokens == 0 {
		resp.Usage.InputTokens = req.EstimateInputTokens()
	}
	if req.Stream == nil {
		return resp, nil
	}
	if chunks == nil {
		chunks = SplitWords(text)
	}
	for i, c := range chunks {
		if step.CutAfter > 0 && i == step.CutAfter {
			break
		}
		if i > 0 {
			if err := wait(ctx, step.ChunkDelay); err != nil {
				return nil, llm.FromContext(ctx, provider)
			}
		}
		if err := req.Stream(llm.Chunk{Index: i, Text: c}); err != nil {
			return nil, err
		}
	}
	if step.CutAfter > 0 {
		if step.Err != nil {
			return nil, step.Err
		}
		return nil, &llm.Error{Kind: llm.KindStreamCut, Provider: provider,
			Message: "stream ended after " + strconv.Itoa(step.CutAfter) + " chunks without an end marker"}
	}
	return resp, nil
}

func (f *Fake) step(n int, req *llm.Request) Step {
	switch {
	case f.Func != nil:
		return f.Func(n, req)
	case n < len(f.Steps):
		return f.Steps[n]
	}
	return f.Default
}

// wait waits d or until ctx is done, whichever is first.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	return llm.Sleep(ctx, d)
}

// Calls returns how many times Generate was called.
func (f *Fake) Calls() int { return int(f.calls.Load()) }

// InFlight returns how many calls are running now.
func (f *Fake) InFlight() int { return int(f.inflight.Load()) }

// PeakConcurrency returns the most calls that ran at once.
func (f *Fake) PeakConcurrency() int { return int(f.peak.Load()) }

// Requests returns copies of the requests seen, in arrival order.
func (f *Fake) Requests() []llm.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]llm.Request(nil), f.requests...)
}

// SplitWords splits text into chunks of one word each, the space kept in
// front of every word but the first, so that joining them gives text back.
func SplitWords(text string) []string {
	var out []string
	start := 0
	for i := 1; i < len(text); i++ {
		if text[i] == ' ' && text[i-1] != ' ' {
			out = append(out, text[start:i])
			start = i
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}

// Error returns an *llm.Error of the given kind with the HTTP status a
// provider would send for it, and RetryAfter for rate limits.
func Error(kind llm.Kind) *llm.Error {
	e := &llm.Error{Kind: kind, Status: StatusFor(kind), Provider: "fake", Message: "scripted " + kind.String()}
	if kind == llm.KindRateLimited {
		e.RetryAfter = time.Second
	}
	return e
}

// StatusFor returns the HTTP status providers send for a kind, or 0 for
// kinds that do not come from HTTP; it is kind.HTTPStatus().
func StatusFor(kind llm.Kind) int { return kind.HTTPStatus() }
