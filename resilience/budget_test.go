package resilience

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llmkit/llmkit/llm"
)

// TestTotalBudgetMatchesTimer runs the same calls through a total timeout
// kept as a budget (New's default shape) and through one kept as a timer
// (a bulkhead between the two timeouts forces it): the caller, the client
// and the observers must not tell them apart.
func TestTotalBudgetMatchesTimer(t *testing.T) {
	// block waits for the attempt's end and fails with fail(ctx).
	block := func(fail func(context.Context) error) func(context.Context, *llm.Request) (*llm.Response, error) {
		return func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
			if req.Stream != nil {
				if err := req.Stream(llm.Chunk{Text: "a"}); err != nil {
					return nil, err
				}
			}
			<-ctx.Done()
			return nil, fail(ctx)
		}
	}
	raw := func(ctx context.Context) error { return ctx.Err() }
	unavailable := func(context.Context) error { return &llm.Error{Kind: llm.KindUnavailable, Message: "down"} }
	retry := &RetryConfig{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, NoJitter: true}
	cases := []struct {
		name    string
		timeout TimeoutConfig
		fail    func(context.Context) error
		stream  bool
		cancel  time.Duration // the caller cancels after this, when set
	}{
		{"total first", TimeoutConfig{Total: time.Second, Attempt: 10 * time.Second}, raw, false, 0},
		{"attempts then total", TimeoutConfig{Total: 5 * time.Second, Attempt: 2 * time.Second}, raw, false, 0},
		{"foreign error", TimeoutConfig{Total: 5 * time.Second, Attempt: 2 * time.Second}, unavailable, false, 0},
		{"idle stream", TimeoutConfig{Total: time.Second, Attempt: 10 * time.Second, Idle: 5 * time.Second}, raw, true, 0},
		{"idle first", TimeoutConfig{Total: 10 * time.Second, Attempt: 20 * time.Second, Idle: time.Second}, unavailable, true, 0},
		{"caller cancels", TimeoutConfig{Total: time.Second, Attempt: 10 * time.Second}, raw, false, 500 * time.Millisecond},
	}
	run := func(t *testing.T, cfg Config, fail func(context.Context) error, stream bool, cancelAfter time.Duration) []string {
		var out []string
		synctest.Test(t, func(t *testing.T) {
			ctx, rec := observed()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if cancelAfter > 0 {
				time.AfterFunc(cancelAfter, cancel)
			}
			start := time.Now()
			f := block(fail)
			c := wrap(t, cfg, llm.ClientFunc(func(ctx context.Context, req *llm.Request) (*llm.Response, error) {
				dl, _ := ctx.Deadline()
				resp, err := f(ctx, req)
				out = append(out, fmt.Sprintf("attempt at %v, deadline %v, cause %v", time.Since(start), dl.Sub(start), context.Cause(ctx)))
				return resp, err
			}))
			req := llm.Prompt("hi")
			if stream {
				req.Stream = func(llm.Chunk) error { return nil }
			}
			_, err := c.Generate(ctx, req)
			out = append(out, fmt.Sprintf("after %v: %v (%v)", time.Since(start), err, llm.KindOf(err)))
			for _, ev := range rec.Events() {
				out = append(out, fmt.Sprintf("event %v attempt %d delay %v err %v", ev.Kind, ev.Attempt, ev.Delay, ev.Err))
			}
		})
		return out
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Timeout: tc.timeout, Retry: retry, Breaker: &BreakerConfig{}}
			got := run(t, cfg, tc.fail, tc.stream, tc.cancel)
			cfg.Bulkhead = &BulkheadConfig{MaxConcurrent: 8}
			want := run(t, cfg, tc.fail, tc.stream, tc.cancel)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("budget:\n\t%q\ntimer:\n\t%q", got, want)
			}
			t.Log(got)
		})
	}
}

// TestTimeoutBudgetAlone checks the budget in Timeout, with no Retry to
// name a total timeout: its own layer does, as the timer would have.
func TestTimeoutBudgetAlone(t *testing.T) {
	cfg := TimeoutConfig{Total: time.Second, Attempt: 10 * time.Second}
	timer := llm.Chain(totalTimeout(cfg.Total, false), attemptTimeout(cfg))
	budgeted, err := Timeout(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, fail := range []error{nil, &llm.Error{Kind: llm.KindUnavailable, Message: "down"}} {
		var got []string
		for _, mw := range []llm.Middleware{budgeted, timer} {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				c := mw(llm.ClientFunc(func(ctx context.Context, _ *llm.Request) (*llm.Response, error) {
					<-ctx.Done()
					if fail != nil {
						return nil, fail
					}
					return nil, ctx.Err()
				}))
				_, err := c.Generate(context.Background(), llm.Prompt("hi"))
				got = append(got, fmt.Sprintf("after %v: %v (%v)", time.Since(start), err, llm.KindOf(err)))
			})
		}
		if got[0] != got[1] {
			t.Errorf("budget: %s; timer: %s", got[0], got[1])
		}
		t.Log(got[0])
	}
}
