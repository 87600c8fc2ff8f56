package metrics_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/llmkit/llmkit/llm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// emitting returns a middleware standing in for resilience and cache: it
// reports events under the call's context, then calls next.
func emitting(events ...llm.Event) llm.Middleware {
	return func(next llm.Client) llm.Client {
		return llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			for _, ev := range events {
				ev.Request = req
				llm.Emit(ctx, ev)
			}
			return next.Generate(ctx, req)
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
