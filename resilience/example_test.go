package resilience_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/resilience"
)

// A provider that fails once with a 503 is retried; a request it rejects as
// bad is not; when it is down, the static fallback answers, marked degraded.
func ExampleNew() {
	cfg := resilience.DefaultConfig()
	cfg.Retry = &resilience.RetryConfig{BaseDelay: 1, NoJitter: true} // keep the example fast
	mw, err := resilience.New(cfg)
	if err != nil {
		panic(err)
	}
	provider := &llmtest.Fake{Steps: []llmtest.Step{
		{Err: llmtest.Error(llm.KindUnavailable)},
		{Text: "hello"},
		{Err: llmtest.Error(llm.KindBadRequest)},
	}, Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}}
	client := mw(provider)

	resp, _ := client.Generate(context.Background(), llm.Prompt("hi"))
	fmt.Println(resp.Text, resp.Attempts)
	_, err = client.Generate(context.Background(), llm.Prompt("hi"))
	fmt.Println(llm.KindOf(err), provider.Calls())
	resp, _ = client.Generate(context.Background(), llm.Prompt("hi"))
	fmt.Println(resp.Degraded, resp.DegradedReason, resp.Text)
	// Output:
	// hello 2
	// bad_request 3
	// true unavailable The service is temporarily unavailable, please try again later.
}

// Config.Observer hears what every policy does, in the chain's order: the
// retries run inside the fallback, so both failed attempts come before the
// static answer, which counts them.
func ExampleConfig_observer() {
	cfg := resilience.DefaultConfig()
	cfg.Retry = &resilience.RetryConfig{MaxAttempts: 2, BaseDelay: 1, NoJitter: true}
	cfg.Observer = llm.ObserverFunc(func(_ context.Context, ev llm.Event) {
		fmt.Println(strings.TrimSpace(fmt.Sprint(ev.Kind, " ", ev.Attempt, " ", ev.Reason, " ", ev.Source)))
	})
	mw, err := resilience.New(cfg)
	if err != nil {
		panic(err)
	}
	client := mw(&llmtest.Fake{Default: llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}})
	resp, _ := client.Generate(context.Background(), llm.Prompt("hi"))
	fmt.Println(resp.Degraded, resp.Attempts)
	// Output:
	// attempt 1
	// retry 1
	// attempt 2
	// fallback 0 unavailable static
	// true 2
}
