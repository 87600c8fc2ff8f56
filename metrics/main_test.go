package metrics_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// reporting returns a middleware standing in for the cache and resilience:
// built with an observer o (nil for none), as they are, it reports events
// to o and to the observers on the call's context (llm.EmitTo), then calls
// next.
func reporting(o llm.Observer, events ...llm.Event) llm.Middleware {
	return func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			for _, ev := range events {
				ev.Request = req
				llm.EmitTo(ctx, o, ev)
			}
			return next.Generate(ctx, req)
		})
	}
}

// observedLeaf records whether any call carried an observer on its context.
type observedLeaf struct {
	llm.Client
	saw bool
}

func (l *observedLeaf) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	l.saw = l.saw || llm.Observed(ctx)
	return l.Client.Generate(ctx, req)
}

var okResp = &llm.Response{Text: "ok", Model: "m", Usage: llm.Usage{InputTokens: 3, OutputTokens: 2}}

var okClient = llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) { return okResp, nil })

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
