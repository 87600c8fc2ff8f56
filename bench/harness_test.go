package bench_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmkit/llmkit/bench"
	"github.com/llmkit/llmkit/llm"
)

// answer is what the instant provider returns: a canned answer, as a
// loopback server would give, so that only the stacks' own work is
// measured.
var answer = &llm.Response{Text: "ok", Model: "m", FinishReason: llm.FinishStop,
	Usage: llm.Usage{InputTokens: 10, OutputTokens: 2}}

// instant is the provider under every stack.
var instant llm.Client = llm.ClientFunc(func(context.Context, *llm.Request) (*llm.Response, error) {
	return answer, nil
})

// The label values both stacks keep; the benchmarks' requests use them.
var (
	models    = []string{"m"}
	endpoints = []string{"chat"}
)

// A contender is one stack the benchmarks measure.
type contender struct {
	name string
	// cache tells whether the stack caches: the hit benchmarks skip those
	// that do not.
	cache bool
	// allocs, when set, caps the allocations of one call
	// (TestWholeStackAllocs): llmkit's budget for ours; for the provider
	// and the reference, their count today, so that a floor that gets
	// heavier shows.
	allocs *allocBudget
	// build returns the stack around provider, closed at tb's cleanup, and
	// settle, which returns once every answer the stack has stored so far
	// is served from its cache.
	build func(tb testing.TB, provider llm.Client) (client llm.Client, settle func())
}

type allocBudget struct{ miss, hit float64 }

// contenders are the stacks every benchmark measures in one run: the
// provider alone (the floor: the harness and the provider), the
// hand-written reference, and llmkit's default stack (ours_test.go adds
// it).
var contenders = []contender{
	{name: "provider", allocs: &allocBudget{miss: 0},
		build: func(_ testing.TB, p llm.Client) (llm.Client, func()) { return p, func() {} }},
	{name: "reference", cache: true, allocs: &allocBudget{miss: 8, hit: 1}, build: buildReference},
}

func buildReference(tb testing.TB, provider llm.Client) (llm.Client, func()) {
	tb.Helper()
	ref, err := bench.NewReference(provider, bench.ReferenceConfig{
		Registry: prometheus.NewRegistry(), Models: models, Endpoints: endpoints,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ref, func() {} // sync.Map stores before Generate returns
}

// request returns a cacheable request (temperature 0) asking question.
func request(question string) *llm.Request {
	return &llm.Request{
		Model:       "m",
		Messages:    []llm.Message{llm.User(question)},
		Temperature: llm.Ptr(0.0),
		Endpoint:    "chat",
	}
}

// questionTemplate is the shape of every question: a 4-digit source, a
// 12-digit number, all of one length, so that every miss hashes as many
// bytes whatever its number.
const questionTemplate = "question ssss-nnnnnnnnnnnn about the refund policy"

// questions makes distinct questions from one source. It writes them 64 at
// a time into one string, so that the harness costs next to nothing per
// call and no allocation that benchmarks would report per op.
type questions struct {
	source uint16
	n      uint64
	batch  string
}

func (q *questions) next() string {
	if q.batch == "" {
		var b strings.Builder
		b.Grow(64 * len(questionTemplate))
		buf := []byte(questionTemplate)
		for range 64 {
			putHex(buf[9:13], uint64(q.source))
			putHex(buf[14:26], q.n)
			q.n++
			b.Write(buf)
		}
		q.batch = b.String()
	}
	s := q.batch[:len(questionTemplate)]
	q.batch = q.batch[len(questionTemplate):]
	return s
}

// putHex writes v in hexadecimal into all of dst, zero-padded.
func putHex(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = "0123456789abcdef"[v&15]
		v >>= 4
	}
}
