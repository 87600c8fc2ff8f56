package queue_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river/rivertype"

	"github.com/llmkit/llmkit/llm"
	"github.com/llmkit/llmkit/llm/llmtest"
	"github.com/llmkit/llmkit/queue"
)

// Bad arguments are an error at insert, and nothing is inserted, one
// request or a batch.
func TestBadArgsRejectedAtInsert(t *testing.T) {
	run(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		q := open(t, b, queue.Config{})
		good := llm.Prompt("Summarize ticket 3")
		bad := map[string]*llm.Request{
			"nil":            nil,
			"no user":        {Messages: []llm.Message{llm.Assistant("hi")}},
			"blank prompt":   llm.Prompt("  \n"),
			"temperature":    {Messages: []llm.Message{llm.User("x")}, Temperature: llm.Ptr(3.0)},
			"negative max":   {Messages: []llm.Message{llm.User("x")}, MaxTokens: -1},
			"stream":         {Messages: []llm.Message{llm.User("x")}, Stream: func(llm.Chunk) error { return nil }},
			"extra not json": {Messages: []llm.Message{llm.User("x")}, Extra: map[string]any{"f": func() {}}},
			"unknown role":   {Messages: []llm.Message{{Role: "tool", Content: "x"}, llm.User("x")}},
		}
		for name, req := range bad {
			if _, err := q.Enqueue(ctx, req); !errors.Is(err, queue.ErrInvalidArgs) {
				t.Errorf("%s: err %v, want ErrInvalidArgs", name, err)
			}
			if _, err := q.EnqueueMany(ctx, []*llm.Request{good, req}); !errors.Is(err, queue.ErrInvalidArgs) {
				t.Errorf("%s in a batch: err %v, want ErrInvalidArgs", name, err)
			}
		}
		if n := counts(t, q); total(n) != 0 {
			t.Fatalf("jobs inserted by bad calls: %v", n)
		}
		if _, err := q.Enqueue(ctx, good); err != nil {
			t.Fatal(err)
		}
		if n := counts(t, q); n["available"] != 1 || total(n) != 1 {
			t.Fatalf("after one good insert: %v", n)
		}
	})
}

