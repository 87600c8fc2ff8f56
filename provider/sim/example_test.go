package sim_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/provider/sim"
)

// A Model answers at once when latency is off, and the same request always
// gets the same answer.
func Example() {
	model := sim.MustNew(sim.Config{Seed: 3, TTFT: -1, PerToken: -1, MinTokens: 8, MaxTokens: 12})
	resp, err := model.Generate(context.Background(), llm.Prompt("Why is the sky blue?"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.Text)
	fmt.Printf("id=%s model=%s finish=%s tokens=%d+%d\n",
		resp.ID, resp.Model, resp.FinishReason, resp.Usage.InputTokens, resp.Usage.OutputTokens)
	// Output:
	// Are window may stream useful model batch token.
	// id=sim-1 model=sim-1 finish=stop tokens=9+8
}

// A streamed answer arrives one word per chunk; the chunks join to the
// response's text.
func ExampleModel_Generate_stream() {
	model := sim.MustNew(sim.Config{Seed: 4, TTFT: -1, PerToken: -1, MinTokens: 5, MaxTokens: 5})
	req := llm.Prompt("Count to five.")
	var chunks []string
	req.Stream = func(c llm.Chunk) error {
		chunks = append(chunks, c.Text)
		return nil
	}
	resp, err := model.Generate(context.Background(), req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q\n", chunks)
	fmt.Println(strings.Join(chunks, "") == resp.Text)
	// Output:
	// ["Is" " model" " service" " retry" " query."]
	// true
}

// SetErrors stages a provider outage while the model serves calls.
func ExampleModel_SetErrors() {
	model := sim.MustNew(sim.Config{TTFT: -1, PerToken: -1})
	ask := func() {
		_, err := model.Generate(context.Background(), llm.Prompt("Are you there?"))
		fmt.Println(err, llm.Retryable(err))
	}
	ask()
	_ = model.SetErrors(map[llm.Kind]float64{llm.KindUnavailable: 1})
	ask()
	_ = model.SetErrors(map[llm.Kind]float64{llm.KindRateLimited: 1})
	ask()
	_ = model.SetErrors(nil)
	ask()
	// Output:
	// <nil> false
	// llm: sim: unavailable (status 503): simulated outage true
	// llm: sim: rate_limited (status 429): simulated rate limit true
	// <nil> false
}
