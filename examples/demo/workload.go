package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// phases stage one deployment failing, then an outage of every one,
// between healthy periods. errors apply to every deployment, or to only
// when it is set.
var phases = []struct {
	name   string
	about  string
	errors map[llm.Kind]float64
	only   string
}{
	{"healthy", "the model answers every call", nil, ""},
	{"failover", "deployment east fails every call with 503: the router moves its traffic to west and central",
		map[llm.Kind]float64{llm.KindUnavailable: 1}, "east"},
	{"outage", "60% of calls fail with 503, 10% with 429", map[llm.Kind]float64{
		llm.KindUnavailable: 0.6, llm.KindRateLimited: 0.1,
	}, ""},
	{"recovered", "the model is healthy again", nil, ""},
}

// questions are what the pretend users ask; a small set, so some repeat
// and the cache has something to do.
var questions = []string{
	"Summarize our refund policy in one sentence.",
	"What is the capital of Australia?",
	"Explain a circuit breaker to a new engineer.",
	"Translate 'good morning' into French.",
	"List three uses of a bulkhead in software.",
	"Why do retries need jitter?",
	"What does p95 latency mean?",
	"Write a haiku about caching.",
}

type phaseStats struct {
	name      string
	elapsed   time.Duration
	calls     int
	ok        int
	cached    int
	degraded  int
	streams   int
	retried   int
	errors    map[llm.Kind]int
	latencies []time.Duration
}

func (s *phaseStats) add(o *phaseStats) {
	s.calls += o.calls
	s.ok += o.ok
	s.cached += o.cached
	s.degraded += o.degraded
	s.streams += o.streams
	s.retried += o.retried
	for k, n := range o.errors {
		s.errors[k] += n
	}
	s.latencies = append(s.latencies, o.latencies...)
}

func (s *phaseStats) percentile(p float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	slices.Sort(s.latencies)
	return s.latencies[int(p*float64(len(s.latencies)-1))]
}

// runPhase runs workers callers against client until the phase ends. Each
// caller waits a little between calls, as users do; the loop is bounded by
// the phase's length and stops by itself.
func runPhase(ctx context.Context, client llm.Client, name string, length time.Duration, workers int) *phaseStats {
	total := &phaseStats{name: name, errors: map[llm.Kind]int{}}
	ctx, cancel := context.WithTimeout(ctx, length)
	defer cancel()
	start := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := &phaseStats{errors: map[llm.Kind]int{}}
			rng := rand.New(rand.NewPCG(uint64(w), uint64(len(name))))
			for ctx.Err() == nil {
				call(ctx, client, rng, own)
				think := time.NewTimer(time.Duration(20+rng.IntN(60)) * time.Millisecond)
				select {
				case <-think.C:
				case <-ctx.Done():
					think.Stop()
				}
			}
			mu.Lock()
			total.add(own)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}

func call(phaseCtx context.Context, client llm.Client, rng *rand.Rand, st *phaseStats) {
	req := &llm.Request{
		Model:    "sim-1",
		Endpoint: endpoints[rng.IntN(len(endpoints))],
		Tenant:   fmt.Sprintf("tenant-%d", rng.IntN(3)),
	}
	if rng.IntN(10) < 7 {
		// A common question, asked deterministically: cacheable.
		req.Messages = []llm.Message{llm.User(questions[rng.IntN(len(questions))])}
		req.Temperature = llm.Ptr(0.0)
	} else {
		// A one-off question at a creative temperature: never cached.
		req.Messages = []llm.Message{llm.User(fmt.Sprintf("Brainstorm name #%d for a coffee shop.", rng.IntN(1_000_000)))}
		req.Temperature = llm.Ptr(0.8)
	}
	if rng.IntN(4) == 0 {
		st.streams++
		req.Stream = func(llm.Chunk) error { return nil }
	}
	// Calls in flight when the phase ends finish on their own time: the
	// phase's end is not the user's cancellation.
	ctx := context.WithoutCancel(phaseCtx)
	began := time.Now()
	resp, err := client.Generate(ctx, req)
	st.latencies = append(st.latencies, time.Since(began))
	st.calls++
	if err != nil {
		st.errors[llm.KindOf(err)]++
		return
	}
	st.ok++
	if resp.Attempts > 1 {
		st.retried++
	}
	if resp.Cached {
		st.cached++
	}
	if resp.Degraded {
		st.degraded++
	}
}