// Unique jobs: an equal request (same cache key) is not inserted twice
// while the first is pending; another tenant's is.
func TestUniqueJobs(t *testing.T) {
	run(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		q := open(t, b, queue.Config{Unique: true})
		req := llm.Prompt("Summarize ticket 4")
		first, err := q.Enqueue(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := q.Enqueue(ctx, llm.Prompt("Summarize ticket 4"))
		if err != nil {
			t.Fatal(err)
		}
		other := llm.Prompt("Summarize ticket 4")
		other.Tenant = "acme"
		third, err := q.Enqueue(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.ID != first.ID || third.Duplicate || third.ID == first.ID {
			t.Fatalf("first %+v, again %+v, other tenant %+v", first, again, third)
		}
		if n := counts(t, q); n["available"] != 2 {
			t.Fatalf("counts %v, want 2 available", n)
		}
	})
}

// Each failure kind ends as the issue says: cancelled (bad_request, auth,
// content_filter, context_length), retried then completed, retried until
// discarded after MaxAttempts (a retryable kind, and an error llmkit
// cannot classify); the provider sees one call per attempt; the metrics
// count the runs by outcome and the jobs by state.
func TestFailureKindsMapToOutcomes(t *testing.T) {
	run(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		var flaky atomic.Int32
		fake := &llmtest.Fake{Func: func(_ int, req *llm.Request) llmtest.Step {
			switch p := req.PromptText(); p {
			case "ok":
				return llmtest.Step{Text: "fine"}
			case "flaky":
				if flaky.Add(1) <= 2 {
					return llmtest.Step{Err: llmtest.Error(llm.KindUnavailable)}
				}
				return llmtest.Step{Text: "fine at last"}
			case "unknown":
				return llmtest.Step{Err: errors.New("something odd")}
			default:
				k, ok := llm.ParseKind(p)
				if !ok {
					panic(p)
				}
				return llmtest.Step{Err: llmtest.Error(k)}
			}
		}}
		reg := prometheus.NewRegistry()
		q := open(t, b, queue.Config{Client: fake, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond,
			PollInterval: 20 * time.Millisecond, Registerer: reg})
		want := map[string]struct {
			state   rivertype.JobState
			attempt int
			kind    string
		}{
			"ok":             {rivertype.JobStateCompleted, 1, ""},
			"flaky":          {rivertype.JobStateCompleted, 3, ""},
			"bad_request":    {rivertype.JobStateCancelled, 1, "bad_request"},
			"auth":           {rivertype.JobStateCancelled, 1, "auth"},
			"content_filter": {rivertype.JobStateCancelled, 1, "content_filter"},
			"context_length": {rivertype.JobStateCancelled, 1, "context_length"},
			"unavailable":    {rivertype.JobStateDiscarded, 4, "unavailable"},
			"timeout":        {rivertype.JobStateDiscarded, 4, "timeout"},
			"unknown":        {rivertype.JobStateDiscarded, 4, "unknown"},
		}
		ids := map[string]int64{}
		for p := range want {
			j, err := q.Enqueue(ctx, llm.Prompt(p))
			if err != nil {
				t.Fatal(err)
			}
			ids[p] = j.ID
		}
		stop := runQueue(t, q)
		eventually(t, 30*time.Second, "every job reaches an outcome", func() bool {
			n := counts(t, q)
			return n["completed"]+n["cancelled"]+n["discarded"] == len(want)
		})
		stop()
		attempts := 0
		for p, w := range want {
			r := result(t, q, ids[p])
			attempts += r.Attempt
			if r.State != w.state || r.Attempt != w.attempt || r.Output == nil || r.Output.ErrorKind != w.kind {
				t.Errorf("%s: %+v (output %+v), want %s after %d attempt(s), kind %q", p, r, r.Output, w.state, w.attempt, w.kind)
			}
			if w.state == rivertype.JobStateCompleted && !strings.HasPrefix(r.Output.Text, "fine") {
				t.Errorf("%s: answer %q", p, r.Output.Text)
			}
		}
		if fake.Calls() != attempts {
			t.Fatalf("provider calls %d, attempts %d", fake.Calls(), attempts)
		}
		for _, c := range []struct {
			outcome, kind string
			want          float64
		}{
			{"completed", "", 2}, {"cancelled", "auth", 1}, {"retried", "unavailable", 5}, // flaky's 2 and 3 of unavailable's
			{"discarded", "unavailable", 1}, {"discarded", "unknown", 1}, {"retried", "unknown", 3},
		} {
			if got := runs(t, reg, c.outcome, c.kind); got != c.want {
				t.Errorf("llm_queue_runs_total{outcome=%q,kind=%q} = %v, want %v", c.outcome, c.kind, got, c.want)
			}
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP llm_queue_jobs LLM jobs in the database by River state (all queues of the schema).
# TYPE llm_queue_jobs gauge
llm_queue_jobs{state="available"} 0
llm_queue_jobs{state="cancelled"} 4
llm_queue_jobs{state="completed"} 2
llm_queue_jobs{state="discarded"} 3
llm_queue_jobs{state="pending"} 0
llm_queue_jobs{state="retryable"} 0
llm_queue_jobs{state="running"} 0
llm_queue_jobs{state="scheduled"} 0
`), "llm_queue_jobs"); err != nil {
			t.Error(err)
		}
		if n, err := testutil.GatherAndCount(reg, "llm_queue_wait_seconds", "llm_queue_attempts"); err != nil || n != 2 {
			t.Errorf("wait and attempts histograms: %d series, %v", n, err)
		}
	})
}

// A rate-limited job is snoozed for the provider's Retry-After, without
// spending an attempt, and runs again once that much time has passed on
// River's clock (stubbed: the test moves it forward instead of waiting).
func TestRetryAfterHonoured(t *testing.T) {
	run(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		var offset atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		var mu sync.Mutex
		var calledAt time.Time
		const retryAfter = 42 * time.Second
		fake := &llmtest.Fake{Func: func(n int, _ *llm.Request) llmtest.Step {
			if n == 0 {
				mu.Lock()
				calledAt = now()
				mu.Unlock()
				e := llmtest.Error(llm.KindRateLimited)
				e.RetryAfter = retryAfter
				return llmtest.Step{Err: e}
			}
			return llmtest.Step{Text: "after the wait"}
		}}
		cfg := queue.Config{Client: fake, PollInterval: 20 * time.Millisecond}
		cfg.Test.Enabled, cfg.Test.Now = true, now
		q := open(t, b, cfg)
		job, err := q.Enqueue(ctx, llm.Prompt("Summarize ticket 5"))
		if err != nil {
			t.Fatal(err)
		}
		stop := runQueue(t, q)
		defer stop()
		eventually(t, 30*time.Second, "the job is snoozed", func() bool {
			return result(t, q, job.ID).State == rivertype.JobStateScheduled
		})
		r := result(t, q, job.ID)
		mu.Lock()
		wait := r.ScheduledAt.Sub(calledAt)
		mu.Unlock()
		// SQLite keeps times to the millisecond.
		if r.Attempt != 0 || wait < retryAfter-time.Millisecond || wait > retryAfter+10*time.Second {
			t.Fatalf("snoozed job %+v due %v after the call, want attempt 0 and due after %v", r, wait, retryAfter)
		}
		offset.Store(int64(retryAfter + time.Second))
		eventually(t, 30*time.Second, "the job completes after Retry-After", func() bool {
			return result(t, q, job.ID).State == rivertype.JobStateCompleted
		})
		if r := result(t, q, job.ID); r.Attempt != 1 || fake.Calls() != 2 || r.Output.Text != "after the wait" {
			t.Fatalf("result %+v (%+v) after %d calls", r, r.Output, fake.Calls())
		}
	})
}

// Snoozes are capped (a Retry-After of an hour waits MaxSnooze) and
// bounded: after MaxSnoozes the failure spends attempts, and the job is
// discarded after MaxAttempts.
func TestSnoozesBounded(t *testing.T) {
	run(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		fake := &llmtest.Fake{Default: llmtest.Step{Err: &llm.Error{Kind: llm.KindCircuitOpen, RetryAfter: time.Hour}}}
		q := open(t, b, queue.Config{Client: fake, MaxSnooze: 5 * time.Millisecond, MaxSnoozes: 2, MaxAttempts: 2,
			BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, PollInterval: 20 * time.Millisecond})
		job, err := q.Enqueue(ctx, llm.Prompt("Summarize ticket 6"))
		if err != nil {
			t.Fatal(err)
		}
		stop := runQueue(t, q)
		defer stop()
		eventually(t, 30*time.Second, "the job is discarded", func() bool {
			return result(t, q, job.ID).State == rivertype.JobStateDiscarded
		})
		if r := result(t, q, job.ID); r.Attempt != 2 || fake.Calls() != 4 || r.Output.ErrorKind != "circuit_open" {
			t.Fatalf("result %+v after %d calls, want 2 attempts after 2 snoozes (4 calls)", r, fake.Calls())
		}
	})
}

func TestConfigRejected(t *testing.T) {
	b := sqliteBackend(t)
	for name, cfg := range map[string]queue.Config{
		"rescue before timeout": {JobTimeout: time.Minute, RescueAfter: time.Second},
		"negative workers":      {Workers: -1},
		"base above max":        {BaseDelay: time.Hour, MaxDelay: time.Second},
	} {
		if q, err := queue.Open(context.Background(), b.DSN, cfg); err == nil {
			q.Close()
			t.Errorf("%s: no error", name)
		}
	}
	if err := (&queue.Queue{}).Run(context.Background()); err == nil {
		t.Error("Run on an insert-only queue: no error")
	}
}

// runQueue works q in the background; the returned func drains it and
// waits (also run at cleanup).
func runQueue(t *testing.T, q *queue.Queue) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func counts(t *testing.T, q *queue.Queue) map[string]int {
	t.Helper()
	n, err := q.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func total(n map[string]int) int {
	s := 0
	for _, v := range n {
		s += v
	}
	return s
}

// runs reads llm_queue_runs_total{outcome,kind} from reg.
func runs(t *testing.T, reg *prometheus.Registry, outcome, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "llm_queue_runs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["outcome"] == outcome && labels["kind"] == kind {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
